/**
 * The sweep spec: a JSON file (YAML would need a parser dependency, so JSON only), validated
 * field by field. Every error is E_SWEEP_SPEC and names the spec file and the field the way one
 * would write it in the file (`sweep.json: spec.guidance_scales[2]: expected a number, got "x"`),
 * so a typo is found at once; so do the errors its prompts file, generator section and plan size
 * cause later (inSpecFile). Sizes are bounded from the lengths, before anything is built.
 *
 * Paths inside the spec (prompt files, the reference folder or .npz, the CLIP weights, output)
 * are relative to the spec file's folder, so a spec checked in next to its prompts runs from anywhere.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DiffevalError, isDiffevalError, type ErrorCode } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { DEFAULT_ENCODER, parseEncoderName, type EncoderName } from "../features/encoders.js";
import { defaultMetrics, getMetric, METRIC_NAMES } from "../metrics/registry.js";

/** What the sweep evaluates by default: `diffeval metrics`' defaults for the encoder, and diversity. */
export function defaultSweepMetrics(encoder: EncoderName): string[] {
  return [...defaultMetrics(encoder), "vendi", "pairwise"];
}

export type AxisValue = string | number | boolean;

export interface GeneratorSpec {
  type: string;
  [setting: string]: unknown;
}

/** Where the prompts come from (file paths already resolved against the spec's folder). */
export type PromptSource =
  | { kind: "list"; prompts: string[] }
  | { kind: "file"; file: string; n?: number; seed: number };

export interface ReferenceSpec {
  /** A folder, list file or zip of images, a stats .npz, a reference-statistics name, or `analytic:real`. */
  source: string;
  /** Images to draw when the generator supplies the reference (`analytic:real`). */
  count?: number;
  seed: number;
}

/** CLIP score per cell (torchmetrics' definition): each image against its own prompt. */
export interface ClipSpec {
  /** Absolute: a Hugging Face CLIP checkpoint folder (as `diffeval clipscore --weights`). */
  weights: string;
  /** Prompt clean-up before tokenizing (default "openai"). */
  tokenizer: "openai" | "hf";
}

/**
 * The subject of a personalised model (LoRA, DreamBooth; issue 20): every cell also gets
 * DreamBooth's clip_i and clip_t (with the spec's `clip`) and, when the sweep's encoder is dinov2,
 * dinov2_i, as `diffeval subject` computes them (pipeline/subject.ts).
 */
export interface SubjectSpec {
  /** Absolute: a folder of the subject's reference photos. */
  reference: string;
}

/**
 * A ControlNet conditioning image for every request (issue 20). `image` is one file for every
 * prompt or one file per prompt index; paths are absolute (resolved against the spec's folder).
 */
export interface ControlSpec {
  image: string | Record<number, string>;
  /** The kind of control; edges ("canny") is the one the control_f1 metric measures. */
  type: "canny";
  /** The ControlNet model's name on the backend (required for a1111, whose extension has no default). */
  model?: string;
  /** true (default): the backend detects the edges; false: the image already is an edge map. */
  preprocess: boolean;
  /** Canny thresholds [low, high] (default [100, 200], ControlNet's annotator default). */
  canny: [number, number];
}

export interface SweepSpec {
  name: string;
  /** The spec file, when the spec was read from one: errors raised after reading name it too. */
  file?: string;
  /** The spec file's folder: relative paths in the spec (and in its generator's settings) start here. */
  baseDir: string;
  generator: GeneratorSpec;
  prompts: PromptSource;
  /** "{prompt}" plus "{axis}" placeholders, e.g. "{prompt} <lora:style:{lora}>" (A1111 LoRA syntax). */
  promptTemplate?: string;
  negativePrompts: string[];
  guidanceScales: number[];
  seeds: number[];
  width: number;
  height: number;
  steps: number;
  axes: [string, AxisValue[]][];
  reference: ReferenceSpec;
  metrics: string[];
  /** The feature space every metric is computed in (default inception). */
  encoder: EncoderName;
  /** clip/dinov2 weights: a file or folder (absolute), else the CLI's --weights / --encoder-weights. */
  encoderWeights?: string;
  bootstrap: number;
  metricSeed: number;
  protocol?: string;
  /** When present, every cell also gets `clip_score`. */
  clip?: ClipSpec;
  /** When present, every request carries this control image (axes control_weight, control_start, control_end). */
  control?: ControlSpec;
  /** When present, every cell also gets subject fidelity (clip_i, dinov2_i) and prompt fidelity (clip_t). */
  subject?: SubjectSpec;
  /** Absolute: where images, manifest and (by default) the report go. */
  output: string;
  /** Absolute: the report folder (default `<output>/report`). */
  report: string;
}

const KNOWN_FIELDS = [
  "name", "generator", "prompts", "prompt_template", "negative_prompts", "guidance_scales", "seeds_per_prompt", "seed",
  "seeds", "size", "steps", "axes", "reference", "metrics", "encoder", "encoder_weights", "bootstrap", "metric_seed", "protocol", "clip", "control", "subject", "output", "report", "$schema",
] as const;

/** Parameter names the grid already has: an extra axis may not reuse them. */
const RESERVED_AXES = ["cfg_scale", "negative_prompt", "prompt", "seed", "w"];

/**
 * The largest grid a spec may ask for (guidance scales x negative prompts x every axis). Each cell
 * is an image set and a row of the report; 100,000 is far beyond any sweep one would run, and the
 * cross product is counted (not built) before anything is allocated, so a spec of 30 axes of 2
 * values (2^30 cells) is refused at once instead of filling memory.
 */
export const MAX_SWEEP_CELLS = 100_000;
/**
 * The most images one plan may hold (cells x prompts x seeds): every planned image is an object
 * in memory and a line of the manifest. Two million covers COCO-30k prompts x 2 seeds x 30 cells.
 */
export const MAX_SWEEP_IMAGES = 2_000_000;
/** Extra axes: each one is a column of every cell, request and report row. */
export const MAX_SWEEP_AXES = 32;
/** An axis name is a column name and a parameter name (`{lora}`), not prose. */
const MAX_AXIS_NAME = 64;

/** Reads and validates a spec file. */
export async function loadSweepSpec(file: string): Promise<SweepSpec> {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SWEEP_SPEC", `${file}: cannot read the sweep spec (${e.code ?? e.message})`);
  });
  const json = parseJsonText(text, file, "E_SWEEP_SPEC", "a sweep spec; sweep specs are JSON");
  const name = path.basename(file).replace(/\.json$/i, "").replace(/\.sweep$/i, "");
  return parseSweepSpec(json, { baseDir: path.dirname(path.resolve(file)), defaultName: name, file });
}

/**
 * Validates a spec object; relative paths are resolved against `baseDir`. With `file`, every
 * error names it (`sweep.json: spec.seeds[3]: ...`) and the spec records it.
 */
export function parseSweepSpec(json: unknown, ctx: { baseDir: string; defaultName?: string; file?: string }): SweepSpec {
  try {
    return { ...specFields(json, ctx), ...(ctx.file !== undefined ? { file: ctx.file } : {}) };
  } catch (e) {
    throw inSpecFile(ctx.file, e);
  }
}

/**
 * `e` with the spec file in front of its message, for the errors that a spec's content causes
 * (its fields, its prompts file, its generator section, the size of its plan); others unchanged.
 */
export function inSpecFile(file: string | undefined, e: unknown): unknown {
  if (file === undefined || !isDiffevalError(e) || !SPEC_CODES.includes(e.code) || e.message.startsWith(`${file}: `)) return e;
  return new DiffevalError(e.code, `${file}: ${e.message}`, { cause: e });
}

const SPEC_CODES: ErrorCode[] = ["E_SWEEP_SPEC", "E_GENERATOR_SPEC", "E_COCO_FORMAT"];

function specFields(json: unknown, ctx: { baseDir: string; defaultName?: string }): Omit<SweepSpec, "file"> {
  const spec = object(json, "spec");
  for (const key of Object.keys(spec)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      throw specError(`spec.${clip(key)}`, `unknown field; the fields are ${KNOWN_FIELDS.filter((k) => k !== "$schema").join(", ")}`);
    }
  }
  const resolve = (p: string) => path.resolve(ctx.baseDir, p);
  const name = optional(spec, "name", (v, f) => slugName(string(v, f), f)) ?? ctx.defaultName ?? "sweep";
  const output = resolve(optional(spec, "output", nonEmptyString) ?? path.join("runs", name));
  const [width, height] = sizeOf(spec.size);
  const axes = axesOf(spec.axes);
  const guidanceScales = required(spec, "guidance_scales", (v, f) => uniqueList(v, f, positiveNumber));
  const negativePrompts = optional(spec, "negative_prompts", (v, f) => uniqueList(v, f, string)) ?? [""];
  assertGridSize(guidanceScales.length, negativePrompts.length, axes);
  const promptTemplate = optional(spec, "prompt_template", (v, f) => templateOf(v, f, axes));
  const encoder = optional(spec, "encoder", encoderOf) ?? DEFAULT_ENCODER;
  const generator = generatorOf(spec.generator);
  checkGuidanceAxis(axes, generator);
  const control = spec.control === undefined ? undefined : controlOf(spec.control, resolve, generator);
  checkControlAxes(axes, control !== undefined);
  return {
    name,
    baseDir: path.resolve(ctx.baseDir),
    generator,
    prompts: promptsOf(spec.prompts, resolve),
    ...(promptTemplate !== undefined ? { promptTemplate } : {}),
    negativePrompts,
    guidanceScales,
    seeds: seedsOf(spec),
    width,
    height,
    steps: optional(spec, "steps", atMost(SPEC_LIMITS.steps, "sampling steps", positiveInt)) ?? 20,
    axes,
    reference: referenceOf(spec.reference, resolve),
    metrics: optional(spec, "metrics", metricsOf) ?? defaultSweepMetrics(encoder),
    encoder,
    ...(spec.encoder_weights !== undefined ? { encoderWeights: resolve(nonEmptyString(spec.encoder_weights, "spec.encoder_weights")) } : {}),
    bootstrap: optional(spec, "bootstrap", atMost(SPEC_LIMITS.bootstrap, "bootstrap resamples", nonNegativeInt)) ?? 0,
    metricSeed: optional(spec, "metric_seed", nonNegativeInt) ?? 0,
    ...(spec.protocol !== undefined ? { protocol: nonEmptyString(spec.protocol, "spec.protocol") } : {}),
    ...(spec.clip !== undefined ? { clip: clipOf(spec.clip, resolve) } : {}),
    ...(control !== undefined ? { control } : {}),
    ...(spec.subject !== undefined ? { subject: subjectOf(spec.subject, resolve, spec.clip !== undefined) } : {}),
    output,
    report: spec.report === undefined ? path.join(output, "report") : resolve(nonEmptyString(spec.report, "spec.report")),
  };
}

// ---------------------------------------------------------------------------------------------
// Fields

function generatorOf(v: unknown): GeneratorSpec {
  if (typeof v === "string") return { type: nonEmptyString(v, "spec.generator") };
  const g = object(v, "spec.generator");
  return { ...g, type: required(g, "type", nonEmptyString, "spec.generator") };
}

function promptsOf(v: unknown, resolve: (p: string) => string): PromptSource {
  if (v === undefined) throw specError("spec.prompts", "missing; give a list of prompts, a text file, prompts.jsonl or COCO captions JSON");
  if (Array.isArray(v)) {
    const prompts = list(v, "spec.prompts", nonEmptyString);
    if (prompts.length === 0) throw specError("spec.prompts", "empty list; give at least one prompt");
    return { kind: "list", prompts };
  }
  if (typeof v === "string") return { kind: "file", file: resolve(nonEmptyString(v, "spec.prompts")), seed: 0 };
  const o = object(v, "spec.prompts");
  for (const key of Object.keys(o)) {
    if (!["file", "n", "seed"].includes(key)) throw specError(`spec.prompts.${clip(key)}`, "unknown field; expected file, n, seed");
  }
  return {
    kind: "file",
    file: resolve(required(o, "file", nonEmptyString, "spec.prompts")),
    ...(o.n !== undefined ? { n: positiveInt(o.n, "spec.prompts.n") } : {}),
    seed: optional(o, "seed", nonNegativeInt, "spec.prompts") ?? 0,
  };
}

function seedsOf(spec: Record<string, unknown>): number[] {
  if (spec.seeds !== undefined) {
    if (spec.seeds_per_prompt !== undefined) throw specError("spec.seeds", "give either seeds or seeds_per_prompt, not both");
    const seeds = uniqueList(spec.seeds, "spec.seeds", nonNegativeInt);
    if (seeds.length === 0) throw specError("spec.seeds", "empty list; give at least one seed");
    return seeds;
  }
  const n = optional(spec, "seeds_per_prompt", positiveInt) ?? 1;
  // Checked before the list is built: each seed is an image of every prompt and cell.
  if (n > MAX_SWEEP_IMAGES) throw specError("spec.seeds_per_prompt", `${n} seeds per prompt are more than a plan may hold (${MAX_SWEEP_IMAGES} images); use fewer`);
  const base = optional(spec, "seed", nonNegativeInt) ?? 0;
  if (base + n - 1 > Number.MAX_SAFE_INTEGER) throw specError("spec.seed", `seed ${base} + ${n} seeds passes 2^53 - 1; use a smaller seed`);
  // The same seeds for every prompt and cell: cells differ only in their parameters (paired samples).
  return Array.from({ length: n }, (_, i) => base + i);
}

function sizeOf(v: unknown): [number, number] {
  if (v === undefined) return [512, 512];
  if (typeof v === "number") {
    const s = side(v, "spec.size");
    return [s, s];
  }
  if (Array.isArray(v)) {
    if (v.length !== 2) throw specError("spec.size", `expected [width, height], got ${v.length} value(s)`);
    return [side(v[0], "spec.size[0]"), side(v[1], "spec.size[1]")];
  }
  const o = object(v, "spec.size");
  return [required(o, "width", side, "spec.size"), required(o, "height", side, "spec.size")];
}

function axesOf(v: unknown): [string, AxisValue[]][] {
  if (v === undefined) return [];
  const o = object(v, "spec.axes");
  const entries = Object.entries(o);
  if (entries.length > MAX_SWEEP_AXES) throw specError("spec.axes", `${entries.length} axes; a sweep takes at most ${MAX_SWEEP_AXES}`);
  return entries.map(([name, values]) => {
    const field = `spec.axes.${clip(name)}`;
    if (!/^[A-Za-z_][\w.-]*$/.test(name)) throw specError(field, "axis names are letters, digits, _ . - (starting with a letter or _)");
    if (name.length > MAX_AXIS_NAME) throw specError(field, `axis names are at most ${MAX_AXIS_NAME} characters, got ${name.length}`);
    if (RESERVED_AXES.includes(name)) {
      throw specError(field, `'${name}' is already a sweep parameter; use ${name === "cfg_scale" ? "guidance_scales" : name === "negative_prompt" ? "negative_prompts" : "the spec's own field"}`);
    }
    // Unique as text: 1 and "1" would give the same prompt, slug and report column.
    const vals = uniqueList(values, field, axisValue, String);
    if (vals.length === 0) throw specError(field, "empty list; give at least one value");
    return [name, vals];
  });
}

/** The values a `guidance` axis may take (the analytic generator's rules; its sampler.ts cites them). */
const GUIDANCE_AXIS_VALUES = ["cfg", "classifier"];

/**
 * A `guidance` axis reaches the generator as `extra.guidance`. Only the analytic generator has a
 * classifier (its exact Bayes classifier); the others would ignore the value and return CFG
 * images under a "classifier" label, so that is refused here, before anything is generated.
 */
function checkGuidanceAxis(axes: [string, AxisValue[]][], generator: GeneratorSpec): void {
  const values = axes.find(([name]) => name === "guidance")?.[1];
  if (!values) return;
  values.forEach((v, i) => {
    if (!GUIDANCE_AXIS_VALUES.includes(v as string)) throw specError(`spec.axes.guidance[${i}]`, `expected ${GUIDANCE_AXIS_VALUES.map((g) => JSON.stringify(g)).join(" or ")}, got ${clip(JSON.stringify(v))}`);
    if (v === "classifier" && generator.type !== "analytic") {
      throw specError(
        `spec.axes.guidance[${i}]`,
        `classifier guidance needs a generator with a classifier of its classes; only the "analytic" generator has one (this spec's is "${clip(generator.type)}")`,
      );
    }
  });
}

function templateOf(v: unknown, field: string, axes: [string, AxisValue[]][]): string {
  const t = nonEmptyString(v, field);
  if (!t.includes("{prompt}")) throw specError(field, `must contain {prompt}, got ${clip(JSON.stringify(t))}`);
  const names = new Set(axes.map(([a]) => a));
  for (const { name } of templatePlaceholders(t)) {
    if (name !== "prompt" && !names.has(name)) {
      throw specError(field, `{${clip(name)}} is neither {prompt} nor an axis (${axes.map(([a]) => a).join(", ") || "no axes"})`);
    }
  }
  return t;
}

/**
 * The `{name}` placeholders of a prompt template, each from a `{` to the first `}` after it (what
 * the regex /\{([^}]*)\}/g matches), found in one pass: that regex retries from every `{` and
 * scans to the end each time when no `}` follows, quadratic in a template of many `{`.
 */
export function templatePlaceholders(t: string): { start: number; end: number; name: string }[] {
  const out: { start: number; end: number; name: string }[] = [];
  for (let open = t.indexOf("{"); open >= 0; ) {
    const close = t.indexOf("}", open + 1);
    if (close < 0) break; // no `}` after this `{`: none after any later `{` either
    out.push({ start: open, end: close + 1, name: t.slice(open + 1, close) });
    open = t.indexOf("{", close + 1);
  }
  return out;
}

/**
 * Refuses a grid of more than MAX_SWEEP_CELLS cells from the lengths alone (the product is
 * counted in floating point, exact far beyond the limit), before any combination is built.
 */
function assertGridSize(scales: number, negatives: number, axes: [string, AxisValue[]][]): void {
  const dims: [string, number][] = [["guidance_scales", scales], ["negative_prompts", negatives], ...axes.map(([n, v]): [string, number] => [n, v.length])];
  const cells = dims.reduce((p, [, n]) => p * n, 1);
  if (cells <= MAX_SWEEP_CELLS) return;
  const [largest] = [...dims].sort((a, b) => b[1] - a[1])[0];
  throw specError(
    axes.length > 0 ? "spec.axes" : "spec.guidance_scales",
    `the grid has ${cells.toLocaleString("en-US")} cells (${dims.map(([n, k]) => `${n} ${k}`).join(" x ")}), more than the limit of ` +
      `${MAX_SWEEP_CELLS.toLocaleString("en-US")}: split it into several specs (e.g. one per value of ${largest}, each with its own output) or drop values`,
  );
}

function referenceOf(v: unknown, resolve: (p: string) => string): ReferenceSpec {
  if (v === undefined) throw specError("spec.reference", "missing; give a folder of real images, a stats .npz, a reference-statistics name or analytic:real");
  const o = typeof v === "string" ? { source: v } : object(v, "spec.reference");
  for (const key of Object.keys(o)) {
    if (!["source", "count", "seed"].includes(key)) throw specError(`spec.reference.${clip(key)}`, "unknown field; expected source, count, seed");
  }
  const field = typeof v === "string" ? "spec.reference" : "spec.reference.source";
  const source = nonEmptyString(o.source, field);
  const generated = /^[a-z0-9]+:/i.test(source) && !path.isAbsolute(source) && !/^[A-Za-z]:[\\/]/.test(source);
  const count = o.count === undefined ? undefined : atMost(MAX_SWEEP_IMAGES, "reference images", positiveInt)(o.count, "spec.reference.count");
  if (generated && count === undefined) throw specError("spec.reference.count", `${source} draws its images: say how many (e.g. 1000)`);
  return {
    source: generated || !looksLikePath(source) ? source : resolve(source),
    ...(count !== undefined ? { count } : {}),
    seed: o.seed === undefined ? 0 : nonNegativeInt(o.seed, "spec.reference.seed"),
  };
}

function clipOf(v: unknown, resolve: (p: string) => string): ClipSpec {
  const o = typeof v === "string" ? { weights: v } : object(v, "spec.clip");
  for (const key of Object.keys(o)) {
    if (!["weights", "tokenizer"].includes(key)) throw specError(`spec.clip.${clip(key)}`, "unknown field; expected weights, tokenizer");
  }
  const field = typeof v === "string" ? "spec.clip" : "spec.clip.weights";
  if (o.weights === undefined) throw specError(field, "missing; give a Hugging Face CLIP checkpoint folder (config.json, model.safetensors, tokenizer files)");
  const weights = resolve(nonEmptyString(o.weights, field));
  const tokenizer = o.tokenizer === undefined ? "openai" : string(o.tokenizer, "spec.clip.tokenizer");
  if (tokenizer !== "openai" && tokenizer !== "hf") throw specError("spec.clip.tokenizer", `expected "openai" or "hf", got ${clip(JSON.stringify(tokenizer))}`);
  return { weights, tokenizer };
}

/**
 * `{ reference: DIR }`. clip_i and clip_t are measured with the spec's CLIP checkpoint, so a
 * subject without `clip` is refused rather than silently giving only dinov2_i (or nothing).
 */
function subjectOf(v: unknown, resolve: (p: string) => string, hasClip: boolean): SubjectSpec {
  const o = object(v, "spec.subject");
  for (const key of Object.keys(o)) {
    if (key !== "reference") throw specError(`spec.subject.${clip(key)}`, "unknown field; expected reference");
  }
  const reference = resolve(required(o, "reference", nonEmptyString, "spec.subject"));
  if (!hasClip) {
    throw specError("spec.subject", 'needs a "clip" field: clip_i and clip_t are measured with its CLIP checkpoint (e.g. "clip": { "weights": "clip-vit-large-patch14" })');
  }
  return { reference };
}

/** Generators that run in-process: they have no ControlNet, so a control image would be silently ignored. */
const BUILT_IN_GENERATORS = ["analytic", "onnx-sd"];
/** The control kinds a spec may name; canny is the one control_f1 measures (edge maps). */
const CONTROL_TYPES = ["canny"];

function controlOf(v: unknown, resolve: (p: string) => string, generator: GeneratorSpec): ControlSpec {
  if (BUILT_IN_GENERATORS.includes(generator.type)) {
    throw specError("spec.control", `the built-in "${generator.type}" generator has no ControlNet; send control images through an a1111, comfyui or command generator`);
  }
  const o = object(v, "spec.control");
  for (const key of Object.keys(o)) {
    if (!["image", "type", "model", "preprocess", "canny"].includes(key)) throw specError(`spec.control.${clip(key)}`, "unknown field; expected image, type, model, preprocess, canny");
  }
  const type = optional(o, "type", string, "spec.control") ?? "canny";
  if (!CONTROL_TYPES.includes(type)) throw specError("spec.control.type", `expected ${CONTROL_TYPES.map((t) => JSON.stringify(t)).join(" or ")}, got ${clip(JSON.stringify(type))}`);
  const model = optional(o, "model", nonEmptyString, "spec.control");
  // The extension's ControlNetUnit defaults `model` to "None", which applies no ControlNet at all.
  if (model === undefined && generator.type === "a1111") throw specError("spec.control.model", "missing; the a1111 generator needs the ControlNet model's name (as the extension lists it)");
  const preprocess = optional(o, "preprocess", (x, f) => {
    if (typeof x !== "boolean") throw specError(f, `expected true or false, got ${describe(x)}`);
    return x;
  }, "spec.control") ?? true;
  return {
    image: required(o, "image", (x, f) => controlImageOf(x, f, resolve), "spec.control"),
    type: "canny",
    ...(model !== undefined ? { model } : {}),
    preprocess,
    canny: optional(o, "canny", cannyOf, "spec.control") ?? [100, 200],
  };
}

/** One path, or an object of prompt index -> path. */
function controlImageOf(v: unknown, field: string, resolve: (p: string) => string): ControlSpec["image"] {
  if (typeof v === "string") return resolve(nonEmptyString(v, field));
  const o = object(v, field);
  const entries = Object.entries(o);
  if (entries.length === 0) throw specError(field, "empty object; give a path, or prompt indices with a path each");
  const out: Record<number, string> = {};
  for (const [key, p] of entries) {
    if (!/^(0|[1-9]\d{0,8})$/.test(key)) throw specError(`${field}.${clip(key)}`, "keys are prompt indices (0, 1, 2, ...)");
    out[Number(key)] = resolve(nonEmptyString(p, `${field}.${key}`));
  }
  return out;
}

function cannyOf(v: unknown, field: string): [number, number] {
  const t = list(v, field, (x, f) => {
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0 || x > 1020) throw specError(f, `expected a threshold in 0..1020 (|gx| + |gy| of 8-bit pixels), got ${describe(x)}`);
    return x;
  });
  if (t.length !== 2 || t[0] > t[1]) throw specError(field, `expected [low, high] with low <= high, got ${clip(JSON.stringify(v))}`);
  return [t[0], t[1]];
}

/**
 * The axes a control image adds, with their bounds: A1111's ControlNetUnit takes weight 0..2
 * and guidance_start/end 0..1 with start <= end (sd-webui-controlnet internal_controlnet/args.py);
 * ComfyUI's ControlNetApplyAdvanced takes strength 0..10 and start/end_percent 0..1.
 */
export const CONTROL_AXES: Record<string, { min: number; max: number; fallback: number }> = {
  control_weight: { min: 0, max: 10, fallback: 1 },
  control_start: { min: 0, max: 1, fallback: 0 },
  control_end: { min: 0, max: 1, fallback: 1 },
};

/** Control axes need a `control` field, numbers in range, and every start before every end. */
function checkControlAxes(axes: [string, AxisValue[]][], hasControl: boolean): void {
  const values = new Map(axes);
  for (const [name, range] of Object.entries(CONTROL_AXES)) {
    const vals = values.get(name);
    if (!vals) continue;
    if (!hasControl) throw specError(`spec.axes.${name}`, "needs a control image: add a \"control\" field ({ \"image\": PATH, \"model\": NAME })");
    vals.forEach((x, i) => {
      if (typeof x !== "number" || x < range.min || x > range.max) throw specError(`spec.axes.${name}[${i}]`, `expected a number in ${range.min}..${range.max}, got ${describe(x)}`);
    });
  }
  const starts = (values.get("control_start") as number[] | undefined) ?? [CONTROL_AXES.control_start.fallback];
  const ends = (values.get("control_end") as number[] | undefined) ?? [CONTROL_AXES.control_end.fallback];
  if (Math.max(...starts) >= Math.min(...ends)) {
    throw specError("spec.axes.control_start", `every control_start must be below every control_end (the grid crosses them: start ${Math.max(...starts)}, end ${Math.min(...ends)})`);
  }
}

/** A reference-statistics name (no separators, no extension) stays a name; anything else is a path. */
function looksLikePath(s: string): boolean {
  return /[\\/]/.test(s) || /\.[A-Za-z0-9]+$/.test(s) || s === "." || s === "..";
}

function encoderOf(v: unknown, field: string): EncoderName {
  const name = string(v, field);
  try {
    return parseEncoderName(name);
  } catch (e) {
    throw specError(field, (e as Error).message);
  }
}

function metricsOf(v: unknown, field: string): string[] {
  const names = list(v, field, (x, f) => {
    const n = string(x, f).trim().toLowerCase();
    if (!METRIC_NAMES.includes(n)) throw specError(f, `unknown metric ${clip(JSON.stringify(x))}; choose from ${METRIC_NAMES.join(", ")}`);
    return getMetric(n).name;
  });
  if (names.length === 0) throw specError(field, "empty list; give at least one metric");
  return [...new Set(names)];
}

function slugName(v: string, field: string): string {
  if (!/^[\w.-]+$/.test(v) || v.startsWith(".")) throw specError(field, `use letters, digits, _ . - (it names a folder), got ${clip(JSON.stringify(v))}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Checks that name the field

type Check<T> = (v: unknown, field: string) => T;

function required<T>(o: Record<string, unknown>, key: string, check: Check<T>, parent = "spec"): T {
  if (o[key] === undefined) throw specError(`${parent}.${key}`, "missing");
  return check(o[key], `${parent}.${key}`);
}

function optional<T>(o: Record<string, unknown>, key: string, check: Check<T>, parent = "spec"): T | undefined {
  return o[key] === undefined ? undefined : check(o[key], `${parent}.${key}`);
}

function list<T>(v: unknown, field: string, check: Check<T>): T[] {
  if (!Array.isArray(v)) throw specError(field, `expected a list, got ${describe(v)}`);
  return v.map((x, i) => check(x, `${field}[${i}]`));
}

/** A list without repeats, found with one Map lookup per value (`key` decides what counts as equal). */
function uniqueList<T>(v: unknown, field: string, check: Check<T>, key: (x: T) => unknown = (x) => x): T[] {
  const values = list(v, field, check);
  const seen = new Map<unknown, number>();
  values.forEach((x, i) => {
    const first = seen.get(key(x));
    if (first !== undefined) throw specError(`${field}[${i}]`, `${clip(JSON.stringify(x))} repeats ${field}[${first}]`);
    seen.set(key(x), i);
  });
  return values;
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw specError(field, `expected an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

function string(v: unknown, field: string): string {
  if (typeof v !== "string") throw specError(field, `expected a string, got ${describe(v)}`);
  return v;
}

function nonEmptyString(v: unknown, field: string): string {
  const s = string(v, field);
  if (s.trim() === "") throw specError(field, "expected a non-empty string");
  return s;
}

function positiveNumber(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw specError(field, `expected a number, got ${describe(v)}`);
  if (v <= 0) throw specError(field, `expected a number > 0, got ${v}`);
  return v;
}

function positiveInt(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw specError(field, `expected a positive integer, got ${describe(v)}`);
  return v;
}

/**
 * Bounds on the numbers a spec hands to generators and metrics, so that a typo (an extra zero
 * or six) is an error naming the field, not hours of work or an allocation that cannot succeed.
 * Far beyond practice: SD/SDXL generate at 512-1024 px, samplers use 1-1000 steps, papers
 * bootstrap 1,000 times. A generated reference has at most as many images as a plan.
 */
export const SPEC_LIMITS = { side: 8192, steps: 10_000, bootstrap: 100_000 } as const;

/** `check`, then at most `max` (`what` names the quantity in the message). */
function atMost(max: number, what: string, check: Check<number>): Check<number> {
  return (v, field) => {
    const n = check(v, field);
    if (n > max) throw specError(field, `${n} ${what} is more than the limit of ${max.toLocaleString("en-US")}`);
    return n;
  };
}

const side = atMost(SPEC_LIMITS.side, "pixels per side", positiveInt);

function nonNegativeInt(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 2 ** 53 - 1) {
    throw specError(field, `expected a non-negative integer, got ${describe(v)}`);
  }
  return v;
}

function axisValue(v: unknown, field: string): AxisValue {
  if (typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) return v;
  throw specError(field, `expected a string, number or boolean, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return clip(JSON.stringify(v));
  return `${typeof v} ${String(v)}`;
}

/** A value as quoted in a message: long ones cut, so a hostile spec cannot make a megabyte message. */
function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function specError(field: string, message: string): DiffevalError {
  return new DiffevalError("E_SWEEP_SPEC", `${field}: ${message}`);
}
