/**
 * The sweep's plan: the grid of cells (guidance scale x negative prompt x every extra axis) and,
 * in each cell, one image per (prompt, seed), each with its request and its deterministic path
 * `images/<cell>/<prompt-index>-<seed>.<ext>`. The plan is a pure function of the spec and the
 * prompts, so a re-run computes the same paths and finds what is already done.
 */
import { createHash } from "node:crypto";
import type { CellParams } from "../gate/results.js";
import type { ControlRequest, GenerationRequest } from "../generators/generator.js";
import type { Prompt } from "./prompts.js";
import { DiffevalError } from "../errors.js";
import { CONTROL_AXES, MAX_SWEEP_CELLS, MAX_SWEEP_IMAGES, templatePlaceholders, type AxisValue, type ControlSpec, type SweepSpec } from "./spec.js";

export interface PlannedCell {
  index: number;
  /** Folder name under images/: readable, unique, stable across runs. */
  slug: string;
  /** The grid coordinates as results.json records them: cfg_scale, negative_prompt, then the axes. */
  params: CellParams;
  cfgScale: number;
  negativePrompt: string;
  axes: Record<string, AxisValue>;
}

export interface PlannedImage {
  cell: PlannedCell;
  promptIndex: number;
  seed: number;
  /** `<cell>/<prompt-index>-<seed>`: the identity of the image in the manifest. */
  key: string;
  request: GenerationRequest;
}

export interface SweepPlan {
  cells: PlannedCell[];
  images: PlannedImage[];
  prompts: Prompt[];
}

/** Request fields an axis of the same name overrides (other axes go to `extra` only). */
const REQUEST_AXES = ["steps", "width", "height"] as const;

export function planSweep(spec: SweepSpec, prompts: Prompt[]): SweepPlan {
  assertPlanSize(spec, prompts.length);
  if (spec.control) assertControlImages(spec.control, prompts.length);
  const cells = gridCells(spec);
  // Plain loops into one array: nested flatMaps allocate an array per cell and prompt, and
  // planning 100,000 cells spent most of its time collecting them.
  const images: PlannedImage[] = [];
  for (const cell of cells) {
    for (let promptIndex = 0; promptIndex < prompts.length; promptIndex++) {
      for (const seed of spec.seeds) {
        images.push(new LazyRequestImage(cell, promptIndex, seed, `${cell.slug}/${promptIndex}-${seed}`, spec, prompts[promptIndex]));
      }
    }
  }
  return { cells, images, prompts };
}

/**
 * A planned image whose request is built when it is read (the runner reads it once, when the
 * image is generated): requests held for every image were most of a large plan's memory and
 * time (2 million images: 4 s and 800 MB with them).
 */
class LazyRequestImage implements PlannedImage {
  constructor(
    readonly cell: PlannedCell,
    readonly promptIndex: number,
    readonly seed: number,
    readonly key: string,
    private readonly spec: SweepSpec,
    private readonly prompt: Prompt,
  ) {}

  get request(): GenerationRequest {
    return requestOf(this.spec, this.cell, this.prompt, this.promptIndex, this.seed);
  }
}

/** Each cell's images in plan order, grouped in one pass (filtering all images per cell is cells x images). */
export function imagesByCell(plan: Pick<SweepPlan, "cells" | "images">): Map<PlannedCell, PlannedImage[]> {
  const byCell = new Map<PlannedCell, PlannedImage[]>(plan.cells.map((c) => [c, []]));
  for (const im of plan.images) byCell.get(im.cell)?.push(im);
  return byCell;
}

/**
 * Refuses a plan beyond the limits from the lengths alone, before any cell or image is built
 * (parseSweepSpec checks the grid too; a spec object made by hand comes here unchecked).
 */
function assertPlanSize(spec: SweepSpec, prompts: number): void {
  const cells = spec.axes.reduce((p, [, v]) => p * v.length, spec.guidanceScales.length * spec.negativePrompts.length);
  if (cells > MAX_SWEEP_CELLS) {
    throw new DiffevalError("E_SWEEP_SPEC", `spec.axes: the grid has ${cells.toLocaleString("en-US")} cells, more than the limit of ${MAX_SWEEP_CELLS.toLocaleString("en-US")}; split it into several specs`);
  }
  const images = cells * prompts * spec.seeds.length;
  if (images > MAX_SWEEP_IMAGES) {
    throw new DiffevalError(
      "E_SWEEP_SPEC",
      `spec.prompts: the plan has ${images.toLocaleString("en-US")} images (${cells} cells x ${prompts} prompts x ${spec.seeds.length} seeds), ` +
        `more than the limit of ${MAX_SWEEP_IMAGES.toLocaleString("en-US")}: use fewer prompts ("prompts": {"file", "n"}), seeds or cells, or split the sweep into several specs`,
    );
  }
}

function gridCells(spec: SweepSpec): PlannedCell[] {
  const combos = axisCombinations(spec.axes);
  const cells: PlannedCell[] = [];
  for (const cfgScale of spec.guidanceScales) {
    for (const negativePrompt of spec.negativePrompts) {
      for (const axes of combos) {
        cells.push({
          index: cells.length,
          slug: cellSlug(cfgScale, negativePrompt, axes),
          params: { cfg_scale: cfgScale, negative_prompt: negativePrompt, ...axes },
          cfgScale,
          negativePrompt,
          axes,
        });
      }
    }
  }
  return cells;
}

function axisCombinations(axes: [string, AxisValue[]][]): Record<string, AxisValue>[] {
  let combos: Record<string, AxisValue>[] = [{}];
  for (const [name, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return combos;
}

function requestOf(spec: SweepSpec, cell: PlannedCell, prompt: Prompt, promptIndex: number, seed: number): GenerationRequest {
  const overrides: Partial<Record<(typeof REQUEST_AXES)[number], number>> = {};
  for (const name of REQUEST_AXES) if (typeof cell.axes[name] === "number") overrides[name] = cell.axes[name] as number;
  return {
    prompt: applyTemplate(spec.promptTemplate, prompt.text, cell.axes),
    negativePrompt: cell.negativePrompt,
    cfgScale: cell.cfgScale,
    seed,
    steps: overrides.steps ?? spec.steps,
    width: overrides.width ?? spec.width,
    height: overrides.height ?? spec.height,
    extra: { ...cell.axes },
    ...(spec.control ? { control: controlRequest(spec.control, cell, promptIndex) } : {}),
  };
}

/** The control image of a prompt (one for all, or the prompt's own). */
export function controlImageFor(control: ControlSpec, promptIndex: number): string {
  return typeof control.image === "string" ? control.image : control.image[promptIndex];
}

/** The cell's ControlNet unit: the spec's image and model, the cell's weight, start and end (or their defaults). */
function controlRequest(control: ControlSpec, cell: PlannedCell, promptIndex: number): ControlRequest {
  const axis = (name: keyof typeof CONTROL_AXES) => (typeof cell.axes[name] === "number" ? (cell.axes[name] as number) : CONTROL_AXES[name].fallback);
  return {
    image: controlImageFor(control, promptIndex),
    type: control.type,
    ...(control.model !== undefined ? { model: control.model } : {}),
    preprocess: control.preprocess,
    canny: control.canny,
    weight: axis("control_weight"),
    start: axis("control_start"),
    end: axis("control_end"),
  };
}

/** A per-prompt control map names every prompt, and no prompt the plan does not have. */
function assertControlImages(control: ControlSpec, prompts: number): void {
  if (typeof control.image === "string") return;
  const keys = Object.keys(control.image).map(Number);
  const beyond = keys.find((k) => k >= prompts);
  if (beyond !== undefined) throw new DiffevalError("E_SWEEP_SPEC", `spec.control.image.${beyond}: the sweep has ${prompts} prompt(s) (indices 0..${prompts - 1})`);
  for (let i = 0; i < prompts; i++) {
    if (!(i in control.image)) throw new DiffevalError("E_SWEEP_SPEC", `spec.control.image: no control image for prompt ${i}; give every prompt index one, or one path for all`);
  }
}

/** "{prompt} <lora:style:{lora}>" -> "a cat <lora:style:0.5>": how A1111 takes a LoRA weight. */
export function applyTemplate(template: string | undefined, prompt: string, axes: Record<string, AxisValue>): string {
  if (template === undefined) return prompt;
  const parts: string[] = [];
  let at = 0;
  for (const { start, end, name } of templatePlaceholders(template)) {
    parts.push(template.slice(at, start), name === "prompt" ? prompt : String(axes[name]));
    at = end;
  }
  parts.push(template.slice(at));
  return parts.join("");
}

/**
 * `s7.5_neg-none_sampler-euler`: each value as a short lowercase word. A value the slug had to
 * shorten or change (spaces, capitals, long prompts) gets a 6-hex hash of its exact text, so two
 * cells never share a folder.
 */
export function cellSlug(cfgScale: number, negativePrompt: string, axes: Record<string, AxisValue>): string {
  const parts = [`s${String(cfgScale)}`, `neg-${negativePrompt === "" ? "none" : valueSlug(negativePrompt)}`];
  for (const [name, value] of Object.entries(axes)) parts.push(`${valueSlug(name)}-${valueSlug(String(value))}`);
  const slug = parts.join("_");
  // A folder name: file systems take 255 bytes (NAME_MAX), which a few axes of long values pass.
  // A long slug keeps its start and a 12-hex hash of the whole (48 bits: a collision among
  // MAX_SWEEP_CELLS cells that share the start has odds of about 1 in 50,000).
  return slug.length <= MAX_SLUG ? slug : `${slug.slice(0, MAX_SLUG - 13)}-${createHash("sha256").update(slug).digest("hex").slice(0, 12)}`;
}

/** The longest cell slug (folder name), in characters (all ASCII). */
const MAX_SLUG = 160;

function valueSlug(text: string): string {
  const words = trimDashes(text.toLowerCase().replace(/[^a-z0-9.+-]+/g, "-"));
  const short = trimDashes(words.slice(0, 24)) || "x";
  return short === text ? short : `${short}-${createHash("sha256").update(text).digest("hex").slice(0, 6)}`;
}

/**
 * `s` without leading and trailing dashes, by index: /^-+|-+$/g retries `-+$` at every dash of a
 * long run that does not end the string (quadratic in a negative prompt of many dashes).
 */
function trimDashes(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 0x2d) a++;
  while (b > a && s.charCodeAt(b - 1) === 0x2d) b--;
  return s.slice(a, b);
}

/** The plan in numbers, for --dry-run and the run's first line. */
export interface PlanSummary {
  cells: number;
  images: number;
  done: number;
  requests: number;
}

export function summarizePlan(plan: SweepPlan, done: ReadonlySet<string>): PlanSummary {
  const finished = plan.images.filter((im) => done.has(im.key)).length;
  // One request per image: batch_size 1 so that every image has its own recorded seed.
  return { cells: plan.cells.length, images: plan.images.length, done: finished, requests: plan.images.length - finished };
}
