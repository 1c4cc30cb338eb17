/**
 * A sweep driven by the built-in Stable Diffusion (`onnx-sd`) on the sd-tiny fixture export:
 * s in {1, 3, 7.5} x {no negative, one negative}, through the harness to its report. Each image on
 * disk is the one `generateSd` gives for the request the manifest records.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { encodeSdPng, generateSd, openSdExport } from "../../src/generators/onnx-sd/index.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;
let outcome: SweepOutcome;
const lines: string[] = [];

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-sd-"));
  const spec = parseSweepSpec(
    {
      name: "sd-tiny",
      generator: { type: "onnx-sd", model: fixture("sd", "sd-tiny"), scheduler: "ddim" },
      prompts: ["a red circle on a blue background", "a photo of a cat"],
      negative_prompts: ["", "blurry, low quality"],
      guidance_scales: [1, 3, 7.5],
      seeds_per_prompt: 2,
      size: 64,
      steps: 4,
      reference: fixture("images", "real"),
      metrics: ["fid", "pairwise"],
      output: "runs",
    },
    { baseDir: tmp },
  );
  outcome = await runSweep({ spec, weights, device: "cpu", threads: 0, log: (l) => lines.push(l) });
}, 240_000);

describe("a sweep with the onnx-sd generator", () => {
  it("generates every cell's images and writes the report", () => {
    expect(outcome).toMatchObject({ aborted: false, failed: [], generated: 24 });
    expect(outcome.results!.generator).toBe("onnx-sd");
    expect(outcome.results!.cells).toHaveLength(6);
    for (const cell of outcome.results!.cells) {
      expect(cell.n).toBe(4);
      expect(Number.isFinite(cell.metrics.fid)).toBe(true);
    }
    expect(existsSync(outcome.report!.html)).toBe(true);
    expect(lines.some((l) => /^onnx-sd: .* on cpu/.test(l))).toBe(true);
  });

  it("each image is generateSd's for the recorded request (guidance and negative prompt as asked)", async () => {
    const manifest = readFileSync(path.join(tmp, "runs", "manifest.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const guidedWithNegative = manifest.find((m) => m.params.cfg_scale === 7.5 && m.params.negative_prompt !== "");
    expect(guidedWithNegative.used).toMatchObject({ scheduler: "ddim", steps: 4, unetCalls: 4, guided: true, width: 64, height: 64, device: "cpu" });
    // the cost the generator counted: both halves of each guided UNet batch, the conditional pass alone at s = 1
    expect(guidedWithNegative.model_evaluations).toBe(2 * guidedWithNegative.used.unetCalls);
    const unguided = manifest.find((m) => m.params.cfg_scale === 1);
    expect(unguided.used.guided).toBe(false);
    expect(unguided.model_evaluations).toBe(unguided.used.unetCalls);
    const model = await openSdExport(fixture("sd", "sd-tiny"), "cpu");
    try {
      const image = await generateSd(model, {
        prompt: guidedWithNegative.prompt,
        negativePrompt: guidedWithNegative.params.negative_prompt,
        cfgScale: 7.5,
        steps: 4,
        scheduler: "ddim",
        seed: guidedWithNegative.seed,
        width: 64,
        height: 64,
      });
      const onDisk = await sharp(path.join(tmp, "runs", guidedWithNegative.file)).raw().toBuffer();
      const expected = await sharp(await encodeSdPng(image)).raw().toBuffer();
      expect(Buffer.compare(onDisk, expected)).toBe(0);
    } finally {
      await model.close();
    }
  });
});
