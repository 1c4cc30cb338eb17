/**
 * The built-in Stable Diffusion (generators/onnx-sd) on the sd-tiny fixture export, on the CPU
 * (or $BENCH_DEVICE): seconds per denoising step at batch 2 (one guided step: the UNet on
 * [uncond, cond]) for 128x128 and 512x512 images, and one whole 128x128 image (DDIM, 10 steps,
 * s = 7.5: text encoder, 10 guided steps, VAE decoder), and seconds per image of that request at
 * batch 1 and batch 4 (four seeds through each UNet call, generateSdBatch). The fixture's UNet is a shrunken SD 1.x
 * (32/64 channels), so these numbers measure the loop's overhead and onnxruntime's small-kernel
 * speed, not a real SD 1.5's cost. It also records how far the device's images are from diffusers'
 * four reference images (the tests hold the CPU to 1e-4; on a GPU this is the check).
 */
import { generateSd, generateSdBatch, openSdExport, type SdExport } from "../src/generators/onnx-sd/index.js";
import { parseDevice } from "../src/models/session.js";
import { maxAbsDiff } from "../test/helpers/arrays.js";
import { fixture } from "../test/helpers/fixtures.js";
import { sdCases, sdReferenceImage, sdRequest } from "../test/helpers/sd.js";

export async function benchSd(): Promise<Record<string, number | string>> {
  const model = await openSdExport(fixture("sd", "sd-tiny"), parseDevice(process.env.BENCH_DEVICE ?? "cpu"));
  const result: Record<string, number | string> = { model: "sd-tiny (fixture)", device: model.device };
  try {
    for (const size of [128, 512]) result[`step_batch2_${size}px_s`] = await secondsPerStep(model, size);
    await generateSd(model, { prompt: "warm-up", cfgScale: 7.5, steps: 2, scheduler: "ddim", width: 128, height: 128 });
    const t0 = performance.now();
    const runs = 3;
    for (let i = 0; i < runs; i++) {
      await generateSd(model, { prompt: "a red circle on a blue background", cfgScale: 7.5, steps: 10, scheduler: "ddim", seed: i, width: 128, height: 128 });
    }
    result.image_128px_ddim10_s = (performance.now() - t0) / 1000 / runs;
    for (const k of [1, 4]) result[`image_128px_ddim10_batch${k}_s_per_image`] = await secondsPerImage(model, k);
    result.reference_images_max_abs_diff = await referenceDiff(model);
  } finally {
    await model.close();
  }
  return result;
}

/** One guided UNet call ([uncond, cond] latents and text embeddings) at `size` pixels, averaged. */
async function secondsPerStep(model: SdExport, size: number): Promise<number> {
  const h = size / 8;
  const sample = new Float32Array(2 * model.latentChannels * h * h).fill(0.1);
  const ids = model.tokenizer.encodeBatch(["", "a photo of a cat"], { flavour: "hf" });
  const embeddings = await model.encodeText(ids, 2);
  await model.predict(sample, 2, h, h, 500, embeddings); // warm-up
  let calls = 0;
  const t0 = performance.now();
  while (calls < 5 || performance.now() - t0 < 2000) {
    await model.predict(sample, 2, h, h, 500, embeddings);
    calls++;
  }
  return (performance.now() - t0) / 1000 / calls;
}

/** Seconds per 128x128 image (DDIM 10 steps, s = 7.5) when `k` seeds share each UNet call. */
async function secondsPerImage(model: SdExport, k: number): Promise<number> {
  const request = { prompt: "a red circle on a blue background", cfgScale: 7.5, steps: 10, scheduler: "ddim" as const, width: 128, height: 128 };
  const seeds = (round: number) => Array.from({ length: k }, (_, i) => round * k + i);
  await generateSdBatch(model, { ...request, steps: 2, seeds: seeds(0) }); // warm-up at this batch size
  let images = 0;
  const t0 = performance.now();
  for (let round = 0; images < 8 || performance.now() - t0 < 2000; round++) images += (await generateSdBatch(model, { ...request, seeds: seeds(round) })).length;
  return (performance.now() - t0) / 1000 / images;
}

/** Largest |diff| of the four fixture cases against diffusers' images (sd_expected.json). */
async function referenceDiff(model: SdExport): Promise<number> {
  let worst = 0;
  for (const c of sdCases()) worst = Math.max(worst, maxAbsDiff((await generateSd(model, sdRequest(c))).data, sdReferenceImage(c)));
  return worst;
}
