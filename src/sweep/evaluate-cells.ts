/**
 * Evaluation of a sweep: the reference side resolved once (a stats file or reference name read,
 * images extracted once), then every cell's images through the same extractor and the shared
 * on-disk feature cache (so a re-run, or a cell evaluated again, does no inference), and the
 * metrics of `diffeval metrics` (evaluate.ts `metricsOfPair`) against the one reference.
 * Per-prompt diversity comes from the metrics' groups: each image's group is its prompt index.
 * With `spec.clip`, every cell also gets `clip_score` (torchmetrics' definition, as `diffeval
 * clipscore`): each image against its own prompt (the prompt's text, before any template), and
 * each cell with a negative prompt `neg_clip` and `neg_clip_delta` (negative-clip.ts).
 * Every cell with images also gets the cost metrics (metrics/cost.ts) from its manifest entries:
 * `seconds_per_image`, and `model_evals_per_image` when the generator counted its passes.
 * With `spec.subject`, every cell with images also gets clip_i and clip_t from the same CLIP
 * embeddings, and dinov2_i when the encoder is dinov2 (subject-scores.ts).
 * With `spec.control`, every cell with images gets `control_f1` (metrics/control-f1.ts): the mean
 * over its images of the edge F1 against the image's own control image (its prompt's).
 * Each cell's metrics are also broken down by prompt (per-prompt.ts): n, precision against the
 * reference, the per-prompt diversity, and with `clip` the CLIP score.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { embedImages, embedTexts, openClipModel } from "../features/clip-model.js";
import { DiffevalError } from "../errors.js";
import { clipScore } from "../metrics/clip-score.js";
import { costPerImage } from "../metrics/cost.js";
import { meanControlF1 } from "../metrics/control-f1.js";
import { decodeImage, type RgbImage } from "../io/decode.js";
import { kthNearestDistances } from "../metrics/pairwise.js";
import { meanCrossCosine } from "../metrics/subject.js";
import type { FeatureMatrix } from "../types.js";
import { insideRealManifold } from "../metrics/prdc.js";
import { DEFAULT_PR_K } from "../metrics/registry.js";
import type { PromptResult } from "../report/sweep-results.js";
import { promptBreakdown, withPromptClipScores } from "./per-prompt.js";
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
import { cellsByCounterpart, negativeAdherence, type Counterpart } from "./negative-clip.js";
import { controlImageFor, imagesByCell, type PlannedCell, type SweepPlan } from "./plan.js";
import { clipSubjectScores, dinov2Reference, subjectReferenceFiles } from "./subject-scores.js";
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
  /** The cell's metrics prompt by prompt (per-prompt.ts). */
  perPrompt: PromptResult[];
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
  const dinoReference = await dinov2Reference(opts.spec.subject, opts.extractor);
  // Metrics only once the Inception session is closed (as `diffeval metrics` does: extract,
  // close, compute): the float64 linear algebra runs onnxruntime in a worker thread, and with a
  // session still open on the main thread the process crashed in onnxruntime-node's binding.
  await opts.releaseExtractor();
  const radii = referenceRadii(opts);
  const out: CellEvaluation[] = [];
  for (const c of extracted) out.push(await cellMetrics(c, settings, opts, radii));
  if (dinoReference) addDinov2I(out, extracted, dinoReference);
  if (opts.spec.control) await addControlF1(out, extracted, opts);
  if (opts.spec.clip) await addClipScores(out, extracted, opts);
  return out;
}

/**
 * `clip_score` of every cell with images, and `neg_clip` / `neg_clip_delta` of every cell with a
 * negative prompt (negative-clip.ts): CLIP opened once (after the metrics, so that no session is
 * open while they run), each distinct prompt and negative prompt embedded once, each cell's
 * images once. Cells go by counterpart group (s and axes), the group's cell without a negative
 * prompt first, so its embeddings serve the group's neg_clip_delta and one group is held at a time.
 */
async function addClipScores(out: CellEvaluation[], extracted: ExtractedCell[], opts: EvaluateCellsOptions): Promise<void> {
  const clip = opts.spec.clip!;
  const byCell = new Map(extracted.map((c, i) => [c.base.cell, { c, e: out[i] }]));
  const count = extracted.filter((c) => c.entries.length > 0).length;
  if (count === 0) return;
  opts.log?.(`CLIP score: ${count} cell(s) with ${clip.weights}`);
  const model = await openClipModel(clip.weights, { device: opts.clipDevice ?? "auto", log: opts.log });
  try {
    const dim = model.config.projectionDim;
    const texts = opts.plan.prompts.map((p) => p.text);
    const textEmbeds = await embedTexts(model, texts, clip.tokenizer);
    const negatives = opts.spec.negativePrompts.filter((t) => t !== "");
    const negEmbeds = negatives.length ? await embedTexts(model, negatives, clip.tokenizer) : new Float32Array(0);
    const negText = (t: string) => negEmbeds.subarray(negatives.indexOf(t) * dim, (negatives.indexOf(t) + 1) * dim);
    const subjectFiles = opts.spec.subject ? await subjectReferenceFiles(opts.spec.subject) : undefined;
    const subjectRef = subjectFiles ? { n: subjectFiles.length, d: dim, data: await embedImages(model, subjectFiles) } : undefined;
    for (const group of cellsByCounterpart(opts.plan.cells)) {
      const counterpart: Counterpart | undefined = group[0].negativePrompt === "" ? { cell: group[0] } : undefined;
      for (const cell of group) {
        const { c, e } = byCell.get(cell)!;
        if (c.entries.length === 0) continue;
        const t0 = performance.now();
        const images = await embedImages(model, c.entries.map((x) => path.join(opts.outputDir, x.file)));
        const n = c.entries.length;
        const paired = new Float32Array(n * dim);
        c.entries.forEach((x, i) => paired.set(textEmbeds.subarray(x.prompt_index * dim, (x.prompt_index + 1) * dim), i * dim));
        const { score } = clipScore({ n, d: dim, data: images }, { n, d: dim, data: paired });
        e.metrics = { ...e.metrics, clip_score: score };
        if (subjectRef) e.metrics = { ...e.metrics, ...clipSubjectScores({ n, d: dim, data: images }, { n, d: dim, data: paired }, subjectRef) };
        e.perPrompt = withPromptClipScores(e.perPrompt, c.entries, { n, d: dim, data: images }, { n, d: dim, data: paired });
        const embedded = { cell, entries: c.entries, images };
        if (cell === counterpart?.cell) counterpart.embedded = embedded;
        else {
          const neg = negativeAdherence(embedded, negText(cell.negativePrompt), dim, counterpart);
          e.metrics = { ...e.metrics, ...neg.metrics };
          if (neg.skipped) e.skipped = { ...e.skipped, neg_clip_delta: neg.skipped };
        }
        e.seconds += (performance.now() - t0) / 1000;
      }
    }
  } finally {
    await model.close();
  }
}

/** dinov2_i of every cell with features (the sweep's DINOv2 embeddings) against the reference photos'. */
function addDinov2I(out: CellEvaluation[], extracted: ExtractedCell[], reference: FeatureMatrix): void {
  extracted.forEach((c, i) => {
    if (c.features) out[i].metrics = { ...out[i].metrics, dinov2_i: meanCrossCosine(c.features.embedding, reference, "dinov2_i") };
  });
}

/**
 * `control_f1` of every cell with images: each image against its prompt's control image, with the
 * spec's Canny thresholds; a control the backend was told not to preprocess is already an edge map
 * (binarised, not re-detected). Each control image is decoded once for all cells.
 */
async function addControlF1(out: CellEvaluation[], extracted: ExtractedCell[], opts: EvaluateCellsOptions): Promise<void> {
  const control = opts.spec.control!;
  const decoded = new Map<string, Promise<RgbImage>>();
  const controlImage = (file: string) => {
    let img = decoded.get(file);
    if (!img) decoded.set(file, (img = readFile(file).then((b) => decodeImage(new Uint8Array(b), file))));
    return img;
  };
  for (let i = 0; i < extracted.length; i++) {
    const { entries } = extracted[i];
    if (entries.length === 0) continue;
    const t0 = performance.now();
    const fake = { count: entries.length, read: async (k: number) => decodeImage(new Uint8Array(await readFile(path.join(opts.outputDir, entries[k].file))), entries[k].file) };
    const controls = {
      count: entries.length,
      read: (k: number) => controlImage(controlImageFor(control, entries[k].prompt_index)),
      low: control.canny[0],
      high: control.canny[1],
      controlIsEdges: !control.preprocess,
    };
    out[i].metrics = { ...out[i].metrics, control_f1: await meanControlF1(fake, controls) };
    out[i].seconds += (performance.now() - t0) / 1000;
  }
}

interface ExtractedCell {
  base: Omit<CellEvaluation, "metrics" | "skipped" | "seconds" | "perPrompt">;
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

/**
 * The reference's k-NN radii for per-prompt precision (precision's k), once for all cells; only
 * when the spec asks for precision and the reference has per-image features (not a stats file).
 */
function referenceRadii(opts: EvaluateCellsOptions): Float64Array | undefined {
  const real = opts.reference.features;
  if (!opts.spec.metrics.includes("pr") || !real || real.n <= DEFAULT_PR_K) return undefined;
  return kthNearestDistances(real, DEFAULT_PR_K);
}

async function cellMetrics(c: ExtractedCell, settings: MetricSettings, opts: EvaluateCellsOptions, radii: Float64Array | undefined): Promise<CellEvaluation> {
  const cost = { ...costPerImage(c.entries.map((e) => ({ seconds: e.seconds, modelEvaluations: e.model_evaluations }))) };
  if (!c.features || c.features.embedding.n < 2) {
    const perPrompt = promptBreakdown(c.entries, opts.outputDir, { metrics: {} });
    return { ...c.base, metrics: cost, skipped: { all: `${c.base.n} image(s) done; metrics need at least 2` }, seconds: c.seconds, perPrompt };
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
  // Feature rows follow the entries (one per image; a sweep's images are never skipped as undecodable).
  const inside = radii && c.features.embedding.n === c.entries.length ? insideRealManifold(opts.reference.features!, c.features.embedding, radii) : undefined;
  const perPrompt = promptBreakdown(c.entries, opts.outputDir, { metrics: result.metrics, ...(inside ? { inside } : {}) });
  return { ...c.base, ...result, metrics: { ...result.metrics, ...cost }, perPrompt, seconds: c.seconds + (performance.now() - t0) / 1000 };
}

async function metricSettings(opts: EvaluateCellsOptions): Promise<MetricSettings> {
  const { spec } = opts;
  // fc.weight is read once for all cells (reading it decodes the whole ONNX file).
  const fcWeight = spec.metrics.includes("is") && opts.extractor.encoder === "inception" ? (await readOnnxInitializer(opts.extractor.model.onnxPath, "fc.weight")).data : undefined;
  return {
    // The cost metrics come from the manifest, for every cell (cellMetrics), not from the features;
    // with a control field, control_f1 comes from each image's control image (addControlF1).
    metrics: spec.metrics.filter((m) => m !== "cost" && !(m === "control" && spec.control)),
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
