/**
 * A sweep's report folder: results.json (the gate's schema), results.csv (one row per cell),
 * summary.md, and index.html, one self-contained page (report/html.ts: opens offline, loads
 * nothing) with the plots of sweep-plots.ts, the numbers, and a contact sheet of a few small
 * inline thumbnails per cell, the same (prompt, seed) images in every cell so that the eye
 * compares like with like. With scripts on, the plots are live (sweep-interactive.ts: hover a
 * point for its cell's numbers, click it for its contact sheet, filter by negative prompt and by
 * each extra axis); with scripts off, the same plots as static SVG.
 */
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { writeFileAtomic } from "../io/atomic.js";
import { escapeHtml, htmlDocument, htmlTable } from "./html.js";
import { dataUri } from "./images.js";
import { compilePlot, renderVegaSvg, vegaRuntimeSource } from "./plot.js";
import { cellAnchor, jsonDataBlock, SWEEP_PAGE_SCRIPT, type InteractiveCell, type InteractiveData } from "./sweep-interactive.js";
import { negativeLabel, sweepPlots } from "./sweep-plots.js";
import { worstPromptsHtml } from "./worst-prompts.js";
import {
  GUIDANCE_CONVENTIONS,
  pairwiseOf,
  pointOf,
  perPromptCsv,
  sweepResultsCsv,
  sweepResultsJson,
  wOf,
  type SweepCellResult,
  type SweepResults,
} from "./sweep-results.js";

export interface SweepReportFiles {
  dir: string;
  json: string;
  csv: string;
  /** One row per cell and prompt (see sweep-results.ts perPromptCsv). */
  perPromptCsv: string;
  markdown: string;
  html: string;
}

/** Writes the report's five files into `dir` and returns their paths. */
export async function writeSweepReport(dir: string, r: SweepResults): Promise<SweepReportFiles> {
  await mkdir(dir, { recursive: true });
  const files = {
    dir,
    json: path.join(dir, "results.json"),
    csv: path.join(dir, "results.csv"),
    perPromptCsv: path.join(dir, "per_prompt.csv"),
    markdown: path.join(dir, "summary.md"),
    html: path.join(dir, "index.html"),
  };
  const where = { elsewhere: 'choose another "report" folder in the spec' };
  await writeFileAtomic(files.json, `${JSON.stringify(sweepResultsJson(r), null, 2)}\n`, where);
  await writeFileAtomic(files.csv, sweepResultsCsv(r), where);
  await writeFileAtomic(files.perPromptCsv, perPromptCsv(r), where);
  await writeFileAtomic(files.markdown, sweepSummaryMarkdown(r), where);
  await writeFileAtomic(files.html, await sweepReportHtml(r), where);
  return files;
}

// ---------------------------------------------------------------------------------------------
// summary.md

export function sweepSummaryMarkdown(r: SweepResults): string {
  const lines = [
    `# Sweep ${r.name}`,
    "",
    `Generator \`${r.generator}\`, ${r.cells.length} cells, ${r.prompts.length} prompt(s) x ${r.seeds.length} seed(s) per cell; ` +
      `reference \`${r.real}\` (n = ${r.n_real ?? "unknown"}).`,
    "",
    `**Guidance conventions.** ${GUIDANCE_CONVENTIONS}`,
    "",
    ...bestLines(r),
    markdownTable(r),
    "",
    ...failedLines(r, (t) => `\`${t}\``),
    `Protocol ${r.protocol}, weights ${r.weights_sha256.slice(0, 12)}, diffeval ${r.version}${r.device ? `, ${r.device}` : ""}, ${r.seconds.toFixed(1)} s. ` +
      `Diversity: per-prompt mean pairwise distance of Inception pool3 features (mean over prompts).` +
      (r.cells.some((c) => pointOf(c.metrics.clip_score) !== undefined)
        ? ` CLIP score: torchmetrics' definition (100 x cosine of each image and its own prompt, mean, clamped at 0).`
        : ""),
    "",
  ];
  return lines.join("\n");
}

function bestLines(r: SweepResults): string[] {
  const withFid = r.cells.filter((c) => pointOf(c.metrics.fid) !== undefined);
  if (withFid.length === 0) return [];
  const best = withFid.reduce((a, b) => (pointOf(b.metrics.fid)! < pointOf(a.metrics.fid)! ? b : a));
  return [`Lowest FID: ${fmt(pointOf(best.metrics.fid))} at ${cellText(best, r.axes)}.`, ""];
}

function cellText(c: SweepCellResult, axes: string[]): string {
  const parts = [`s = ${c.params.cfg_scale} (w = ${wOf(c)})`, `negative prompt ${negativeLabel(c.params.negative_prompt as string)}`];
  for (const a of axes) parts.push(`${a} = ${String(c.params[a])}`);
  return parts.join(", ");
}

const TABLE_METRICS: [string, (m: Record<string, unknown>) => number | undefined][] = [
  ["FID", (m) => pointOf(m.fid)],
  ["KID", (m) => pointOf(m.kid)],
  ["precision", (m) => pointOf(m.precision)],
  ["recall", (m) => pointOf(m.recall)],
  ["density", (m) => pointOf(m.density)],
  ["coverage", (m) => pointOf(m.coverage)],
  ["IS", (m) => pointOf(m.is)],
  ["Vendi", (m) => pointOf(m.vendi)],
  ["pairwise", pairwiseOf],
  ["CLIP score", (m) => pointOf(m.clip_score)],
  ["neg CLIP", (m) => pointOf(m.neg_clip)],
  ["neg CLIP delta", (m) => pointOf(m.neg_clip_delta)],
  ["evals/image", (m) => pointOf(m.model_evals_per_image)],
  ["s/image", (m) => pointOf(m.seconds_per_image)],
  ["control F1", (m) => pointOf(m.control_f1)],
  ["CLIP-I", (m) => pointOf(m.clip_i)],
  ["DINOv2-I", (m) => pointOf(m.dinov2_i)],
  ["CLIP-T", (m) => pointOf(m.clip_t)],
];

function tableColumns(r: SweepResults): string[] {
  const metrics = TABLE_METRICS.filter(([, get]) => r.cells.some((c) => get(c.metrics) !== undefined)).map(([h]) => h);
  return ["s", "w", "negative prompt", ...r.axes, "n", ...metrics];
}

function tableRows(r: SweepResults, quote: (t: string) => string): string[][] {
  const metrics = TABLE_METRICS.filter(([, get]) => r.cells.some((c) => get(c.metrics) !== undefined));
  return r.cells.map((c) => [
    String(c.params.cfg_scale),
    String(wOf(c)),
    c.params.negative_prompt === "" ? "(none)" : quote(String(c.params.negative_prompt)),
    ...r.axes.map((a) => String(c.params[a])),
    c.missing ? `${c.n} (${c.missing} missing)` : String(c.n),
    ...metrics.map(([, get]) => fmt(get(c.metrics))),
  ]);
}

function markdownTable(r: SweepResults): string {
  const cols = tableColumns(r);
  const cell = (t: string) => t.replace(/\|/g, "\\|");
  const rows = tableRows(r, (t) => `\`${t}\``).map((row) => `| ${row.map(cell).join(" | ")} |`);
  return [`| ${cols.join(" | ")} |`, `|${cols.map((_, i) => (i < 2 || i >= 3 + r.axes.length ? " ---: " : " --- ")).join("|")}|`, ...rows].join("\n");
}

function failedLines(r: SweepResults, code: (t: string) => string): string[] {
  if (r.failed.length === 0) return [];
  const shown = r.failed.slice(0, 20).map((f) => `- ${code(f.key)}: ${f.error}`);
  const more = r.failed.length > 20 ? [`- ... and ${r.failed.length - 20} more (see manifest.jsonl)`] : [];
  return [`**${r.failed.length} image(s) failed** (re-run the sweep to retry them):`, "", ...shown, ...more, ""];
}

// ---------------------------------------------------------------------------------------------
// index.html

const THUMB = 96;

const REPORT_CSS = `
  figure.plot { margin: 1rem 0; }
  figure.plot svg { max-width: 100%; height: auto; }
  .conventions { background: #f6f8fa; border-left: 3px solid #888; padding: 0.5rem 0.8rem; }
  .sheet { display: flex; flex-wrap: wrap; gap: 4px; }
  .sheet img { width: ${THUMB}px; height: ${THUMB}px; object-fit: contain; image-rendering: pixelated; background: #f3f3f3; }
  .cell h3 { font-size: 0.95rem; margin: 1rem 0 0.3rem; font-weight: 600; }
  .failed { color: #a00; }
  .cell:target { outline: 2px solid #d62728; outline-offset: 4px; }
  figure.plot.live-ready > svg { display: none; }
  figure.plot .live path[aria-roledescription="point"] { cursor: pointer; }
  #plot-filters { display: flex; gap: 1.2rem; flex-wrap: wrap; margin: 1rem 0; }
  #plot-filters[hidden] { display: none; }
  #plot-tip { position: fixed; z-index: 10; max-width: 420px; background: #fff; border: 1px solid #bbb; border-radius: 4px; padding: 0.4rem 0.6rem; font-size: 0.85rem; box-shadow: 0 2px 6px rgba(0,0,0,0.15); pointer-events: none; }
`;

export async function sweepReportHtml(r: SweepResults): Promise<string> {
  const plots = [];
  const data: InteractiveData = { plots: {}, cells: interactiveCells(r) };
  for (const p of sweepPlots(r)) {
    const spec = compilePlot(p.spec);
    data.plots[p.id] = spec;
    plots.push(`<h2>${escapeHtml(p.title)}</h2>\n<figure class="plot" id="${escapeHtml(p.id)}">${await renderVegaSvg(spec)}</figure>`);
  }
  const body = [
    `<h1>Sweep ${escapeHtml(r.name)}</h1>`,
    `<p class="muted">generator <code>${escapeHtml(r.generator)}</code>, ${r.cells.length} cells, ${r.prompts.length} prompt(s) x ${r.seeds.length} seed(s) per cell, ` +
      `reference <code>${escapeHtml(r.real)}</code> (n = ${r.n_real ?? "unknown"})</p>`,
    `<p class="conventions"><strong>Guidance conventions.</strong> ${escapeHtml(GUIDANCE_CONVENTIONS)}</p>`,
    ...bestLines(r).filter(Boolean).map((l) => `<p>${escapeHtml(l)}</p>`),
    filtersHtml(r),
    ...plots,
    `<h2>Numbers</h2>`,
    htmlTable(tableColumns(r).map((h, i) => ({ header: h, numeric: i < 2 || i >= 3 + r.axes.length })), tableRows(r, (t) => JSON.stringify(t))),
    failedHtml(r),
    `<h2>Samples</h2>`,
    `<p class="muted">The same prompts and seeds in every cell.</p>`,
    await contactSheet(r),
    await worstPromptsHtml(r, thumbnailUri),
    `<p class="muted">${escapeHtml(`protocol ${r.protocol}, weights ${r.weights_sha256.slice(0, 12)}, n_real ${r.n_real ?? "unknown"}, diffeval ${r.version}${r.device ? `, ${r.device}` : ""}, ${r.seconds.toFixed(1)} s.`)}</p>`,
    `<div id="plot-tip" hidden></div>`,
    jsonDataBlock("report-data", data),
  ].join("\n");
  return htmlDocument({ title: `Sweep ${r.name}`, body, css: REPORT_CSS, scripts: [await vegaRuntimeSource(), SWEEP_PAGE_SCRIPT] });
}

/** What each select compares: the negative prompt, then each extra axis, as text. */
function filterKeys(c: SweepCellResult, axes: string[]): Record<string, string> {
  const keys: Record<string, string> = { negative_prompt: negativeLabel(c.params.negative_prompt as string) };
  for (const a of axes) keys[a] = String(c.params[a]);
  return keys;
}

function interactiveCells(r: SweepResults): InteractiveCell[] {
  const metrics = TABLE_METRICS.filter(([, get]) => r.cells.some((c) => get(c.metrics) !== undefined));
  return r.cells.map((c) => ({
    cell: c.slug,
    anchor: cellAnchor(c.slug),
    title: cellText(c, r.axes),
    keys: filterKeys(c, r.axes),
    metrics: [["n", c.missing ? `${c.n} (${c.missing} missing)` : String(c.n)], ...metrics.map(([h, get]): [string, string] => [h, fmt(get(c.metrics))])],
  }));
}

/**
 * One select per parameter that varies (negative prompt, each extra axis), hidden until the
 * page script runs: without scripts it could filter nothing.
 */
function filtersHtml(r: SweepResults): string {
  const names = ["negative_prompt", ...r.axes];
  const selects = names.flatMap((name) => {
    const values = [...new Set(r.cells.map((c) => filterKeys(c, r.axes)[name]))];
    if (values.length < 2) return [];
    const options = [`<option value="">all</option>`, ...values.map((v) => `<option value="${escapeHtml(v)}">${escapeHtml(v)}</option>`)];
    const label = name === "negative_prompt" ? "negative prompt" : name;
    return [`<label>${escapeHtml(label)} <select name="${escapeHtml(name)}">${options.join("")}</select></label>`];
  });
  return selects.length ? `<form id="plot-filters" hidden>${selects.join("")}</form>` : "";
}

function failedHtml(r: SweepResults): string {
  if (r.failed.length === 0) return "";
  const items = r.failed.slice(0, 20).map((f) => `<li><code>${escapeHtml(f.key)}</code>: ${escapeHtml(f.error)}</li>`);
  if (r.failed.length > 20) items.push(`<li>... and ${r.failed.length - 20} more (see manifest.jsonl)</li>`);
  return `<div class="failed"><h2>${r.failed.length} image(s) failed</h2><p>Re-run the sweep to retry them.</p><ul>${items.join("")}</ul></div>`;
}

async function contactSheet(r: SweepResults): Promise<string> {
  const sections: string[] = [];
  for (const c of r.cells) {
    const thumbs: string[] = [];
    for (const file of c.samples) {
      const alt = `${c.slug}/${path.basename(file)}`;
      thumbs.push(`<img src="${await thumbnailUri(file)}" alt="${escapeHtml(alt)}" title="${escapeHtml(alt)}">`);
    }
    sections.push(`<section class="cell" id="${escapeHtml(cellAnchor(c.slug))}"><h3>${escapeHtml(cellText(c, r.axes))}</h3><div class="sheet">${thumbs.join("")}</div></section>`);
  }
  return sections.join("\n");
}

/** A small PNG of an image (never enlarged: the page scales small images up without smoothing). */
async function thumbnailUri(file: string): Promise<string> {
  const buf = await sharp(await readFile(file)).resize({ width: THUMB, height: THUMB, fit: "inside", withoutEnlargement: true }).png().toBuffer();
  return dataUri(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), "image/png");
}

function fmt(v: number | undefined): string {
  if (v === undefined) return "";
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(3);
}
