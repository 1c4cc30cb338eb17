/**
 * The Stable Diffusion sampling loop over an ONNX export, step for step as diffusers'
 * `OnnxStableDiffusionPipeline` runs it, so that a seed gives the same image:
 *
 * 1. Tokenise the prompt and the negative prompt ("" when there is none) to 77 ids (Hugging Face's
 *    CLIPTokenizer: no ftfy, truncated, padded with the tokenizer config's pad token) and encode
 *    both with the text encoder: [uncond, cond].
 * 2. Latents `np.random.RandomState(seed).randn(1, 4, h/8, w/8)` as float32 (or given ones), times
 *    the scheduler's `init_noise_sigma`. The scheduler comes from `scheduler_config.json` (with
 *    the pipelines' own fix: steps_offset 1, clip_sample false), of the class it names or the
 *    one asked for.
 * 3. For each scheduler timestep: `scale_model_input`, the UNet on [uncond, cond] in one batch,
 *    guidance `eps = eps_uncond + s (eps_cond - eps_uncond)`, the scheduler's step.
 * 4. `latents / scaling_factor` through the VAE decoder, then `clip(x / 2 + 0.5, 0, 1)`, HWC.
 * Several seeds of one prompt (generateSdBatch) share each UNet call: [uncond x k, cond x k].
 *
 * Guidance is the theory's for every s: at s = 1 the unconditional pass is skipped (the formula
 * gives the conditional prediction exactly), and s < 1 is computed. diffusers instead turns
 * guidance off for any s <= 1, so below 1 its images are the s = 1 image. Element-wise arithmetic
 * is float32 as numpy does it on float32 arrays (Math.fround after each operation).
 */
import { DiffevalError } from "../../errors.js";
import { NumpyRandomState } from "../../random/numpy-random.js";
import { createScheduler, parseSchedulerConfig, schedulerNameOfClass, SCHEDULERS, type SchedulerName } from "./schedulers/index.js";
import { LATENT_FACTOR, type SdExport } from "./export-folder.js";

export const DEFAULT_SIZE = 512;

export interface SdGenerateOptions {
  prompt: string;
  /** The unconditional slot's prompt; undefined and "" both mean the empty prompt. */
  negativePrompt?: string;
  /** s in eps = eps_uncond + s (eps_cond - eps_uncond) (= diffusers' guidance_scale). */
  cfgScale: number;
  steps: number;
  /** Default: the scheduler class the export's scheduler_config.json names. */
  scheduler?: SchedulerName;
  /** numpy RandomState seed of the initial latents (default 0); ignored when `latents` are given. */
  seed?: number;
  /** Initial latents [channels, h, w] before `init_noise_sigma` (as diffusers' `latents=` argument). */
  latents?: Float32Array;
  width?: number;
  height?: number;
  /** Called after each UNet call with (calls done, calls in all). */
  onStep?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface SdImage {
  /** Height x width x 3 values in [0, 1] (diffusers' `output_type="np"`, one image). */
  data: Float32Array;
  width: number;
  height: number;
  scheduler: SchedulerName;
  /** The timesteps the UNet saw, in order (PNDM repeats one: steps + 1 calls). */
  timesteps: readonly number[];
  /** Whether the unconditional branch ran (false at s = 1). */
  guided: boolean;
  /** UNet evaluations made: the batch size of each call, summed (2 per guided step, 1 at s = 1). */
  modelEvaluations: number;
}

export interface SdBatchOptions extends Omit<SdGenerateOptions, "seed" | "latents"> {
  /** numpy RandomState seeds, one image each, all denoised together (distinct, in [0, 2^32)). */
  seeds: readonly number[];
}

/** One image: `seed`'s numpy latents, or the given `latents`. */
export async function generateSd(model: SdExport, opts: SdGenerateOptions): Promise<SdImage> {
  const [image] = await sampleImages(model, opts, (cells) => [unitLatents(opts, cells)]);
  return image;
}

/**
 * One image per seed of one prompt, the UNet run on all of them at once: [uncond x k, cond x k]
 * rows (k rows at s = 1), as diffusers batches `num_images_per_prompt`. Each seed's latents are
 * drawn as its single-seed run draws them and every other operation is per row (the guidance,
 * the schedulers' element-wise steps, the decoder per image), so image k is the single-seed
 * run's image up to the UNet's own batch-size rounding.
 */
export async function generateSdBatch(model: SdExport, opts: SdBatchOptions): Promise<SdImage[]> {
  checkSeeds(opts.seeds);
  return sampleImages(model, opts, (cells) => opts.seeds.map((seed) => Float32Array.from(new NumpyRandomState(seed).randn(cells))));
}

type SampleOptions = Omit<SdGenerateOptions, "seed" | "latents">;

/** The loop over a batch of unit-Gaussian latents (one `cells`-long array per image). */
async function sampleImages(model: SdExport, opts: SampleOptions, unitsOf: (cells: number) => Float32Array[]): Promise<SdImage[]> {
  const width = sideOf(opts.width, model.nativeSize, "width");
  const height = sideOf(opts.height, model.nativeSize, "height");
  const h = height / LATENT_FACTOR;
  const w = width / LATENT_FACTOR;
  const cells = model.latentChannels * h * w;
  if (!Number.isFinite(opts.cfgScale)) throw requestError(`the guidance scale must be a finite number, got ${opts.cfgScale}`);

  const schedulerName = opts.scheduler ?? defaultScheduler(model);
  const config = parseSchedulerConfig(asPipelineFixesIt(model.schedulerConfig.json), model.schedulerConfig.file, schedulerName);
  const scheduler = createScheduler(schedulerName, config, opts.steps);

  const units = unitsOf(cells);
  const images = units.length;
  // Guidance: uncond rows first, as diffusers concatenates, or the cond rows alone at s = 1.
  const guided = opts.cfgScale !== 1;
  const texts = guided ? [opts.negativePrompt ?? "", opts.prompt] : [opts.prompt];
  const ids = model.tokenizer.encodeBatch(texts, { flavour: "hf" });
  const embeddings = repeatRows(await model.encodeText(ids, texts.length), texts.length, images);
  const batch = texts.length * images;

  const sigma = Math.fround(scheduler.initNoiseSigma);
  let latents: Float32Array = concat(units).map((v) => Math.fround(v * sigma));
  const s = Math.fround(opts.cfgScale);
  const total = scheduler.timesteps.length;
  let unetRows = 0;
  for (let i = 0; i < total; i++) {
    opts.signal?.throwIfAborted();
    const input = scheduler.scaleModelInput(latents, i);
    const batchInput = guided ? twice(input) : input;
    const out = await model.predict(batchInput, batch, h, w, scheduler.timesteps[i], embeddings);
    unetRows += batch;
    const eps = guided ? guide(out.subarray(0, latents.length), out.subarray(latents.length), s) : out;
    assertFinite(eps, `the UNet's prediction at step ${i + 1} (timestep ${scheduler.timesteps[i]})`);
    latents = scheduler.step(eps, i, latents);
    opts.onStep?.(i + 1, total);
  }

  const scale = Math.fround(1 / model.vaeScaling);
  const out: SdImage[] = [];
  for (let r = 0; r < images; r++) {
    const scaled = latents.subarray(r * cells, (r + 1) * cells).map((v) => Math.fround(v * scale));
    const decoded = await model.decode(scaled, h, w);
    out.push({
      data: toImage(decoded.data, decoded.height, decoded.width),
      width: decoded.width,
      height: decoded.height,
      scheduler: schedulerName,
      timesteps: scheduler.timesteps,
      guided,
      // Per image: the rows the UNet ran, shared out (2 per guided step, 1 at s = 1).
      modelEvaluations: unetRows / images,
    });
  }
  return out;
}

function checkSeeds(seeds: readonly number[]): void {
  if (seeds.length === 0) throw requestError("a batch needs at least one seed");
  const bad = seeds.find((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff);
  if (bad !== undefined) throw requestError(`seed ${bad} is not an integer in [0, 2^32) (numpy's RandomState)`);
  const repeated = seeds.find((v, i) => seeds.indexOf(v) !== i);
  if (repeated !== undefined) throw requestError(`seed ${repeated} is given twice; each seed makes one image`);
}

function defaultScheduler(model: SdExport): SchedulerName {
  const json = model.schedulerConfig.json as { _class_name?: unknown } | null;
  const className = typeof json?._class_name === "string" ? json._class_name : undefined;
  const name = schedulerNameOfClass(className);
  if (!name) {
    throw requestError(
      `${model.schedulerConfig.file} names the scheduler ${className ?? "(no _class_name)"}, which is not built in; choose one with --scheduler ${SCHEDULERS.join("|")}`,
    );
  }
  return name;
}

/**
 * The scheduler config as diffusers' Stable Diffusion pipelines use it: their constructors rewrite
 * an outdated config to `steps_offset = 1` and `clip_sample = false` (with a deprecation warning),
 * and a scheduler swapped in later with `from_config(pipe.scheduler.config)` inherits the fix.
 */
function asPipelineFixesIt(json: unknown): unknown {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return json;
  return { ...json, steps_offset: 1, clip_sample: false };
}

function sideOf(value: number | undefined, native: number | undefined, name: string): number {
  const v = value ?? native ?? DEFAULT_SIZE;
  if (!Number.isInteger(v) || v < LATENT_FACTOR || v % LATENT_FACTOR !== 0) {
    throw requestError(`${name} must be a positive multiple of ${LATENT_FACTOR} (the VAE's factor), got ${v}`);
  }
  return v;
}

/** Unit Gaussian latents: numpy's stream of `seed`, or the caller's. */
function unitLatents(opts: SdGenerateOptions, cells: number): Float32Array {
  if (!opts.latents) return Float32Array.from(new NumpyRandomState(opts.seed ?? 0).randn(cells));
  if (opts.latents.length !== cells) throw requestError(`the given latents hold ${opts.latents.length} values; this size needs ${cells} (channels x height/8 x width/8)`);
  return opts.latents;
}

/** Each of `rows` equal-length rows of `x` repeated `times` times, in place: [a, b] -> [a x times, b x times]. */
function repeatRows(x: Float32Array, rows: number, times: number): Float32Array {
  if (times === 1) return x;
  const size = x.length / rows;
  const out = new Float32Array(x.length * times);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < times; t++) out.set(x.subarray(r * size, (r + 1) * size), (r * times + t) * size);
  }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function twice(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length * 2);
  out.set(x, 0);
  out.set(x, x.length);
  return out;
}

/** eps_uncond + s (eps_cond - eps_uncond), float32 operation by operation as numpy computes it. */
export function guide(uncond: Float32Array, cond: Float32Array, s: number): Float32Array {
  const out = new Float32Array(uncond.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(uncond[i] + Math.fround(s * Math.fround(cond[i] - uncond[i])));
  return out;
}

/** [3, H, W] decoder output to H x W x 3 values `clip(x / 2 + 0.5, 0, 1)`. */
function toImage(chw: Float32Array, height: number, width: number): Float32Array {
  assertFinite(chw, "the VAE decoder's output");
  const plane = height * width;
  const out = new Float32Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.fround(chw[c * plane + p] / 2 + 0.5);
      out[p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}

function assertFinite(values: Float32Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new DiffevalError("E_SD_NAN", `${what} holds ${values[i]} at index ${i}: the model diverged (an fp16 export overflowing, or broken weights); no image was written`);
    }
  }
}

function requestError(message: string): DiffevalError {
  return new DiffevalError("E_GENERATOR_REQUEST", message);
}

