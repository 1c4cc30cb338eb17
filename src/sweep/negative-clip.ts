/**
 * Negative-prompt adherence of a sweep's cells (issue 19): `neg_clip`, the CLIP score of a cell's
 * images against its negative prompt (clip_score's definition, torchmetrics'), and
 * `neg_clip_delta`, that score minus the one of the same prompts and seeds generated without a
 * negative prompt at the same s and every other axis. A negative prompt takes the unconditional
 * branch's place in CFG (eps = eps_neg + s (eps_cond - eps_neg)), so guidance pushes away from it:
 * a negative delta says the concept was pushed out of the images, not that the prompt never
 * brought it in. Plain functions over the cells and their CLIP embeddings; the sweep's CLIP pass
 * (evaluate-cells.ts) embeds and calls them.
 */
import { negativeClipScores } from "../metrics/clip-score.js";
import type { ManifestDone } from "./manifest.js";
import type { PlannedCell } from "./plan.js";

/** A cell's done images and their CLIP image embeddings (row i: entries[i]), `dim` wide. */
export interface EmbeddedCell {
  cell: PlannedCell;
  entries: readonly ManifestDone[];
  images: Float32Array;
}

/** The cell without a negative prompt that a group's other cells are compared with, once embedded. */
export interface Counterpart {
  cell: PlannedCell;
  /** Absent when that cell has no done images. */
  embedded?: EmbeddedCell;
}

export const NO_COUNTERPART = "no cell without a negative prompt at the same s and axes";

/**
 * The cells grouped by everything but the negative prompt (s and every extra axis), in plan
 * order, each group's cell without a negative prompt first: processed in this order, a group's
 * counterpart is embedded before the cells compared with it, and only one group is held at a time.
 */
export function cellsByCounterpart(cells: readonly PlannedCell[]): PlannedCell[][] {
  const groups = new Map<string, PlannedCell[]>();
  for (const cell of cells) {
    const key = JSON.stringify([cell.cfgScale, Object.entries(cell.axes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
    const group = groups.get(key) ?? [];
    if (cell.negativePrompt === "") group.unshift(cell);
    else group.push(cell);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/**
 * neg_clip of a cell with a negative prompt and, when its counterpart holds every one of its
 * images (same prompt and seed), neg_clip_delta; otherwise the reason the delta is absent.
 * `negText` is the negative prompt's text embedding.
 */
export function negativeAdherence(
  x: EmbeddedCell,
  negText: Float32Array,
  dim: number,
  counterpart: Counterpart | undefined,
): { metrics: { neg_clip: number; neg_clip_delta?: number }; skipped?: string } {
  const n = x.entries.length;
  const cell = { images: { n, d: dim, data: x.images }, texts: { n, d: dim, data: repeatRows(negText, n) } };
  const aligned = counterpart ? alignedImages(x.entries, counterpart, dim) : NO_COUNTERPART;
  if (typeof aligned === "string") return { metrics: negativeClipScores({ cell }), skipped: aligned };
  return { metrics: negativeClipScores({ cell, withoutNegative: { images: { n, d: dim, data: aligned }, texts: cell.texts } }) };
}

/** The counterpart's embedding of each of the cell's images (row i: entries[i]'s prompt and seed), or why some are missing. */
function alignedImages(entries: readonly ManifestDone[], counterpart: Counterpart, dim: number): Float32Array | string {
  const rowOf = new Map(counterpart.embedded?.entries.map((e, i) => [`${e.prompt_index}/${e.seed}`, i]) ?? []);
  const out = new Float32Array(entries.length * dim);
  let lacking = 0;
  entries.forEach((e, i) => {
    const row = rowOf.get(`${e.prompt_index}/${e.seed}`);
    if (row === undefined) lacking++;
    else out.set(counterpart.embedded!.images.subarray(row * dim, (row + 1) * dim), i * dim);
  });
  if (lacking === 0) return out;
  return `the cell without a negative prompt at the same s and axes (${counterpart.cell.slug}) lacks ${lacking} of this cell's ${entries.length} images (same prompt and seed)`;
}

function repeatRows(row: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * row.length);
  for (let i = 0; i < n; i++) out.set(row, i * row.length);
  return out;
}
