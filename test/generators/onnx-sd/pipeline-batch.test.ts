/**
 * Batched generation on the sd-tiny fixture export: several seeds of one prompt per UNet call
 * give, image for image, the single-seed runs (each scheduler, guided and at s = 1), with the
 * UNet run at batch 2k (k at s = 1) and the model evaluations still counted per image.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSd, generateSdBatch, openSdExport, type SdExport, type SdGenerateOptions } from "../../../src/generators/onnx-sd/index.js";
import { maxAbsDiff } from "../../helpers/arrays.js";
import { rejectionOf } from "../../helpers/errors.js";
import { fixture } from "../../helpers/fixtures.js";

let model: SdExport;
beforeAll(async () => {
  model = await openSdExport(fixture("sd", "sd-tiny"), "cpu");
});
afterAll(async () => {
  await model?.close();
});

/** The model with its UNet calls' batch sizes recorded. */
function counting(): { model: SdExport; batches: number[] } {
  const batches: number[] = [];
  return { batches, model: { ...model, predict: (sample, batch, ...rest) => (batches.push(batch), model.predict(sample, batch, ...rest)) } };
}

const SEEDS = [0, 1, 2, 3];
const base = { prompt: "a red circle on a blue background", steps: 4, width: 64, height: 64 };
const requests: [string, Omit<SdGenerateOptions, "seed">][] = [
  ["ddim, s = 7.5, a negative prompt", { ...base, scheduler: "ddim", cfgScale: 7.5, negativePrompt: "blurry, low quality" }],
  ["euler, s = 5", { ...base, scheduler: "euler", cfgScale: 5 }],
  ["pndm (a history per row), s = 3", { ...base, scheduler: "pndm", cfgScale: 3 }],
  ["ddim, s = 1 (conditional rows only)", { ...base, scheduler: "ddim", cfgScale: 1 }],
];

describe("generateSdBatch: seeds 0-3 of one prompt", () => {
  for (const [name, request] of requests) {
    it(`${name}: the four images of four single-seed runs, within 1e-5`, async () => {
      const counted = counting();
      const batch = await generateSdBatch(counted.model, { ...request, seeds: SEEDS });
      const guided = request.cfgScale !== 1;
      const calls = request.scheduler === "pndm" ? request.steps + 1 : request.steps;
      expect(counted.batches).toEqual(Array(calls).fill((guided ? 2 : 1) * SEEDS.length));
      expect(batch).toHaveLength(SEEDS.length);
      for (const [k, seed] of SEEDS.entries()) {
        const single = await generateSd(model, { ...request, seed });
        expect(maxAbsDiff(batch[k].data, single.data)).toBeLessThanOrEqual(1e-5);
        expect([batch[k].width, batch[k].height, batch[k].guided]).toEqual([64, 64, guided]);
        expect(batch[k].timesteps).toEqual(single.timesteps);
        expect(batch[k].modelEvaluations).toBe(single.modelEvaluations);
        expect(batch[k].modelEvaluations).toBe((guided ? 2 : 1) * calls);
      }
      // Different seeds give different images (the rows are not one image repeated).
      expect(maxAbsDiff(batch[0].data, batch[1].data)).toBeGreaterThan(1e-3);
    });
  }

  it("refuses no seeds, a repeated seed, or a seed numpy's RandomState does not take", async () => {
    const request = { ...base, scheduler: "ddim" as const, cfgScale: 2 };
    for (const seeds of [[], [1, 2, 1], [0, -1], [0.5]]) {
      const e = await rejectionOf(generateSdBatch(model, { ...request, seeds }));
      expect(e.code).toBe("E_GENERATOR_REQUEST");
    }
  });
});
