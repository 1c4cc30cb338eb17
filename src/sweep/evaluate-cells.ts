/**
 * Evaluation of a sweep: the reference side resolved once (a stats file or reference name read,
 * images extracted once), then every cell's images through the same extractor and the shared
 * on-disk feature cache (so a re-run, or a cell evaluated again, does no inference), and the
 * metrics of `diffeval metrics` (evaluate.ts `metricsOfPair`) against the one reference.
 * Per-prompt diversity comes from the metrics' groups: each image's group is its prompt index.
 * With `spec.clip`, every cell also gets `clip_score` (torchmetrics' definition, as `diffeval
 * clipscore`): each image against its own prompt (the prompt's text, before any template).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { embedImages, embedTexts, openClipModel } from "../features/clip-model.js";
import { DiffevalError } from "../errors.js";
import { clipScore } from "../metrics/clip-score.js";
import { metricsOfPair, type MetricSettings } from "../pipeline/metrics.js";
import type { Extractor } from "../features/extractor.js";
import type { DeviceName } from "../models/session.js";
import type { Generator } from "../generators/generator.js";
import { writeFileAtomic } from "../io/atomic.js";
import { extractSource, imagesSide, openImageSide, type ResolvedSource } from "../pipeline/resolve-source.js";
import type { ImageItem } from "../io/sources.js";
import type { ExtractedFeatures } from "../features/extract.js";
import { readOnnxInitializer } from "../models/onnx-metadata.js";
import type { ManifestDone } from "./manifest.js";
import { imagesByCell, type PlannedCell, type SweepPlan } from "./plan.js";
import type { ReferenceSpec, SweepSpec } from "./spec.js";

/** `analytic:real`, `<generator>:real`: images the generator draws itself. */
export function isGeneratedReference(source: string): boolean {
  return /^[a-z0-9_-]+:real$/i.test(source);
}

/**
 * The reference side's images extracted (a folder, list, zip, or images the generator draws,
 * written once under `<output>/reference/`). Stats sides are resolved by the caller before the
 * extractor opens (their protocol decides the extractor's).
 */
export async function extractReference(
  ref: ReferenceSpec,
  ctx: { extractor: Extractor; generator?: Generator; outputDir: string; onProgress?: (done: number, total: number) => void },
): Promise<ResolvedSource> {
  const folder = isGeneratedReference(ref.source) ? await drawReference(ref, ctx.generator, ctx.outputDir) : ref.source;
  const source = await openImageSide(folder);
  try {
    const resolved = await extractSource(ref.source, source, ctx.extractor, { onProgress: ctx.onProgress });
    return { ...resolved, spec: ref.source };
  } finally {
    await source.close();
  }
}

/** Writes the generator's reference images once; a completed folder (marker file) is reused. */
async function drawReference(ref: ReferenceSpec, generator: Generator | undefined, outputDir: string): Promise<string> {
  if (!generator?.reference) {
    throw new DiffevalError("E_SWEEP_SPEC", `spec.reference: ${ref.source} needs a generator that draws reference images; ${generator?.name ?? "this"} generator does not`);
  }
  const folder = path.join(outputDir, "reference", `${ref.source.replace(/[^\w-]+/g, "-")}-n${ref.count}-seed${ref.seed}`);
  const marker = path.join(folder, ".complete.json");
  const want = JSON.stringify({ source: ref.source, count: ref.count, seed: ref.seed });
  if (existsSync(marker) && (await readFile(marker, "utf8")) === want) return folder;
  for await (const img of generator.reference(ref.count!, ref.seed)) {
    await writeFileAtomic(path.join(folder, path.basename(img.name)), img.bytes);
  }
  await writeFileAtomic(marker, want);
  return folder;
}

export interface CellEvaluation {
  cell: PlannedCell;
  /** Images evaluated (the done ones). */
  n: number;
  /** Images of the cell recorded as failed (or missing). */
  missing: number;
  metrics: Record<string, unknown>;
  skipped: Record<string, string>;
  seconds: number;
  /** Absolute paths of the cell's images, in plan order. */
  files: string[];
}

export interface EvaluateCellsOptions {
  spec: SweepSpec;
  plan: SweepPlan;
  done: Map<string, ManifestDone>;
  reference: ResolvedSource;
  extractor: Extractor;
  outputDir: string;
  /** Closes the extractor between extraction and metrics (see evaluateCells). */
  releaseExtractor: () => Promise<void>;
  /** Where CLIP runs when the spec asks for CLIP scores (default auto). */
  clipDevice?: DeviceName;
  log?: (line: string) => void;
  onProgress?: (cell: PlannedCell, done: number, total: number) => void;
}

export async function evaluateCells(opts: EvaluateCellsOptions): Promise<CellEvaluation[]> {
  const settings = await metricSettings(opts);
  const extracted = await extractCells(opts);
  // Metrics only once the Inception session is closed (as `diffeval metrics` does: extract,
  // close, compute): the float64 linear algebra runs onnxruntime in a worker thread, and with a
  // session still open on the main thread the process crashed in onnxruntime-node's binding.
  await opts.releaseExtractor();
  const out: CellEvaluation[] = [];
  for (const c of extracted) out.push(await cellMetrics(c, settings, opts));
  if (opts.spec.clip) await addClipScores(out, extracted, opts);
  return out;
}

/**
 * `clip_score` of every cell with images: CLIP opened once (after the metrics, so that no
 * session is open while they run), each distinct prompt embedded once.
 */
async function addClipScores(out: CellEvaluation[], extracted: ExtractedCell[], opts: EvaluateCellsOptions): Promise<void> {
  const clip = opts.spec.clip!;
  const withImages = extracted.map((c, i) => ({ c, e: out[i] })).filter(({ c }) => c.entries.length > 0);
  if (withImages.length === 0) return;
  opts.log?.(`CLIP score: ${withImages.length} cell(s) with ${clip.weights}`);
  const model = await openClipModel(clip.weights, { device: opts.clipDevice ?? "auto", log: opts.log });
  try {
    const dim = model.config.projectionDim;
    const texts = opts.plan.prompts.map((p) => p.text);
    const textEmbeds = await embedTexts(model, texts, clip.tokenizer);
    for (const { c, e } of withImages) {
      const t0 = performance.now();
      const files = c.entries.map((x) => path.join(opts.outputDir, x.file));
      const images = await embedImages(model, files);
      const paired = new Float32Array(files.length * dim);
      c.entries.forEach((x, i) => paired.set(textEmbeds.subarray(x.prompt_index * dim, (x.prompt_index + 1) * dim), i * dim));
      const { score } = clipScore({ n: files.length, d: dim, data: images }, { n: files.length, d: dim, data: paired });
      e.metrics = { ...e.metrics, clip_score: score };
      e.seconds += (performance.now() - t0) / 1000;
    }
  } finally {
    await model.close();
  }
}

interface ExtractedCell {
  base: Omit<CellEvaluation, "metrics" | "skipped" | "seconds">;
  /** Absent when fewer than 2 images are done. */
  features?: ExtractedFeatures;
  /** The cell's folder (absolute): MS-SSIM re-opens the side by it to decode image pairs. */
  spec: string;
  entries: ManifestDone[];
  seconds: number;
}

async function extractCells(opts: EvaluateCellsOptions): Promise<ExtractedCell[]> {
  const out: ExtractedCell[] = [];
  const byCell = imagesByCell(opts.plan);
  for (const cell of opts.plan.cells) {
    const t0 = performance.now();
    const images = byCell.get(cell)!;
    const entries = images.flatMap((im) => opts.done.get(im.key) ?? []);
    const files = entries.map((e) => path.join(opts.outputDir, e.file));
    const base = { cell, n: entries.length, missing: images.length - entries.length, files };
    const spec = path.join(opts.outputDir, "images", cell.slug);
    if (entries.length < 2) {
      out.push({ base, spec, entries, seconds: 0 });
      continue;
    }
    opts.log?.(`extracting cell ${cell.index + 1}/${opts.plan.cells.length} ${cell.slug} (${entries.length} images)`);
    const features = await opts.extractor.extract(cellItems(entries, opts.outputDir), (d, t) => opts.onProgress?.(cell, d, t));
    out.push({ base: { ...base, n: features.embedding.n }, features, spec, entries, seconds: (performance.now() - t0) / 1000 });
  }
  return out;
}

async function cellMetrics(c: ExtractedCell, settings: MetricSettings, opts: EvaluateCellsOptions): Promise<CellEvaluation> {
  if (!c.features || c.features.embedding.n < 2) {
    return { ...c.base, metrics: {}, skipped: { all: `${c.base.n} image(s) done; metrics need at least 2` }, seconds: c.seconds };
  }
  const t0 = performance.now();
  const fake = imagesSide(c.spec, c.features, opts.extractor, "folder"); // a cell's images are a folder of the output
  const groups = promptGroups(c.entries);
  opts.log?.(`evaluating cell ${c.base.cell.index + 1}/${opts.plan.cells.length} ${c.base.cell.slug}`);
  // A metric a small cell cannot give (too few images for its splits or k) is skipped with the reason
  // by the registry, so that one small cell does not stop the whole sweep's evaluation.
  const result = await metricsOfPair(
    { real: opts.reference, fake, onnxPath: opts.extractor.model.onnxPath, encoder: opts.extractor.encoder },
    { ...settings, ...(groups ? { groups } : {}) },
  );
  return { ...c.base, ...result, seconds: c.seconds + (performance.now() - t0) / 1000 };
}

async function metricSettings(opts: EvaluateCellsOptions): Promise<MetricSettings> {
  const { spec } = opts;
  // fc.weight is read once for all cells (reading it decodes the whole ONNX file).
  const fcWeight = spec.metrics.includes("is") && opts.extractor.encoder === "inception" ? (await readOnnxInitializer(opts.extractor.model.onnxPath, "fc.weight")).data : undefined;
  return {
    metrics: spec.metrics,
    bootstrap: spec.bootstrap,
    metricSeed: spec.metricSeed,
    ...(fcWeight ? { fcWeight } : {}),
    warn: (line) => opts.log?.(line),
  };
}

/** The cell's done images, in plan order; names are `<prompt-index>-<seed>.<ext>`. */
function cellItems(entries: ManifestDone[], outputDir: string): ImageItem[] {
  return entries.map((e) => {
    const location = path.join(outputDir, e.file);
    return { name: path.basename(e.file), location, read: async () => new Uint8Array(await readFile(location)) };
  });
}

/**
 * Image name -> prompt index, when every prompt has at least two images (a pairwise distance
 * needs a pair); undefined otherwise (one seed per prompt: no per-prompt diversity).
 */
function promptGroups(entries: ManifestDone[]): Map<string, string> | undefined {
  const counts = new Map<number, number>();
  for (const e of entries) counts.set(e.prompt_index, (counts.get(e.prompt_index) ?? 0) + 1);
  if ([...counts.values()].some((c) => c < 2)) return undefined;
  return new Map(entries.map((e) => [path.basename(e.file), String(e.prompt_index)]));
}
