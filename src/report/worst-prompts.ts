/**
 * The report's "worst prompts" section: the prompts of the best-FID cell that fare worst, with
 * their images, because an average over prompts hides the prompts that fail (issue 19). Ranked by
 * CLIP score (how well the images follow the prompt) when the sweep has one, else by precision
 * (how many of the prompt's images fall inside the reference's manifold), lowest first.
 */
import path from "node:path";
import { escapeHtml } from "./html.js";
import { pointOf, PROMPT_METRICS, type PromptResult, type SweepCellResult, type SweepResults } from "./sweep-results.js";

export const WORST_PROMPTS = 10;
/** Thumbnails shown per prompt (its first images, in seed order). */
const IMAGES_PER_PROMPT = 8;

/** The cell with the lowest FID, or undefined when no cell has one. */
export function bestFidCell(r: SweepResults): SweepCellResult | undefined {
  const withFid = r.cells.filter((c) => pointOf(c.metrics.fid) !== undefined);
  return withFid.length ? withFid.reduce((a, b) => (pointOf(b.metrics.fid)! < pointOf(a.metrics.fid)! ? b : a)) : undefined;
}

/** The best-FID cell's `count` worst prompts and what they were ranked by; undefined when nothing ranks them. */
export function worstPrompts(r: SweepResults, count = WORST_PROMPTS): { cell: SweepCellResult; by: "clip_score" | "precision"; prompts: PromptResult[] } | undefined {
  const cell = bestFidCell(r);
  const rows = cell?.perPrompt ?? [];
  const by = rows.some((p) => p.clip_score !== undefined) ? "clip_score" : rows.some((p) => p.precision !== undefined) ? "precision" : undefined;
  if (!cell || !by) return undefined;
  const ranked = rows.filter((p) => p[by] !== undefined).sort((a, b) => a[by]! - b[by]! || a.prompt_index - b.prompt_index);
  return { cell, by, prompts: ranked.slice(0, count) };
}

/** The section's HTML ("" when there is nothing to rank); `thumbnail` turns an image file into a data: URI. */
export async function worstPromptsHtml(r: SweepResults, thumbnail: (file: string) => Promise<string>): Promise<string> {
  const worst = worstPrompts(r);
  if (!worst) return "";
  const { cell, by, prompts } = worst;
  const label = by === "clip_score" ? "CLIP score" : "precision";
  const sections: string[] = [];
  for (const p of prompts) {
    const thumbs: string[] = [];
    for (const file of p.files.slice(0, IMAGES_PER_PROMPT)) {
      const alt = `${cell.slug}/${path.basename(file)}`;
      thumbs.push(`<img src="${await thumbnail(file)}" alt="${escapeHtml(alt)}" title="${escapeHtml(alt)}">`);
    }
    const values = [`n = ${p.n}`, ...PROMPT_METRICS.flatMap((k) => (p[k] === undefined ? [] : [`${k} = ${fmt(p[k])}`]))].join(", ");
    sections.push(`<section class="prompt"><h3>${escapeHtml(`#${p.prompt_index} ${JSON.stringify(p.prompt)}: ${values}`)}</h3><div class="prompt-images">${thumbs.join("")}</div></section>`);
  }
  return [
    // Its own class, apart from the contact sheet's `.sheet`: these are one prompt's images, not a cell's samples.
    `<style>.prompt-images { display: flex; flex-wrap: wrap; gap: 4px; } .prompt-images img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; background: #f3f3f3; }</style>`,
    `<h2 id="worst-prompts">Worst prompts of the best-FID cell</h2>`,
    `<p class="muted">${escapeHtml(`The ${prompts.length} prompt(s) with the lowest ${label} in the cell with the lowest FID (s = ${cell.params.cfg_scale}, ${cell.slug}), lowest first; every prompt of every cell is in per_prompt.csv and results.json.`)}</p>`,
    ...sections,
  ].join("\n");
}

function fmt(v: number | undefined): string {
  return v === undefined ? "" : v.toFixed(4);
}
