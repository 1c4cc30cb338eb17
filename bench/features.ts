/**
 * Feature extraction throughput on the CPU (or $BENCH_DEVICE): end to end (read, decode, resize,
 * inference) on 256x256 images, and inference alone at batch 1, 16 and 32.
 * Target (issue 3): end to end >= 16 img/s on the 2-core machine (pytorch-fid: 7.8 img/s there).
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as ort from "onnxruntime-node";
import { openExtractor } from "../src/features/extractor.js";
import { INPUT_SIZE } from "../src/features/inception-runner.js";
import { openSession, parseDevice } from "../src/models/session.js";
import { openImageSource } from "../src/io/sources.js";
import { fixtureModelPath } from "../test/helpers/model.js";
import { fixture } from "../test/helpers/fixtures.js";

const IMAGES = Number(process.env.BENCH_IMAGES ?? 96);

export async function benchFeatures(): Promise<Record<string, number | string>> {
  const device = parseDevice(process.env.BENCH_DEVICE ?? "cpu");
  const model = await fixtureModelPath();
  const dir = await make256Images(IMAGES);
  const result: Record<string, number | string> = { images: IMAGES };
  try {
    for (const batchSize of [1, 16, 32]) {
      const extractor = await openExtractor({ weights: model, device, batchSize, cache: false, protocol: "clean" });
      const source = await openImageSource(dir);
      const t0 = performance.now();
      await extractor.extract(source.items);
      result[`end_to_end_clean_batch${batchSize}_img_per_s`] = IMAGES / ((performance.now() - t0) / 1000);
      result.device = extractor.device;
      result.prepare_threads = extractor.threads;
      await extractor.close();
    }
    const { session } = await openSession(model, device);
    for (const batch of [1, 16, 32]) result[`inference_batch${batch}_img_per_s`] = await inferenceRate(session, batch);
    await session.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return result;
}

async function inferenceRate(session: ort.InferenceSession, batch: number): Promise<number> {
  const input = new ort.Tensor("float32", new Float32Array(batch * 3 * INPUT_SIZE * INPUT_SIZE).fill(0.1), [batch, 3, INPUT_SIZE, INPUT_SIZE]);
  await session.run({ images: input }); // warm-up
  let images = 0;
  const t0 = performance.now();
  while (images < 48 || performance.now() - t0 < 3000) {
    await session.run({ images: input });
    images += batch;
  }
  return images / ((performance.now() - t0) / 1000);
}

/** 256x256 PNG and JPEG crops of the fixture photos, cycled to `count` files. */
async function make256Images(count: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "diffeval-bench-"));
  const srcDir = fixture("images", "real");
  const files = (await readdir(srcDir)).sort();
  for (let i = 0; i < count; i++) {
    const src = path.join(srcDir, files[i % files.length]);
    const img = sharp(src).resize(256, 256, { fit: "cover" }).rotate(90 * (Math.floor(i / files.length) % 4));
    if (i % 2 === 0) await img.png().toFile(path.join(dir, `img_${String(i).padStart(5, "0")}.png`));
    else await img.jpeg({ quality: 95 }).toFile(path.join(dir, `img_${String(i).padStart(5, "0")}.jpg`));
  }
  return dir;
}
