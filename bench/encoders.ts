/**
 * CPU throughput of the ViT-L/14 encoders behind the issue-11 metrics, with random weights made
 * here (seeded; the shapes, not the values, set the cost):
 * - CLIP ViT-L/14 vision tower + visual_projection at 224 (openai/clip-vit-large-patch14,
 *   torchmetrics' CLIP-score default) and at 336 (openai/clip-vit-large-patch14-336, CMMD's):
 *   hidden 1024, 24 layers, 16 heads, MLP 4096, patch 14, projection 768;
 * - DINOv2 ViT-L/14 (dinov2_vitl14, dgm-eval's FD-DINOv2 encoder) at 224, its 37x37 position grid
 *   resampled to 16x16 at conversion.
 * Inference only (no decoding or resizing), batch 8 (BENCH_ENCODER_BATCH), a warm-up run at batch 1
 * (session start-up; an eighth of a timed run's cost), then BENCH_ENCODER_RUNS timed runs at batch 8
 * (default 2); reported as images per second. Device: $BENCH_DEVICE (default cpu). About 2.3
 * minutes on a 2-core machine, most of it the 336 runs.
 */
import * as ort from "onnxruntime-node";
import { openSession, parseDevice } from "../src/models/session.js";
import { buildClipVisionOnnx, parseClipConfig, visionLayout, type ClipConfig } from "../src/models/clip-onnx.js";
import { buildDinov2Onnx, dinov2Layout, DINOV2_VITL14_CONFIG } from "../src/models/dinov2-onnx.js";
import type { StateDict } from "../src/models/pth.js";
import { xorshift32 } from "../test/helpers/xorshift.js";

const BATCH = Number(process.env.BENCH_ENCODER_BATCH ?? 8);
const RUNS = Number(process.env.BENCH_ENCODER_RUNS ?? 2);
const SEED = 11;

export async function benchEncoders(): Promise<Record<string, number>> {
  const device = parseDevice(process.env.BENCH_DEVICE ?? "cpu");
  const result: Record<string, number> = { batch: BATCH, runs: RUNS };
  for (const size of [224, 336]) {
    const config = clipVitL14Config(size);
    const bytes = buildClipVisionOnnx(randomStateDict(visionLayout(config), SEED), config);
    result[`clip_vitl14_${size}_img_per_s`] = await imagesPerSecond(bytes, size, device);
  }
  const dino = { ...DINOV2_VITL14_CONFIG };
  const bytes = buildDinov2Onnx(randomStateDict(dinov2Layout(dino), SEED + 1), dino, { inputSize: 224 });
  result.dinov2_vitl14_224_img_per_s = await imagesPerSecond(bytes, 224, device);
  return result;
}

/** openai/clip-vit-large-patch14(-336)'s config.json, the parts the vision builder reads. */
function clipVitL14Config(imageSize: number): ClipConfig {
  return parseClipConfig({
    projection_dim: 768,
    text_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, hidden_act: "quick_gelu" },
    vision_config: {
      hidden_size: 1024,
      intermediate_size: 4096,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      patch_size: 14,
      image_size: imageSize,
      hidden_act: "quick_gelu",
    },
  });
}

/**
 * Seeded random tensors of the given shapes: LayerNorm and LayerScale scales near 1, everything
 * else uniform in +-0.02 (small enough that 24 residual layers stay finite).
 */
function randomStateDict(layout: Map<string, number[]>, seed: number): StateDict {
  const bits = xorshift32(seed);
  const next = (): number => bits() / 4294967296;
  const sd: StateDict = new Map();
  for (const [key, shape] of layout) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const scaleLike = /(norm\d?|layernorm|layrnorm|layer_norm\d)\.weight$|\.gamma$/.test(key);
    for (let i = 0; i < n; i++) data[i] = scaleLike ? 1 + 0.1 * (next() - 0.5) : 0.04 * (next() - 0.5);
    sd.set(key, { shape, data });
  }
  return sd;
}

async function imagesPerSecond(model: Uint8Array, size: number, device: ReturnType<typeof parseDevice>): Promise<number> {
  const { session } = await openSession(model, device);
  try {
    const per = 3 * size * size;
    const input = new Float32Array(BATCH * per);
    let s = 12345;
    for (let i = 0; i < input.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      input[i] = (s / 4294967296) * 4 - 2;
    }
    const feeds = { pixel_values: new ort.Tensor("float32", input, [BATCH, 3, size, size]) };
    await session.run({ pixel_values: new ort.Tensor("float32", input.subarray(0, per), [1, 3, size, size]) }); // warm-up
    const t0 = performance.now();
    for (let r = 0; r < RUNS; r++) await session.run(feeds);
    return (BATCH * RUNS) / ((performance.now() - t0) / 1000);
  } finally {
    await session.release();
  }
}
