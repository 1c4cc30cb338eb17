/**
 * The sweep's plan: the grid of cells (guidance scale x negative prompt x every extra axis) and,
 * in each cell, one image per (prompt, seed), each with its request and its deterministic path
 * `images/<cell>/<prompt-index>-<seed>.<ext>`. The plan is a pure function of the spec and the
 * prompts, so a re-run computes the same paths and finds what is already done.
 */
import { createHash } from "node:crypto";
import type { CellParams } from "../gate/results.js";
import type { GenerationRequest } from "../generators/generator.js";
import type { Prompt } from "./prompts.js";
import type { AxisValue, SweepSpec } from "./spec.js";

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
  const cells = gridCells(spec);
  const images = cells.flatMap((cell) =>
    prompts.flatMap((prompt, promptIndex) =>
      spec.seeds.map((seed) => ({
        cell,
        promptIndex,
        seed,
        key: `${cell.slug}/${promptIndex}-${seed}`,
        request: requestOf(spec, cell, prompt, seed),
      })),
    ),
  );
  return { cells, images, prompts };
}

function gridCells(spec: SweepSpec): PlannedCell[] {
  const combos = axisCombinations(spec.axes);
  const raw = spec.guidanceScales.flatMap((cfgScale) =>
    spec.negativePrompts.flatMap((negativePrompt) => combos.map((axes) => ({ cfgScale, negativePrompt, axes }))),
  );
  return raw.map((c, index) => ({
    index,
    slug: cellSlug(c.cfgScale, c.negativePrompt, c.axes),
    params: { cfg_scale: c.cfgScale, negative_prompt: c.negativePrompt, ...c.axes },
    ...c,
  }));
}

function axisCombinations(axes: [string, AxisValue[]][]): Record<string, AxisValue>[] {
  let combos: Record<string, AxisValue>[] = [{}];
  for (const [name, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return combos;
}

function requestOf(spec: SweepSpec, cell: PlannedCell, prompt: Prompt, seed: number): GenerationRequest {
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
  };
}

/** "{prompt} <lora:style:{lora}>" -> "a cat <lora:style:0.5>": how A1111 takes a LoRA weight. */
export function applyTemplate(template: string | undefined, prompt: string, axes: Record<string, AxisValue>): string {
  if (template === undefined) return prompt;
  return template.replace(/\{([^}]*)\}/g, (_, name: string) => (name === "prompt" ? prompt : String(axes[name])));
}

/**
 * `s7.5_neg-none_sampler-euler`: each value as a short lowercase word. A value the slug had to
 * shorten or change (spaces, capitals, long prompts) gets a 6-hex hash of its exact text, so two
 * cells never share a folder.
 */
export function cellSlug(cfgScale: number, negativePrompt: string, axes: Record<string, AxisValue>): string {
  const parts = [`s${String(cfgScale)}`, `neg-${negativePrompt === "" ? "none" : valueSlug(negativePrompt)}`];
  for (const [name, value] of Object.entries(axes)) parts.push(`${valueSlug(name)}-${valueSlug(String(value))}`);
  return parts.join("_");
}

function valueSlug(text: string): string {
  const words = text.toLowerCase().replace(/[^a-z0-9.+-]+/g, "-").replace(/^-+|-+$/g, "");
  const short = words.slice(0, 24).replace(/-+$/, "") || "x";
  return short === text ? short : `${short}-${createHash("sha256").update(text).digest("hex").slice(0, 6)}`;
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
