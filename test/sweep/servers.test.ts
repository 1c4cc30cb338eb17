/**
 * The sweep through real HTTP servers on 127.0.0.1 (test/helpers/a1111-server.ts and
 * comfyui-server.ts, backed by the analytic generator): stopped midway, then re-run, it completes
 * with every planned image generated exactly once, as counted on the server, and none lost.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAnalyticGenerator } from "../../src/generators/analytic/index.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { runSweep } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec, type GeneratorSpec } from "../../src/sweep/spec.js";
import { startA1111Server } from "../helpers/a1111-server.js";
import { setUpCliTest } from "../helpers/cli.js";
import { startComfyServer } from "../helpers/comfyui-server.js";
import { fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-servers-"));
});
afterAll(async () => {
  for (const close of closers) await close();
});

const analytic = createAnalyticGenerator({ steps: 8 });
const backend = async (req: GenerationRequest) => (await analytic.generate({ ...req, steps: 8 })).bytes;

/** 2 scales x 2 negative prompts x 2 prompts x 2 seeds = 16 images. */
function serverSpec(name: string, generator: GeneratorSpec) {
  return parseSweepSpec(
    {
      name,
      generator,
      prompts: ["red circle", "blue square"],
      negative_prompts: ["", "green triangle"],
      guidance_scales: [1, 3],
      seeds_per_prompt: 2,
      size: 32,
      steps: 8,
      reference: fixture("images", "real"),
      metrics: ["fid", "pr"],
      output: name,
    },
    { baseDir: tmp },
  );
}

/** Runs the sweep, stopping it once `stopAfter` images are done; then runs it again to the end. */
async function stopAndResume(name: string, generator: GeneratorSpec, generatedOnServer: () => GenerationRequest[]) {
  const spec = serverSpec(name, generator);
  const controller = new AbortController();
  const common = { weights, device: "cpu" as const, threads: 0 };
  const first = await runSweep({
    ...common,
    spec,
    signal: controller.signal,
    onImages: (p) => {
      if (p.generated >= 5) controller.abort();
    },
  });
  expect(first.aborted).toBe(true);
  expect(first.report).toBeUndefined();
  expect(first.generated).toBeLessThan(16);
  const afterFirst = generatedOnServer().length;

  const second = await runSweep({ ...common, spec });
  expect(second).toMatchObject({ aborted: false, failed: [] });
  expect(second.summary.done).toBe(first.generated);
  expect(first.generated + second.generated).toBe(16);

  // Counted on the server: 16 images, each (prompt, negative, scale, seed) once.
  const served = generatedOnServer();
  expect(afterFirst).toBe(first.generated);
  expect(served).toHaveLength(16);
  expect(new Set(served.map((r) => `${r.prompt}|${r.negativePrompt}|${r.cfgScale}|${r.seed}`)).size).toBe(16);
  // none lost: every planned image on disk and every cell evaluated with all of its images
  for (const im of second.plan.images) expect(existsSync(path.join(spec.output, "images", `${im.key}.png`))).toBe(true);
  expect(second.results!.cells.map((c) => c.n)).toEqual([4, 4, 4, 4]);
  expect(existsSync(second.report!.html)).toBe(true);
}

describe("the analytic generator through the spec", () => {
  it("draws its own reference (analytic:real) once and evaluates every cell against it", async () => {
    const spec = parseSweepSpec(
      {
        name: "analytic",
        generator: { type: "analytic", steps: 8 },
        prompts: ["red circle", "blue square"],
        guidance_scales: [1, 5],
        seeds_per_prompt: 5,
        size: 32,
        steps: 8,
        reference: { source: "analytic:real", count: 12, seed: 3 },
        metrics: ["fid", "kid", "pairwise"],
        output: "analytic",
      },
      { baseDir: tmp },
    );
    const outcome = await runSweep({ spec, weights, device: "cpu", threads: 0 });
    expect(outcome.results).toMatchObject({ generator: "analytic", real: "analytic:real", n_real: 12 });
    expect(outcome.results!.cells.map((c) => c.n)).toEqual([10, 10]);
    for (const c of outcome.results!.cells) expect((c.metrics as { fid: number }).fid).toBeGreaterThan(0);
    expect(existsSync(path.join(spec.output, "reference", "analytic-real-n12-seed3", ".complete.json"))).toBe(true);
  });
});

describe("the sweep through generator servers", () => {
  it("A1111: stopped midway and re-run, no image is generated twice and none is lost", async () => {
    const server = await startA1111Server(backend, { delayMs: 20 });
    closers.push(() => server.close());
    await stopAndResume("a1111", { type: "a1111", baseUrl: server.baseUrl, concurrency: 2 }, () => server.generated);
    // the runner kept to the generator's concurrency
    expect(server.maxInFlight).toBeLessThanOrEqual(2);
  });

  it("ComfyUI: stopped midway and re-run, no image is generated twice and none is lost", async () => {
    const server = await startComfyServer(backend, { delayMs: 20 });
    closers.push(() => server.close());
    const workflow = {
      "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "model.safetensors" } },
      "6": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
      "7": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
      "5": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 } },
      "3": {
        class_type: "KSampler",
        inputs: { model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0], seed: 0, steps: 20, cfg: 7, sampler_name: "euler", scheduler: "normal", denoise: 1 },
      },
      "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
      "9": { class_type: "SaveImage", inputs: { filename_prefix: "diffeval", images: ["8", 0] } },
    };
    await stopAndResume("comfyui", { type: "comfyui", baseUrl: server.baseUrl, workflow, pollIntervalMs: 5 }, () => server.generated);
  });
});
