/**
 * The built-in Stable Diffusion against diffusers' OnnxStableDiffusionPipeline on the sd-tiny
 * fixture export (../shared/fixtures/sd): the seeds' latents, the four reference images, the
 * guidance conventions (s = 1 skips the unconditional pass, s < 1 is computed), other exports'
 * input types (int64 ids and timesteps, a scalar timestep, float16 I/O), and bad folders.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NumpyRandomState } from "../../../src/random/numpy-random.js";
import { generateSd, openSdExport, type SdExport } from "../../../src/generators/onnx-sd/index.js";
import { loadNpy, maxAbsDiff } from "../../helpers/arrays.js";
import { rejectionOf } from "../../helpers/errors.js";
import { fixture } from "../../helpers/fixtures.js";
import { extraInput, halfOutput, retypeInput } from "../../helpers/onnx-edit.js";
import { sdCases, sdReferenceImage, sdRequest, type SdCase } from "../../helpers/sd.js";

const SD = fixture("sd", "sd-tiny");
const cases = sdCases();
const LATENTS = 4 * 16 * 16;

let model: SdExport;
let tmp: string;
beforeAll(async () => {
  model = await openSdExport(SD, "cpu");
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-sd-"));
});
afterAll(async () => {
  await model?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("initial latents", () => {
  it("are numpy's RandomState(seed).randn(1, 4, 16, 16) for seeds 0-3", () => {
    for (const seed of [0, 1, 2, 3]) {
      const ours = Float32Array.from(new NumpyRandomState(seed).randn(LATENTS));
      const theirs = loadNpy(fixture("sd", "reference", `sd_latents_seed${seed}.npy`));
      expect(theirs.shape).toEqual([1, 4, 16, 16]);
      expect(maxAbsDiff(ours, theirs.data)).toBeLessThanOrEqual(1e-7);
    }
  });
});

describe("the reference images (diffusers' OnnxStableDiffusionPipeline)", () => {
  for (const c of cases) {
    it(`${c.name}: ${c.scheduler}, s=${c.guidance_scale}, ${c.steps} steps, seed ${c.seed}, within 1e-4`, async () => {
      const image = await generateSd(model, sdRequest(c));
      expect([image.height, image.width]).toEqual([128, 128]);
      expect(image.timesteps).toEqual(c.timesteps);
      expect(image.guided).toBe(c.guidance_scale !== 1);
      expect(maxAbsDiff(image.data, sdReferenceImage(c))).toBeLessThanOrEqual(1e-4);
    });
  }

  it("explicit latents give the seed's image; progress is reported per UNet call", async () => {
    const c = cases[2]; // PNDM: steps + 1 calls
    const latents = loadNpy(fixture("sd", "reference", `sd_latents_seed${c.seed}.npy`)).data as Float32Array;
    const steps: number[] = [];
    const image = await generateSd(model, { ...sdRequest(c), seed: 12345, latents, onStep: (done, total) => steps.push(done * 100 + total) });
    expect(maxAbsDiff(image.data, sdReferenceImage(c))).toBeLessThanOrEqual(1e-4);
    expect(steps).toEqual(Array.from({ length: 11 }, (_, i) => (i + 1) * 100 + 11));
  });
});

describe("guidance", () => {
  /** The model with its UNet calls counted by batch size. */
  function counting(): { model: SdExport; batches: number[] } {
    const batches: number[] = [];
    return {
      batches,
      model: { ...model, predict: (sample, batch, ...rest) => (batches.push(batch), model.predict(sample, batch, ...rest)) },
    };
  }
  const base = { prompt: "a photo of a cat", steps: 3, scheduler: "ddim" as const, seed: 7, width: 64, height: 64 };

  it("at s = 1 runs the conditional branch alone; otherwise [uncond, cond] in one batch", async () => {
    const one = counting();
    await generateSd(one.model, { ...base, cfgScale: 1, negativePrompt: "ignored at s = 1" });
    expect(one.batches).toEqual([1, 1, 1]);
    const guided = counting();
    await generateSd(guided.model, { ...base, cfgScale: 3 });
    expect(guided.batches).toEqual([2, 2, 2]);
  });

  it("computes s < 1 (diffusers would give the s = 1 image): s = 0 is the negative prompt's own image", async () => {
    const atZero = await generateSd(model, { ...base, cfgScale: 0, negativePrompt: "a red circle on a blue background" });
    const negativeAlone = await generateSd(model, { ...base, cfgScale: 1, prompt: "a red circle on a blue background" });
    expect(maxAbsDiff(atZero.data, negativeAlone.data)).toBeLessThanOrEqual(1e-5);
    const atOne = await generateSd(model, { ...base, cfgScale: 1 });
    const atHalf = await generateSd(model, { ...base, cfgScale: 0.5 });
    expect(maxAbsDiff(atHalf.data, atOne.data)).toBeGreaterThan(1e-3);
  });

  it("a negative prompt changes the image only through the unconditional slot", async () => {
    const plain = await generateSd(model, { ...base, cfgScale: 5 });
    const empty = await generateSd(model, { ...base, cfgScale: 5, negativePrompt: "" });
    const negative = await generateSd(model, { ...base, cfgScale: 5, negativePrompt: "blurry" });
    expect(maxAbsDiff(plain.data, empty.data)).toBe(0);
    expect(maxAbsDiff(plain.data, negative.data)).toBeGreaterThan(1e-3);
  });
});

describe("other exports' inputs (read from the sessions' metadata)", () => {
  /** A copy of sd-tiny with some of its models rewritten. */
  function variant(name: string, edits: Partial<Record<"text_encoder" | "unet" | "vae_decoder", (m: Uint8Array) => Uint8Array>>): string {
    const dir = path.join(tmp, name);
    cpSync(SD, dir, { recursive: true });
    for (const [part, edit] of Object.entries(edits)) {
      const file = path.join(dir, part, "model.onnx");
      const bytes = edit(new Uint8Array(readFileSync(file)));
      rmSync(file, { force: true });
      writeFileSync(file, bytes);
    }
    return dir;
  }
  const ddim = cases[0];

  async function imageOf(dir: string, c: SdCase = ddim) {
    const m = await openSdExport(dir, "cpu");
    try {
      return { image: await generateSd(m, sdRequest(c)), half: m.halfPrecision };
    } finally {
      await m.close();
    }
  }

  it("int64 input_ids and an int64 timestep [1] (optimum <= 1.23)", async () => {
    const dir = variant("int64", {
      text_encoder: (m) => retypeInput(m, "input_ids", { type: "int64" }),
      unet: (m) => retypeInput(m, "timestep", { type: "int64" }),
    });
    const { image } = await imageOf(dir);
    expect(maxAbsDiff(image.data, sdReferenceImage(ddim))).toBeLessThanOrEqual(1e-4);
  });

  it("a float32 scalar timestep (optimum >= 1.24)", async () => {
    const dir = variant("scalar", { unet: (m) => retypeInput(m, "timestep", { scalar: true }) });
    const euler = cases[1];
    const { image } = await imageOf(dir, euler);
    expect(maxAbsDiff(image.data, sdReferenceImage(euler))).toBeLessThanOrEqual(1e-4);
  });

  it("float16 inputs and outputs (an fp16 export) are converted both ways", async () => {
    const dir = variant("fp16", {
      text_encoder: (m) => halfOutput(m, "last_hidden_state"),
      unet: (m) => halfOutput(retypeInput(retypeInput(m, "sample", { type: "float16" }), "encoder_hidden_states", { type: "float16" }), "out_sample"),
      vae_decoder: (m) => halfOutput(retypeInput(m, "latent_sample", { type: "float16" }), "sample"),
    });
    const { image, half } = await imageOf(dir);
    expect(half).toBe(true);
    // Half precision at every model boundary: close to the float32 image, not equal to it.
    const d = maxAbsDiff(image.data, sdReferenceImage(ddim));
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(2e-2);
  });

  it("an SDXL-style UNet (an input SD 1.x/2.x do not have) is refused by name", async () => {
    const dir = variant("sdxl", { unet: (m) => extraInput(m, "text_embeds", ["batch_size", 32]) });
    const e = await rejectionOf(openSdExport(dir, "cpu"));
    expect(e.code).toBe("E_SD_MODEL_INPUTS");
    expect(e.message).toContain(path.join(dir, "unet", "model.onnx"));
    expect(e.message).toContain("text_embeds");
  });
});

/** A copy of sd-tiny whose scheduler_config.json has `patch` applied. */
function withSchedulerConfig(name: string, patch: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  cpSync(SD, dir, { recursive: true });
  const file = path.join(dir, "scheduler", "scheduler_config.json");
  const config = JSON.parse(readFileSync(file, "utf8"));
  rmSync(file);
  writeFileSync(file, JSON.stringify({ ...config, ...patch }));
  return dir;
}

describe("the scheduler config", () => {
  it("gets the pipelines' fix (steps_offset 1, clip_sample false), as diffusers' constructors rewrite it", async () => {
    const m = await openSdExport(withSchedulerConfig("old-config", { _class_name: "DDIMScheduler", steps_offset: 0, clip_sample: true }), "cpu");
    try {
      const { scheduler: _s, ...rest } = sdRequest(cases[0]);
      const image = await generateSd(m, rest);
      expect(image.scheduler).toBe("ddim");
      expect(image.timesteps).toEqual(cases[0].timesteps);
      expect(maxAbsDiff(image.data, sdReferenceImage(cases[0]))).toBeLessThanOrEqual(1e-4);
    } finally {
      await m.close();
    }
  });
});

describe("bad folders and requests", () => {
  it("a folder that lacks a part names what is missing", async () => {
    const dir = path.join(tmp, "no-unet");
    cpSync(SD, dir, { recursive: true });
    rmSync(path.join(dir, "unet"), { recursive: true });
    const e = await rejectionOf(openSdExport(dir, "cpu"));
    expect(e.code).toBe("E_SD_EXPORT");
    expect(e.message).toContain(path.join("unet", "model.onnx"));
    expect((await rejectionOf(openSdExport(path.join(tmp, "nowhere"), "cpu"))).code).toBe("E_SD_EXPORT");
  });

  it("a size that is not a multiple of 8, or latents of the wrong size, are refused before any step", async () => {
    const c = cases[0];
    expect((await rejectionOf(generateSd(model, { ...sdRequest(c), width: 100 }))).code).toBe("E_GENERATOR_REQUEST");
    expect((await rejectionOf(generateSd(model, { ...sdRequest(c), latents: new Float32Array(10) }))).code).toBe("E_GENERATOR_REQUEST");
    expect((await rejectionOf(generateSd(model, { ...sdRequest(c), cfgScale: Number.NaN }))).code).toBe("E_GENERATOR_REQUEST");
  });

  it("a scheduler class that is not built in needs an explicit scheduler", async () => {
    const m = await openSdExport(withSchedulerConfig("lms", { _class_name: "LMSDiscreteScheduler" }), "cpu");
    try {
      const { scheduler: _s, ...rest } = sdRequest(cases[0]);
      const e = await rejectionOf(generateSd(m, { ...rest, steps: 2 }));
      expect(e.code).toBe("E_GENERATOR_REQUEST");
      expect(e.message).toMatch(/LMSDiscreteScheduler.*--scheduler ddim\|euler\|pndm/);
      const image = await generateSd(m, { ...rest, steps: 2, scheduler: "euler" });
      expect(image.scheduler).toBe("euler");
    } finally {
      await m.close();
    }
  });
});
