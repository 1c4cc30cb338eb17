/**
 * Control images in sweeps (issue 20): a sweep with a `control` field and a control_weight axis
 * through the A1111 and ComfyUI test servers, which record the ControlNet unit / uploaded image /
 * strength they received per cell; the command generator's {control} placeholders; the built-in
 * generators' refusal; and the per-cell control_f1 against an independent recomputation.
 *
 * The servers' backend blends the analytic generator's image with the control image by the
 * control weight it received (0: the analytic image, 1: the control itself), so the edge
 * adherence of a cell follows its weight the way a ControlNet's would.
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAnalyticGenerator } from "../../src/generators/analytic/index.js";
import { createCommandGenerator, substituteArg } from "../../src/generators/command.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { decodeImage } from "../../src/io/decode.js";
import { controlF1 } from "../../src/metrics/control-f1.js";
import { sweepPlots } from "../../src/report/sweep-plots.js";
import { planSweep } from "../../src/sweep/plan.js";
import { runSweep } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec, type GeneratorSpec } from "../../src/sweep/spec.js";
import { startA1111Server } from "../helpers/a1111-server.js";
import { setUpCliTest } from "../helpers/cli.js";
import { startComfyServer } from "../helpers/comfyui-server.js";
import { errorOf, rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;
const closers: (() => Promise<void>)[] = [];
const CONTROL = fixture("control", "control_00.png");
const CONTROL_BYTES = new Uint8Array(readFileSync(CONTROL));
const WEIGHTS = [0, 0.5, 1];

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-control-"));
});
afterAll(async () => {
  for (const close of closers) await close();
});

const analytic = createAnalyticGenerator({ steps: 8 });
/** sha256 of every image the backend returned: a saved sample must be one of them, never a detected map. */
const backendImages = new Set<string>();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * The analytic image (upscaled to the control's 256x256) blended with the control by the weight the
 * server received: at weight 1 the image is the control, whose edges are its control's exactly.
 */
async function backend(req: GenerationRequest): Promise<Uint8Array> {
  const w = Number(req.extra.control_weight ?? req.extra.control_strength ?? 0);
  const { width, height } = await sharp(CONTROL).metadata();
  const base = await sharp((await analytic.generate({ ...req, extra: {}, steps: 8 })).bytes).removeAlpha().resize(width, height).raw().toBuffer();
  const control = await sharp(CONTROL).removeAlpha().raw().toBuffer();
  const out = Buffer.alloc(base.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - w) * base[i] + w * control[i]);
  const png = new Uint8Array(await sharp(out, { raw: { width: width!, height: height!, channels: 3 } }).png().toBuffer());
  backendImages.add(sha(png));
  return png;
}

/** 3 cells (control_weight 0, 0.5, 1) x 1 prompt x 2 seeds = 6 images. */
function controlSpec(name: string, generator: GeneratorSpec, control: Record<string, unknown> = {}) {
  return parseSweepSpec(
    {
      name,
      generator,
      prompts: ["red circle"],
      guidance_scales: [3],
      seeds_per_prompt: 2,
      size: 32,
      steps: 8,
      axes: { control_weight: WEIGHTS },
      control: { image: CONTROL, model: "control_v11p_sd15_canny", ...control },
      reference: fixture("images", "real"),
      metrics: ["fid", "vendi"], // fid for the FID-against-control_f1 trade-off plot
      output: name,
    },
    { baseDir: tmp },
  );
}

/** Each cell's control_f1 recomputed from its saved images (ControlNet's canny thresholds). */
async function recomputedF1(files: string[]): Promise<number> {
  const control = await decodeImage(CONTROL_BYTES, CONTROL);
  let sum = 0;
  for (const f of files) sum += controlF1(await decodeImage(new Uint8Array(readFileSync(f)), f), control, { low: 100, high: 200 }).f1;
  return sum / files.length;
}

async function expectControlF1PerCell(outcome: Awaited<ReturnType<typeof runSweep>>) {
  const cells = outcome.results!.cells;
  expect(cells.map((c) => c.params.control_weight)).toEqual(WEIGHTS);
  for (const c of cells) {
    expect(c.n).toBe(2);
    const f1 = (c.metrics as { control_f1: number }).control_f1;
    expect(f1).toBeCloseTo(await recomputedF1(c.samples), 12);
  }
  const f1s = cells.map((c) => (c.metrics as { control_f1: number }).control_f1);
  // The backend follows the control more with a higher weight; at 1 the image is the control itself.
  expect(f1s[2]).toBe(1);
  expect(f1s[0]).toBeLessThan(0.5);
  // results.csv has the column
  const [header, ...rows] = readFileSync(outcome.report!.csv, "utf8").trim().split("\n").map((l) => l.split(","));
  expect(rows.map((r) => Number(r[header.indexOf("control_f1")]))).toEqual(f1s.map((f) => Number(String(f))));
  // and the "Metrics against control_weight" plot has a control adherence panel
  const html = readFileSync(outcome.report!.html, "utf8");
  expect(html).toContain("Metrics against control_weight");
  expect(html).toContain("control adherence (edge F1)");
  // and the trade-off plot: FID against control_f1, one point per cell that has both
  const control = sweepPlots(outcome.results!).find((p) => p.id === "plot-control");
  expect(control?.title).toBe("FID against control adherence");
  expect(html).toContain("FID against control adherence");
  const points = (control!.spec as { data: { values: { fid: number | null; control_f1: number | null }[] } }).data.values;
  expect(points.filter((v) => v.fid !== null && v.control_f1 !== null)).toHaveLength(cells.filter((c) => c.metrics.fid !== undefined).length);
}

/** The saved samples: exactly the planned images, each one the backend generated (no detected map). */
function expectSamplesOnly(output: string) {
  const files = readdirSync(path.join(output, "images"), { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
  expect(files).toHaveLength(6);
  for (const d of files) expect(backendImages.has(sha(new Uint8Array(readFileSync(path.join(d.parentPath, d.name)))))).toBe(true);
}

describe("control images through the A1111 server (sd-webui-controlnet)", () => {
  it("sends one ControlNet unit per request with the cell's weight, and keeps the detected map out of the samples", async () => {
    const server = await startA1111Server(backend);
    closers.push(() => server.close());
    const spec = controlSpec("a1111-control", { type: "a1111", baseUrl: server.baseUrl });
    const outcome = await runSweep({ spec, weights, device: "cpu", threads: 0 });
    expect(outcome).toMatchObject({ aborted: false, failed: [] });

    expect(server.payloads).toHaveLength(6);
    const base64 = Buffer.from(CONTROL_BYTES).toString("base64");
    const units = server.payloads.map((p) => (p.alwayson_scripts as { controlnet: { args: Record<string, unknown>[] } }).controlnet.args);
    for (const args of units) {
      expect(args).toHaveLength(1);
      expect(args[0]).toMatchObject({
        enabled: true,
        image: base64,
        module: "canny",
        model: "control_v11p_sd15_canny",
        guidance_start: 0,
        guidance_end: 1,
        processor_res: 32,
        threshold_a: 100,
        threshold_b: 200,
      });
    }
    // Per cell, in plan order: two requests with each weight.
    expect(units.map((a) => a[0].weight).sort()).toEqual([0, 0, 0.5, 0.5, 1, 1]);
    expect(server.generated.map((r) => r.extra.control_weight).sort()).toEqual([0, 0, 0.5, 0.5, 1, 1]);
    expectSamplesOnly(spec.output);
    await expectControlF1PerCell(outcome);
  });

  it("sends module none for a control that already is an edge map, and the start/end axes", async () => {
    const server = await startA1111Server(backend);
    closers.push(() => server.close());
    const spec = parseSweepSpec(
      {
        name: "a1111-edges",
        generator: { type: "a1111", baseUrl: server.baseUrl },
        prompts: ["red circle"],
        guidance_scales: [3],
        size: [32, 24],
        steps: 8,
        axes: { control_start: [0, 0.25], control_end: [0.75] },
        control: { image: CONTROL, model: "m", preprocess: false, canny: [50, 150] },
        reference: fixture("images", "real"),
        output: "a1111-edges",
      },
      { baseDir: tmp },
    );
    const plan = planSweep(spec, [{ text: "red circle" }]);
    const requests = plan.images.map((im) => im.request.control);
    expect(requests.map((c) => [c!.weight, c!.start, c!.end])).toEqual([
      [1, 0, 0.75],
      [1, 0.25, 0.75],
    ]);
    const gen = (await import("../../src/generators/a1111.js")).createA1111Generator({ baseUrl: server.baseUrl });
    await gen.generate(plan.images[1].request);
    const unit = (server.payloads[0].alwayson_scripts as { controlnet: { args: Record<string, unknown>[] } }).controlnet.args[0];
    expect(unit).toMatchObject({ module: "none", model: "m", weight: 1, guidance_start: 0.25, guidance_end: 0.75, processor_res: 24, threshold_a: 50, threshold_b: 150 });
  });
});

describe("control images through the ComfyUI server", () => {
  const workflow = {
    "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "model.safetensors" } },
    "6": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
    "7": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
    "5": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 } },
    "10": { class_type: "ControlNetLoader", inputs: { control_net_name: "other.safetensors" } },
    "11": { class_type: "LoadImage", inputs: { image: "example.png" } },
    "13": { class_type: "Canny", inputs: { image: ["11", 0], low_threshold: 0.4, high_threshold: 0.8 } },
    "12": {
      class_type: "ControlNetApplyAdvanced",
      inputs: { positive: ["6", 0], negative: ["7", 0], control_net: ["10", 0], image: ["13", 0], strength: 1, start_percent: 0, end_percent: 1 },
    },
    "3": {
      class_type: "KSampler",
      inputs: { model: ["4", 0], positive: ["12", 0], negative: ["12", 1], latent_image: ["5", 0], seed: 0, steps: 20, cfg: 7, sampler_name: "euler", scheduler: "normal", denoise: 1 },
    },
    "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
    "9": { class_type: "SaveImage", inputs: { filename_prefix: "diffeval", images: ["8", 0] } },
  };

  it("uploads the control image once and sets LoadImage, strength and the ControlNet model per cell", async () => {
    const server = await startComfyServer(backend);
    closers.push(() => server.close());
    const spec = controlSpec("comfyui-control", { type: "comfyui", baseUrl: server.baseUrl, workflow, pollIntervalMs: 5 });
    const outcome = await runSweep({ spec, weights, device: "cpu", threads: 0 });
    expect(outcome).toMatchObject({ aborted: false, failed: [] });

    // One upload of the fixture's exact bytes, under a content-addressed name, to the input folder.
    expect(server.uploads).toHaveLength(1);
    const [upload] = server.uploads;
    expect(Buffer.from(upload.bytes).equals(Buffer.from(CONTROL_BYTES))).toBe(true);
    expect(upload).toMatchObject({ name: `diffeval-control-${sha(CONTROL_BYTES).slice(0, 16)}.png`, type: "input", overwrite: "true" });
    // What the server executed, per image: the cell's strength, the uploaded image, the spec's model.
    expect(server.generated).toHaveLength(6);
    for (const r of server.generated) {
      expect(r.extra).toMatchObject({ control_image: upload.name, control_model: "control_v11p_sd15_canny", control_start: 0, control_end: 1 });
    }
    expect(server.generated.map((r) => r.extra.control_strength).sort()).toEqual([0, 0, 0.5, 0.5, 1, 1]);
    // the text still reaches the sampler through the ControlNet node
    expect(server.generated.every((r) => r.prompt === "red circle")).toBe(true);
    expectSamplesOnly(spec.output);
    await expectControlF1PerCell(outcome);
  });

  it("refuses a control request when the workflow has no ControlNetApplyAdvanced", async () => {
    const server = await startComfyServer(backend);
    closers.push(() => server.close());
    const { "10": _l, "11": _i, "12": _a, "13": _c, ...plain } = workflow;
    const bare = { ...plain, "3": { ...workflow["3"], inputs: { ...workflow["3"].inputs, positive: ["6", 0], negative: ["7", 0] } } };
    const { createComfyGenerator } = await import("../../src/generators/comfyui.js");
    const gen = createComfyGenerator({ baseUrl: server.baseUrl, workflow: bare, pollIntervalMs: 5 });
    const spec = controlSpec("comfyui-bare", { type: "comfyui", baseUrl: server.baseUrl, workflow: bare });
    const { request } = planSweep(spec, [{ text: "red circle" }]).images[0];
    expect(await rejectionOf(gen.generate(request))).toMatchObject({ code: "E_GENERATOR_SPEC", message: expect.stringMatching(/needs a ControlNetApplyAdvanced node/) });
    expect(server.submissions).toHaveLength(0);
  });
});

describe("control images through the command generator", () => {
  const req: GenerationRequest = {
    prompt: "p",
    negativePrompt: "",
    cfgScale: 3,
    seed: 1,
    steps: 8,
    width: 32,
    height: 32,
    extra: { control_weight: 0.5 },
    control: { image: CONTROL, type: "canny", preprocess: true, canny: [100, 200], weight: 0.5, start: 0.1, end: 0.9 },
  };

  it("fills {control} {control_weight} {control_start} {control_end}", () => {
    expect(substituteArg("--control={control}", req, "/o.png")).toBe(`--control=${CONTROL}`);
    expect(["{control_weight}", "{control_start}", "{control_end}"].map((a) => substituteArg(a, req, "/o.png"))).toEqual(["0.5", "0.1", "0.9"]);
    const { control: _c, ...plain } = req;
    expect(errorOf(() => substituteArg("{control}", plain, "/o.png"))).toMatchObject({ code: "E_GENERATOR_REQUEST", message: expect.stringMatching(/no control image/) });
  });

  it("passes the control image to the program, and refuses an argv that would drop it", async () => {
    // cp {control} {out}: the "generated" image is the control itself.
    const gen = createCommandGenerator({ argv: ["cp", "{control}", "{out}"] });
    const image = await gen.generate(req);
    expect(Buffer.from(image.bytes).equals(Buffer.from(CONTROL_BYTES))).toBe(true);
    const deaf = createCommandGenerator({ argv: ["cp", CONTROL, "{out}"] });
    expect(await rejectionOf(deaf.generate(req))).toMatchObject({ code: "E_GENERATOR_REQUEST", message: expect.stringMatching(/no \{control\} placeholder/) });
  });
});

describe("the spec's control field", () => {
  const base = { name: "x", prompts: ["a", "b"], guidance_scales: [3], reference: "real", output: "x" };
  const parse = (extra: Record<string, unknown>) => () => parseSweepSpec({ ...base, generator: { type: "command", argv: ["x", "{out}"] }, ...extra }, { baseDir: tmp });

  it("the built-in generators refuse it, in the spec and at a request", async () => {
    for (const type of ["analytic", "onnx-sd"]) {
      const e = errorOf(() => parseSweepSpec({ ...base, generator: { type }, control: { image: CONTROL } }, { baseDir: tmp }));
      expect(e).toMatchObject({ code: "E_SWEEP_SPEC", message: expect.stringMatching(new RegExp(`spec.control: the built-in "${type}" generator has no ControlNet`)) });
    }
    const request: GenerationRequest = { prompt: "red circle", negativePrompt: "", cfgScale: 3, seed: 0, steps: 8, width: 32, height: 32, extra: {}, control: { image: CONTROL, type: "canny", preprocess: true, canny: [100, 200], weight: 1, start: 0, end: 1 } };
    expect(await rejectionOf(analytic.generate(request))).toMatchObject({ code: "E_GENERATOR_REQUEST", message: expect.stringMatching(/analytic generator: it has no ControlNet/) });
  });

  it("checks its fields and the control axes", () => {
    expect(errorOf(parse({ axes: { control_weight: [1] } }))).toMatchObject({ code: "E_SWEEP_SPEC", message: expect.stringMatching(/spec.axes.control_weight: needs a control image/) });
    expect(errorOf(parse({ control: { image: CONTROL }, axes: { control_weight: [-1] } })).message).toMatch(/spec.axes.control_weight\[0\]: expected a number in 0..10/);
    expect(errorOf(parse({ control: { image: CONTROL }, axes: { control_start: [0, 0.8], control_end: [0.5, 1] } })).message).toMatch(/every control_start must be below every control_end/);
    expect(errorOf(parse({ control: { image: CONTROL, type: "depth" } })).message).toMatch(/spec.control.type: expected "canny"/);
    expect(errorOf(parse({ control: { image: { first: CONTROL } } })).message).toMatch(/spec.control.image.first: keys are prompt indices/);
    expect(errorOf(() => parseSweepSpec({ ...base, generator: { type: "a1111", baseUrl: "http://127.0.0.1:1" }, control: { image: CONTROL } }, { baseDir: tmp })).message).toMatch(
      /spec.control.model: missing; the a1111 generator needs/,
    );
  });

  it("gives each prompt its own control image, and every prompt one", () => {
    const other = fixture("control", "control_01.png");
    const spec = parse({ control: { image: { 0: CONTROL, 1: other } } })();
    const plan = planSweep(spec, [{ text: "a" }, { text: "b" }]);
    expect(plan.images.map((im) => im.request.control!.image)).toEqual([CONTROL, other]);
    expect(errorOf(() => planSweep(parse({ control: { image: { 0: CONTROL } } })(), [{ text: "a" }, { text: "b" }])).message).toMatch(/no control image for prompt 1/);
    expect(errorOf(() => planSweep(parse({ control: { image: { 0: CONTROL, 1: other, 2: other } } })(), [{ text: "a" }, { text: "b" }])).message).toMatch(/spec.control.image.2: the sweep has 2 prompt/);
  });

  it("refuses an undecodable control image before generating anything", async () => {
    const server = await startA1111Server(backend);
    closers.push(() => server.close());
    const spec = parseSweepSpec(
      { ...base, prompts: ["red circle"], generator: { type: "a1111", baseUrl: server.baseUrl }, control: { image: fixture("images", "odd", "not-an-image.png"), model: "m" }, reference: fixture("images", "real"), output: "bad-control" },
      { baseDir: tmp },
    );
    expect(await rejectionOf(runSweep({ spec, weights, device: "cpu", threads: 0 }))).toMatchObject({ code: "E_IMAGE_DECODE", message: expect.stringMatching(/not-an-image\.png/) });
    expect(server.payloads).toHaveLength(0);
  });
});
