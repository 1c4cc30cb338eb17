/**
 * `runSweep`: spec -> plan -> images -> metrics per cell -> report. The order is chosen so that
 * whatever can fail for a reason the user must fix fails before any image is generated: the
 * spec and prompts are validated, a stats reference is read, and the FID model is resolved (the
 * weights error when they are missing offline) before the first request.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import type { EncoderName } from "../features/encoders.js";
import { openExtractor, type Extractor, type ExtractorOptions } from "../features/extractor.js";
import { POOL3_DIM } from "../features/inception-runner.js";
import type { Generator } from "../generators/generator.js";
import { featureSpaceMeta, resolveStatsSource, type ResolvedSource } from "../pipeline/resolve-source.js";
import { writeSweepReport, type SweepReportFiles } from "../report/sweep-report.js";
import type { SweepResults } from "../report/sweep-results.js";
import { assertComparable, plannedProtocol } from "../pipeline/source-pair.js";
import { VERSION } from "../version.js";
import { evaluateCells, extractReference, isGeneratedReference, type CellEvaluation } from "./evaluate-cells.js";
import { createSweepGenerator } from "./generator-factory.js";
import { readManifest, verifiedDone, type ManifestFailed } from "./manifest.js";
import { planSweep, summarizePlan, type PlanSummary, type SweepPlan } from "./plan.js";
import { loadPrompts } from "./prompts.js";
import { generateImages, type RunProgress } from "./runner.js";
import { inSpecFile, loadSweepSpec, type ControlSpec, type SweepSpec } from "./spec.js";
import { decodeImage } from "../io/decode.js";
import { subjectReferenceFiles } from "./subject-scores.js";

export interface RunSweepOptions extends ExtractorOptions {
  /** A spec file, or an already validated spec. */
  spec: string | SweepSpec;
  /** Plan only: nothing is generated, no model is loaded. */
  dryRun?: boolean;
  /** Use this generator instead of the one the spec describes (tests, embedding). */
  generator?: Generator;
  signal?: AbortSignal;
  /** Runner-level attempts after a failed request (default 1). */
  retries?: number;
  /** Contact-sheet thumbnails per cell (default 8). */
  samplesPerCell?: number;
  onImages?: (p: RunProgress) => void;
  onExtract?: (what: string, done: number, total: number) => void;
}

export interface SweepOutcome {
  spec: SweepSpec;
  plan: SweepPlan;
  /** The plan against the manifest as found at the start. */
  summary: PlanSummary;
  generated: number;
  failed: ManifestFailed[];
  aborted: boolean;
  /** Absent for a dry run or an aborted run. */
  results?: SweepResults;
  report?: SweepReportFiles;
}

export async function runSweep(opts: RunSweepOptions): Promise<SweepOutcome> {
  const t0 = performance.now();
  const spec = typeof opts.spec === "string" ? await loadSweepSpec(opts.spec) : opts.spec;
  const plan = await planOfSpec(spec);
  const done = await verifiedDone(spec.output, await readManifest(spec.output), plan);
  const summary = summarizePlan(plan, new Set(done.keys()));
  const base = { spec, plan, summary, generated: 0, failed: [], aborted: false };
  if (opts.dryRun) return base;

  const stats = isGeneratedReference(spec.reference.source) ? undefined : await resolveStatsSource(spec.reference.source, { log: opts.log });
  if (opts.encoder !== undefined && opts.encoder !== spec.encoder) {
    throw new DiffevalError("E_USAGE", `--encoder ${opts.encoder}: a sweep's encoder is its spec's "encoder" field (${spec.encoder} here); set it there, so that the spec records it`);
  }
  const protocol = plannedProtocol(spec.encoder, spec.protocol ?? opts.protocol, [stats]);
  if (stats) assertStatsUsable(stats, protocol, spec.encoder);
  if (spec.clip) assertClipWeights(spec.clip.weights);
  if (spec.control) await assertControlImagesDecode(spec.control);
  if (spec.subject) await subjectReferenceFiles(spec.subject);
  // The model first: missing weights stop the sweep before any image is generated.
  const extractor = await openExtractor({ ...opts, protocol, encoder: spec.encoder, weights: spec.encoderWeights ?? opts.weights });
  const releaseExtractor = once(() => extractor.close());
  const generator = opts.generator ?? (await createSweepGenerator(spec, { ...(opts.device ? { device: opts.device } : {}), ...(opts.log ? { log: opts.log } : {}) }));
  // A generator made here is closed as soon as the images are made: an in-process one (onnx-sd)
  // holds onnxruntime sessions that should not stay open while the metrics' worker runs its own.
  const releaseGenerator = opts.generator ? async () => {} : once(async () => generator.close?.());
  try {
    if (stats) assertComparable(stats, { spec: "this sweep's model", meta: { weights_sha256: extractor.model.weightsSha256 } });
    opts.log?.(planLine(spec, summary, generator));
    const reference =
      stats ??
      (await extractReference(spec.reference, {
        extractor,
        generator,
        outputDir: spec.output,
        onProgress: (d, t) => opts.onExtract?.("reference", d, t),
      }).catch((e: unknown) => {
        throw inSpecFile(spec.file, e);
      }));
    const run = await generateImages(plan, { outputDir: spec.output, generator, signal: opts.signal, retries: opts.retries, onProgress: opts.onImages });
    await releaseGenerator();
    const outcome = { ...base, generated: run.generated, failed: run.failed, aborted: run.aborted };
    if (run.aborted) return outcome;
    const cells = await evaluateCells({
      spec,
      plan,
      done: run.done,
      reference,
      extractor,
      outputDir: spec.output,
      releaseExtractor,
      ...(opts.device ? { clipDevice: opts.device } : {}),
      log: opts.log,
      onProgress: (cell, d, t) => opts.onExtract?.(cell.slug, d, t),
    });
    const results = sweepResults(spec, plan, cells, reference, extractor, generator, run.failed, opts.samplesPerCell ?? 8, t0);
    return { ...outcome, results, report: await writeSweepReport(spec.report, results) };
  } finally {
    await releaseExtractor();
    await releaseGenerator();
  }
}

/** The plan of the spec and its prompts; errors in either name the spec file. */
async function planOfSpec(spec: SweepSpec): Promise<SweepPlan> {
  try {
    return planSweep(spec, await loadPrompts(spec.prompts));
  } catch (e) {
    throw inSpecFile(spec.file, e);
  }
}

/** `close` run the first time the result is called; later calls do nothing. */
function once(close: () => Promise<unknown>): () => Promise<void> {
  let open = true;
  return async () => {
    if (!open) return;
    open = false;
    await close();
  };
}

/** The CLIP folder's files, checked before any image is generated (the model opens after the metrics). */
function assertClipWeights(dir: string): void {
  for (const f of ["config.json", "model.safetensors", "preprocessor_config.json"]) {
    if (!existsSync(path.join(dir, f))) {
      throw new DiffevalError("E_WEIGHTS_LAYOUT", `spec.clip.weights: ${path.join(dir, f)} is missing; give a Hugging Face CLIP checkpoint folder (config.json, model.safetensors, tokenizer files, preprocessor_config.json)`);
    }
  }
}

function planLine(spec: SweepSpec, s: PlanSummary, generator: Generator): string {
  return `sweep ${spec.name}: ${s.cells} cells, ${s.images} images (${s.done} done, ${s.requests} to generate), generator ${generator.name} x${generator.concurrency}`;
}

/** Every control image read and decoded before the first request: a bad one would fail every image of the sweep. */
async function assertControlImagesDecode(control: ControlSpec): Promise<void> {
  const files = typeof control.image === "string" ? [control.image] : [...new Set(Object.values(control.image))];
  for (const file of files) {
    const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
      throw new DiffevalError("E_SOURCE", `spec.control.image: cannot read ${file} (${e.code ?? e.message}); check the path (relative paths start at the spec's folder)`);
    });
    await decodeImage(new Uint8Array(bytes), file);
  }
}

/** A stats reference must have been made with this sweep's encoder and protocol (and Inception's pool3 dimension). */
function assertStatsUsable(stats: ResolvedSource, protocol: string | undefined, encoder: EncoderName): void {
  assertComparable(stats, { spec: `this sweep (encoder ${encoder}${protocol ? `, protocol ${protocol}` : ""})`, meta: featureSpaceMeta(encoder, protocol) });
  const d = stats.gaussian.mu.length;
  if (encoder === "inception" && d !== POOL3_DIM) {
    throw new DiffevalError("E_FEATURE_DIM", `${stats.spec} holds ${d}-d statistics; the sweep's images give ${POOL3_DIM}-d Inception features`);
  }
}

function sweepResults(
  spec: SweepSpec,
  plan: SweepPlan,
  cells: CellEvaluation[],
  reference: ResolvedSource,
  extractor: Extractor,
  generator: Generator,
  failed: ManifestFailed[],
  samplesPerCell: number,
  t0: number,
): SweepResults {
  return {
    name: spec.name,
    generator: generator.name,
    ...(extractor.encoder !== "inception" ? { encoder: extractor.encoder } : {}),
    protocol: extractor.protocol,
    weights_sha256: extractor.model.weightsSha256,
    version: VERSION,
    device: extractor.device,
    real: spec.reference.source,
    n_real: reference.gaussian.n || null,
    axes: spec.axes.map(([name]) => name),
    prompts: plan.prompts.map((p) => ({ text: p.text, ...(p.imageId !== undefined ? { image_id: p.imageId } : {}) })),
    seeds: spec.seeds,
    metrics: spec.metrics,
    bootstrap: spec.bootstrap,
    cells: cells.map((c) => ({
      params: c.cell.params,
      slug: c.cell.slug,
      n: c.n,
      missing: c.missing,
      metrics: c.metrics,
      skipped: c.skipped,
      seconds: c.seconds,
      samples: evenlySpaced(c.files, samplesPerCell),
      perPrompt: c.perPrompt,
    })),
    failed: failed.map((f) => ({ key: f.key, error: f.error })),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** k items spread over the list (all of them when there are no more than k). */
function evenlySpaced<T>(items: T[], k: number): T[] {
  if (items.length <= k) return items;
  return Array.from({ length: k }, (_, i) => items[Math.floor((i * items.length) / k)]);
}
