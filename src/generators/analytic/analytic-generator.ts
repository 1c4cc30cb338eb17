/**
 * The built-in `analytic` generator: an exact diffusion model of a known data distribution (see
 * class-catalogue.ts), sampled with real classifier-free guidance and negative prompts. No
 * weights, no network, deterministic.
 *
 * - Prompt -> class by keyword (classForPrompt). Negative prompt "" -> the class prior in the
 *   unconditional slot; otherwise the named class's model takes that slot.
 * - The image is rendered at the model's native resolution (default 32 x 32), clipped to [-1, 1],
 *   mapped to 8 bits by round((x + 1) * 127.5), and, when the request asks for another size,
 *   resized with nearest neighbour (sharp kernel "nearest"): no new pixel values, so an upscaled
 *   image is the native one in bigger pixels. Reference images (`analytic:real`) come at
 *   `referenceSize` (default: native); ask for that size in a sweep for like-for-like FID.
 * - `extra.sampler` picks "ddim" (default, the sampler the issue names) or "dpmpp-2m" (same cost,
 *   second order: exact to < 1% at 50 steps, where DDIM's variances come out ~10% low).
 * - `extra.guidance` (a sweep axis) picks "cfg" (default: the `guidance` option) or "classifier":
 *   Dhariwal & Nichol's classifier guidance with the exact Bayes classifier of the classes
 *   (sampler.ts says how the two rules relate).
 * - Option `unconditional`: "broad" (default) is the caption-dropout prior of class-catalogue.ts;
 *   "mixture" is the equal-weight mixture of the class models, the marginal the classifier's Bayes
 *   rule divides by. By Bayes, grad log p(y | x) = grad log p(x | y) - grad log p(x), so with
 *   "mixture" eps_cond - eps_uncond = -sqrt(1 - abar) grad log p(y | x_t) exactly and CFG at s is
 *   classifier guidance at s (Ho & Salimans 2022, Sec. 3.2); with "broad" they differ.
 */
import sharp from "sharp";
import { DiffevalError } from "../../errors.js";
import { createRng } from "../../random/rng.js";
import type { GeneratedImage, GenerationRequest, Generator } from "../generator.js";
import { analyticModel, classForPrompt, DEFAULT_RESOLUTION, type AnalyticModel } from "./class-catalogue.js";
import { sampleMixture } from "./gaussian-mixture.js";
import { mixtureClassifier } from "./gaussian-mixture.js";
import { GUIDANCE_RULES, SAMPLERS, sampleWith, type GuidanceName, type GuidanceRule, type SamplerName } from "./sampler.js";

export interface AnalyticGeneratorOptions {
  /** Native resolution of the model (default 32: 32 x 32 x 3 = 3072 dimensions). */
  resolution?: number;
  /** Steps used when a request's `steps` is not a positive integer (default 50). */
  steps?: number;
  /** Sampler used when the request's `extra.sampler` is absent (default "ddim"). */
  sampler?: SamplerName;
  /** Side of the reference images (default: the native resolution). */
  referenceSize?: number;
  /** Guidance rule used when the request's `extra.guidance` is absent (default "cfg"). */
  guidance?: GuidanceName;
  /** The unconditional model: "broad" (default, the caption-dropout prior) or "mixture" (the class mixture). */
  unconditional?: UnconditionalName;
}

export type UnconditionalName = "broad" | "mixture";
export const UNCONDITIONAL_MODELS: readonly UnconditionalName[] = ["broad", "mixture"];

export const DEFAULT_STEPS = 50;

export function createAnalyticGenerator(opts: AnalyticGeneratorOptions = {}): Generator {
  const model = analyticModel(opts.resolution ?? DEFAULT_RESOLUTION);
  const defaultSteps = checkedInteger("steps", opts.steps ?? DEFAULT_STEPS, 1000);
  const defaultSampler = samplerFrom(opts.sampler, "ddim");
  const referenceSize = checkedInteger("referenceSize", opts.referenceSize ?? model.resolution, 4096);
  const defaultGuidance = guidanceFrom(opts.guidance, "cfg", "E_GENERATOR_SPEC");
  const unconditional = unconditionalFrom(opts.unconditional);
  const unconditionalModel = unconditional === "mixture" ? model.labelled : model.prior;
  // equal priors pi_y = 1 / C: the weights of model.labelled, so "mixture" is exactly sum_y pi_y p(x | y)
  const classifier = mixtureClassifier(
    model.classes.map((c) => c.mixture),
    model.classes.map(() => 1),
  );
  return {
    name: "analytic",
    concurrency: 1,
    async generate(req: GenerationRequest, signal?: AbortSignal): Promise<GeneratedImage> {
      signal?.throwIfAborted();
      if (req.control) throw new DiffevalError("E_GENERATOR_REQUEST", "analytic generator: it has no ControlNet and cannot follow a control image; use an a1111, comfyui or command generator");
      const cond = classForPrompt(req.prompt, model.resolution, "prompt");
      const negative = req.negativePrompt.trim() === "" ? null : classForPrompt(req.negativePrompt, model.resolution, "negative prompt");
      const steps = Number.isInteger(req.steps) && req.steps > 0 ? req.steps : defaultSteps;
      const sampler = samplerFrom(req.extra?.sampler, defaultSampler);
      if (!Number.isFinite(req.cfgScale)) throw new DiffevalError("E_GENERATOR_REQUEST", `analytic generator: cfgScale must be a finite number, got ${req.cfgScale}`);
      if (steps > 1000) throw new DiffevalError("E_GENERATOR_REQUEST", `analytic generator: steps must be at most 1000 (the training schedule's length), got ${steps}`);
      const guidance = guidanceFrom(req.extra?.guidance, defaultGuidance, "E_GENERATOR_REQUEST");
      const rule: GuidanceRule =
        guidance === "classifier"
          ? { kind: "classifier", classifier, target: model.classes.indexOf(cond), ...(negative ? { negative: model.classes.indexOf(negative) } : {}) }
          : { kind: "cfg" };
      const counter = { modelEvaluations: 0 };
      const x = sampleWith(sampler, {
        cond: cond.mixture,
        uncond: negative ? negative.mixture : unconditionalModel,
        guidance: rule,
        scale: req.cfgScale,
        steps,
        seed: req.seed,
        counter,
      });
      const width = positiveOr(req.width, model.resolution);
      const height = positiveOr(req.height, model.resolution);
      const bytes = await encodePng(x, model.resolution, width, height);
      return {
        bytes,
        format: "png",
        used: {
          prompt: req.prompt,
          negativePrompt: req.negativePrompt,
          cfgScale: req.cfgScale,
          seed: req.seed,
          steps,
          width,
          height,
          sampler,
          guidance,
          unconditional,
          class: cond.name,
          negativeClass: negative?.name ?? null,
          resolution: model.resolution,
        },
        modelEvaluations: counter.modelEvaluations,
      };
    },
    reference(count: number, seed: number) {
      return referenceImages(model, count, seed, referenceSize);
    },
  };
}

/**
 * `count` exact i.i.d. draws of the data distribution (`analytic:real`): image i is of class
 * i mod C (classes in catalogue order, so every class is equally represented, like a sweep's
 * prompt list), then a component by its weight, then the Gaussian, all from one createRng(seed)
 * stream in order (so the first n of a longer set are the n-image set). Names:
 * `<i, 6 digits>-<class with dashes>.png`.
 */
export async function* referenceImages(model: AnalyticModel, count: number, seed: number, size: number): AsyncGenerator<{ name: string; bytes: Uint8Array }> {
  const rng = createRng(seed);
  for (let i = 0; i < count; i++) {
    const cls = model.classes[i % model.classes.length];
    const x = sampleMixture(cls.mixture, rng);
    const name = `${String(i).padStart(6, "0")}-${cls.name.replace(/ /g, "-")}.png`;
    yield { name, bytes: await encodePng(x, model.resolution, size, size) };
  }
}

/** x (HWC in [-1, 1], res x res) -> clipped 8-bit RGB -> PNG, nearest-neighbour resized to width x height. */
export async function encodePng(x: Float64Array, res: number, width: number, height: number): Promise<Uint8Array> {
  const raw = toUint8(x);
  let image = sharp(raw, { raw: { width: res, height: res, channels: 3 } });
  if (width !== res || height !== res) image = image.resize(width, height, { kernel: "nearest", fit: "fill" });
  return new Uint8Array(await image.png().toBuffer());
}

/** round((clip(x, -1, 1) + 1) * 127.5). */
export function toUint8(x: Float64Array): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.round((Math.min(1, Math.max(-1, x[i])) + 1) * 127.5);
  return out;
}

function samplerFrom(value: unknown, fallback: SamplerName): SamplerName {
  if (value === undefined || value === "") return fallback;
  if (typeof value === "string" && (SAMPLERS as readonly string[]).includes(value)) return value as SamplerName;
  throw new DiffevalError("E_GENERATOR_REQUEST", `analytic generator: unknown sampler ${JSON.stringify(value)}; use one of: ${SAMPLERS.join(", ")}`);
}

function guidanceFrom(value: unknown, fallback: GuidanceName, code: "E_GENERATOR_SPEC" | "E_GENERATOR_REQUEST"): GuidanceName {
  if (value === undefined || value === "") return fallback;
  if (typeof value === "string" && (GUIDANCE_RULES as readonly string[]).includes(value)) return value as GuidanceName;
  throw new DiffevalError(code, `analytic generator: unknown guidance ${JSON.stringify(value)}; use one of: ${GUIDANCE_RULES.join(", ")}`);
}

function unconditionalFrom(value: unknown): UnconditionalName {
  if (value === undefined) return "broad";
  if (typeof value === "string" && (UNCONDITIONAL_MODELS as readonly string[]).includes(value)) return value as UnconditionalName;
  throw new DiffevalError("E_GENERATOR_SPEC", `analytic generator: unconditional must be one of ${UNCONDITIONAL_MODELS.join(", ")}, got ${JSON.stringify(value)}`);
}

function checkedInteger(field: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new DiffevalError("E_GENERATOR_SPEC", `analytic generator: ${field} must be an integer in [1, ${max}], got ${value}`);
  }
  return value;
}

function positiveOr(v: number, fallback: number): number {
  return Number.isInteger(v) && v > 0 ? v : fallback;
}
