/**
 * Image items -> Inception features, in source order.
 *
 * The pipeline keeps a window of images being read, hashed and prepared (decode + protocol resize,
 * on worker threads) while the previous batch runs through the network, so decoding overlaps with
 * inference. Each image's features go into the content-addressed cache as soon as its batch is done:
 * an interrupted run loses at most one batch, and a rerun over the same images does no inference.
 */
import { createHash } from "node:crypto";
import { DiffevalError, isDiffevalError } from "../errors.js";
import type { ImageItem } from "../io/sources.js";
import type { FeatureMatrix } from "../types.js";
import type { CachedFeatures, FeatureCache } from "./feature-cache.js";
import { INPUT_SIZE, OUTPUT_DIMS } from "./inception-runner.js";
import type { ImagePreparer } from "./prepare-pool.js";

/** Runs a batch (n x 3 x size x size, NCHW) through a network: row-major n x dim outputs by name. */
export type FeatureRunner = (images: Float32Array, n: number) => Promise<Partial<Record<string, Float32Array>>>;

export interface ExtractOptions {
  run: FeatureRunner;
  preparer: ImagePreparer;
  /** The model outputs to collect (default pool3 and logits); the cache must hold the same. */
  outputs?: string[];
  /** Per-image widths of the outputs (default Inception's OUTPUT_DIMS). */
  dims?: Record<string, number>;
  /** The output returned as `embedding` (the features every metric uses; default "pool3"). */
  primary?: string;
  /** Side of the square network input (default Inception's 299). */
  inputSize?: number;
  batchSize?: number;
  cache?: FeatureCache;
  /** Turn undecodable images into warnings (counted in `skipped`) instead of an error. */
  skipBad?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** An image left out with skipBad: its name in the source and the decode error naming it. */
export interface SkippedImage {
  name: string;
  message: string;
}

export interface ExtractedFeatures {
  /** Names of the images that have a row, in row order. */
  names: string[];
  /** sha256 (hex) of each of those images' bytes, in row order: the source's fingerprint is made of them. */
  contentSha256: string[];
  /** The main features every metric uses: Inception's pool3, or another encoder's embedding (ExtractOptions.primary). */
  embedding: FeatureMatrix;
  /** Inception's logits (0 columns for an encoder without them). */
  logits: FeatureMatrix;
  /** sFID's spatial features, when the model has them and they were asked for. */
  spatial?: FeatureMatrix;
  /** Undecodable images left out (skipBad), in source order. */
  skipped: SkippedImage[];
  /** Images that went through the network in this call (the rest came from the cache). */
  inferred: number;
}

type Prepared =
  | { kind: "cached"; features: CachedFeatures; sha: string }
  | { kind: "tensor"; tensor: Float32Array; sha: string }
  | { kind: "bad"; message: string };

export async function extractFeatures(items: ImageItem[], opts: ExtractOptions): Promise<ExtractedFeatures> {
  const batchSize = Math.max(1, opts.batchSize ?? 16);
  const outputs = opts.outputs ?? ["pool3", "logits"];
  const dims: Record<string, number> = opts.dims ?? OUTPUT_DIMS;
  const primary = opts.primary ?? "pool3";
  const IMAGE_SIZE = 3 * (opts.inputSize ?? INPUT_SIZE) ** 2;
  const total = items.length;
  const rows: Record<string, Float32Array> = Object.fromEntries(outputs.map((o) => [o, new Float32Array(total * dims[o])]));
  const names: string[] = [];
  const shas: string[] = [];
  const skipped: ExtractedFeatures["skipped"] = [];
  let inferred = 0;
  let done = 0;

  const store = (row: number, features: CachedFeatures) => {
    for (const o of outputs) rows[o].set(features[o], row * dims[o]);
  };

  // Rows waiting for the current batch's inference: their row index, content hash and location.
  let batch: { row: number; sha: string; location: string }[] = [];
  const batchInput = new Float32Array(batchSize * IMAGE_SIZE);

  const flush = async () => {
    if (batch.length === 0) return;
    const n = batch.length;
    const out = await opts.run(batchInput.subarray(0, n * IMAGE_SIZE), n);
    for (let i = 0; i < n; i++) {
      const features: CachedFeatures = {};
      for (const o of outputs) {
        const dim = dims[o];
        const all = out[o];
        if (!all) throw new DiffevalError("E_MODEL_OUTPUTS", `the model has no '${o}' output`);
        features[o] = all.slice(i * dim, (i + 1) * dim);
      }
      assertFinite(features[primary], batch[i].location);
      store(batch[i].row, features);
      await opts.cache?.put(batch[i].sha, features);
    }
    inferred += n;
    done += n;
    opts.onProgress?.(done, total);
    batch = [];
  };

  const window = Math.max(2 * batchSize, 4 * Math.max(1, opts.preparer.threads));
  const inFlight: Promise<Prepared>[] = [];
  let next = 0;
  const topUp = () => {
    while (next < total && inFlight.length < window) {
      const p = prepare(items[next++], opts);
      p.catch(() => {}); // awaited in order below; this only stops an early rejection counting as unhandled
      inFlight.push(p);
    }
  };

  for (let i = 0; i < total; i++) {
    topUp();
    const item = items[i];
    const prepared = await inFlight.shift()!;
    if (prepared.kind === "bad") {
      skipped.push({ name: item.name, message: prepared.message });
      done++;
      continue;
    }
    const row = names.length;
    names.push(item.name);
    shas.push(prepared.sha);
    if (prepared.kind === "cached") {
      store(row, prepared.features);
      done++;
      if (done % batchSize === 0) opts.onProgress?.(done, total);
      continue;
    }
    batchInput.set(prepared.tensor, batch.length * IMAGE_SIZE);
    batch.push({ row, sha: prepared.sha, location: item.location });
    if (batch.length === batchSize) {
      topUp(); // keep the workers busy while the network runs
      await flush();
    }
  }
  await flush();
  opts.onProgress?.(done, total);

  const n = names.length;
  const matrix = (o: string): FeatureMatrix => ({ n, d: dims[o], data: rows[o].slice(0, n * dims[o]) });
  return {
    names,
    contentSha256: shas,
    embedding: matrix(primary),
    logits: outputs.includes("logits") ? matrix("logits") : { n, d: 0, data: new Float32Array(0) },
    ...(outputs.includes("spatial") ? { spatial: matrix("spatial") } : {}),
    skipped,
    inferred,
  };
}

async function prepare(item: ImageItem, opts: ExtractOptions): Promise<Prepared> {
  let bytes: Uint8Array;
  try {
    bytes = await item.read();
  } catch (e) {
    if (isDiffevalError(e)) throw e;
    throw new DiffevalError("E_SOURCE", `${item.location}: cannot read: ${(e as Error).message}`);
  }
  const sha = createHash("sha256").update(bytes).digest("hex");
  const cached = await opts.cache?.get(sha);
  if (cached) return { kind: "cached", features: cached, sha };
  try {
    return { kind: "tensor", tensor: await opts.preparer.prepare(bytes, item.location), sha };
  } catch (e) {
    if (opts.skipBad && isDiffevalError(e, "E_IMAGE_DECODE")) return { kind: "bad", message: e.message };
    throw e;
  }
}

function assertFinite(row: Float32Array, location: string): void {
  for (let j = 0; j < row.length; j++) {
    if (!Number.isFinite(row[j])) {
      throw new DiffevalError(
        "E_NONFINITE",
        `${location}: the network produced a non-finite feature (${row[j]} at dimension ${j}); the weights file may be corrupt, or the GPU path broken: retry with --device cpu`,
      );
    }
  }
}
