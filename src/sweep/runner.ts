/**
 * The resumable runner: generates every planned image that the manifest does not already hold,
 * `generator.concurrency` requests at a time.
 *
 * - Each image is written to a temp file and renamed (io/atomic.ts), then appended to the
 *   manifest (fsynced): a finished image is never lost, a half-written one never seen.
 * - On abort (Ctrl-C), no new request starts; requests in flight are aborted through the signal
 *   and not recorded, so at most those images are lost, and a re-run generates only them.
 * - A failed request is tried once more here (HTTP adapters already retry with backoff), then
 *   recorded in the manifest as failed and returned, never dropped. A re-run tries it again.
 */
import path from "node:path";
import type { GeneratedImage, Generator } from "../generators/generator.js";
import { writeFileAtomic } from "../io/atomic.js";
import { openManifestWriter, readManifest, sha256Hex, verifiedDone, type ManifestDone, type ManifestFailed, type ManifestWriter } from "./manifest.js";
import type { PlannedImage, SweepPlan } from "./plan.js";

export interface RunProgress {
  /** Images in the plan. */
  total: number;
  /** Found done in the manifest at the start. */
  skipped: number;
  /** Generated and failed in this run so far. */
  generated: number;
  failed: number;
  cellsDone: number;
  cellsTotal: number;
}

export interface RunImagesOptions {
  outputDir: string;
  generator: Generator;
  signal?: AbortSignal;
  /** Attempts after the first failed one (default 1). */
  retries?: number;
  onProgress?: (p: RunProgress) => void;
}

export interface RunImagesResult {
  /** Every image done, by key (skipped and generated alike). */
  done: Map<string, ManifestDone>;
  generated: number;
  skipped: number;
  failed: ManifestFailed[];
  aborted: boolean;
}

export async function generateImages(plan: SweepPlan, opts: RunImagesOptions): Promise<RunImagesResult> {
  const done = await verifiedDone(opts.outputDir, await readManifest(opts.outputDir), plan);
  const todo = plan.images.filter((im) => !done.has(im.key));
  const progress: RunProgress = {
    total: plan.images.length,
    skipped: plan.images.length - todo.length,
    generated: 0,
    failed: 0,
    cellsDone: 0,
    cellsTotal: plan.cells.length,
  };
  const left = remainingPerCell(todo, plan);
  progress.cellsDone = [...left.values()].filter((n) => n === 0).length;
  const failed: ManifestFailed[] = [];
  if (todo.length === 0) return { done, generated: 0, skipped: progress.skipped, failed, aborted: false };

  const writer = await openManifestWriter(opts.outputDir);
  const settle = (im: PlannedImage) => {
    const n = left.get(im.cell.slug)! - 1;
    left.set(im.cell.slug, n);
    if (n === 0) progress.cellsDone++;
    opts.onProgress?.({ ...progress });
  };
  let next = 0;
  const worker = async () => {
    while (!opts.signal?.aborted && next < todo.length) {
      const im = todo[next++];
      const outcome = await generateOne(im, opts, writer);
      if (outcome === "aborted") return;
      if (outcome.status === "done") {
        done.set(im.key, outcome);
        progress.generated++;
      } else {
        failed.push(outcome);
        progress.failed++;
      }
      settle(im);
    }
  };
  try {
    opts.onProgress?.({ ...progress });
    const workers = Math.max(1, Math.min(opts.generator.concurrency || 1, todo.length));
    await Promise.all(Array.from({ length: workers }, worker));
  } finally {
    await writer.close();
  }
  return { done, generated: progress.generated, skipped: progress.skipped, failed, aborted: opts.signal?.aborted === true };
}

function remainingPerCell(todo: PlannedImage[], plan: SweepPlan): Map<string, number> {
  const left = new Map(plan.cells.map((c) => [c.slug, 0]));
  for (const im of todo) left.set(im.cell.slug, left.get(im.cell.slug)! + 1);
  return left;
}

/** One image: generated (with one retry), written, recorded; "aborted" when the run was stopped. */
async function generateOne(
  im: PlannedImage,
  opts: RunImagesOptions,
  writer: ManifestWriter,
): Promise<ManifestDone | ManifestFailed | "aborted"> {
  const attempts = 1 + (opts.retries ?? 1);
  const common = { key: im.key, cell: im.cell.slug, prompt_index: im.promptIndex, seed: im.seed, params: im.cell.params, prompt: im.request.prompt };
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const t0 = performance.now();
    let image: GeneratedImage;
    try {
      image = await opts.generator.generate(im.request, opts.signal);
    } catch (e) {
      // An error caused by the abort is the abort, not a failure of this image.
      if (opts.signal?.aborted) return "aborted";
      lastError = e;
      continue;
    }
    const file = `images/${im.key}.${extensionOf(image.format)}`;
    await writeFileAtomic(path.join(opts.outputDir, file), image.bytes);
    const entry: ManifestDone = {
      status: "done",
      ...common,
      file,
      sha256: sha256Hex(image.bytes),
      used: image.used as Record<string, unknown>,
      ...(isCount(image.modelEvaluations) ? { model_evaluations: image.modelEvaluations } : {}),
      seconds: Number(((performance.now() - t0) / 1000).toFixed(3)),
      time: new Date().toISOString(),
    };
    await writer.append(entry);
    return entry;
  }
  const entry: ManifestFailed = { status: "failed", ...common, error: errorText(lastError), attempts, time: new Date().toISOString() };
  await writer.append(entry);
  return entry;
}

/** A generator's evaluation count is recorded only when it is one (a non-negative integer). */
function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0;
}

function extensionOf(format: string): string {
  const ext = format.toLowerCase().replace(/^\./, "");
  return /^[a-z0-9]{1,5}$/.test(ext) ? ext : "png";
}

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as { code?: string }).code ? `${(e as { code?: string }).code}: ${e.message}` : e.message;
  return String(e);
}
