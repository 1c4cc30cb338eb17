/**
 * A source, resolved once: a stats `.npz` (ours or pytorch-fid's) becomes a Gaussian; a folder,
 * list file or zip becomes features (through the extractor) and the Gaussian fitted to them.
 * Every command works on what this returns, never on the kind of source.
 */
import { existsSync, statSync } from "node:fs";
import { DiffevalError, isDiffevalError } from "../errors.js";
import type { ExtractedFeatures } from "../features/extract.js";
import type { Extractor } from "../features/extractor.js";
import { findReference, loadManifest, manifestPath } from "../reference/manifest.js";
import { loadReference, type LoadReferenceOptions } from "../reference/load.js";
import { fitGaussian } from "../stats/gaussian.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { readStatsFile } from "../io/npz-file.js";
import { openImageSource, type ImageSource, type ImageSourceOptions } from "../io/sources.js";

/** What a stats file written by `diffeval stats` says about how it was made. */
export interface StatsMeta {
  /** The feature space (features/encoders.ts); absent means inception (older files). */
  encoder?: string;
  protocol?: string;
  weights_sha256?: string;
  n?: number;
  source?: string;
  tool_version?: string;
  date?: string;
  [key: string]: unknown;
}

export interface ResolvedSource {
  spec: string;
  kind: "stats" | "images";
  gaussian: Gaussian;
  /** Present for image sources: rows in `names` order. */
  features?: FeatureMatrix;
  logits?: FeatureMatrix;
  /** sFID's spatial features, when they were extracted. */
  spatial?: FeatureMatrix;
  names?: string[];
  skipped: { name: string; message: string }[];
  /** From the stats file's `meta`, or describing the extraction for image sources. */
  meta: StatsMeta;
}

/**
 * The meta keys that say which feature space a side is in: `encoder` only when it is not
 * inception (files written before other encoders have none, and mean inception), `protocol` when known.
 */
export function featureSpaceMeta(encoder: string, protocol: string | undefined): Pick<StatsMeta, "encoder" | "protocol"> {
  return { ...(encoder !== "inception" ? { encoder } : {}), ...(protocol ? { protocol } : {}) };
}

export function isStatsFile(spec: string): boolean {
  return /\.npz$/i.test(spec) && existsSync(spec) && statSync(spec).isFile();
}

/** Reads only `mu`, `sigma` and `meta` from the file (a guided-diffusion batch's `arr_0` images stay unread). */
export async function loadStatsFile(spec: string): Promise<ResolvedSource> {
  const { gaussian, meta } = await readStatsFile(spec);
  return { spec, kind: "stats", gaussian, skipped: [], meta: (meta ?? {}) as StatsMeta };
}

/**
 * A name from the reference-statistics manifest (`diffeval stats list`). An existing path always
 * wins, so a folder that happens to share a name is still read as images.
 */
export function isReferenceName(spec: string, env: Record<string, string | undefined> = process.env): boolean {
  return !existsSync(spec) && findReference(loadManifest(manifestPath(env)), spec) !== undefined;
}

/** The cached (fetched on demand) statistics of a manifest entry, with the entry's protocol as meta. */
export async function loadReferenceSource(spec: string, opts: LoadReferenceOptions = {}): Promise<ResolvedSource> {
  const { gaussian, meta } = await loadReference(spec, opts);
  return { spec, kind: "stats", gaussian, skipped: [], meta: meta as StatsMeta };
}

/** openImageSource, saying when a missing source is not a reference name either (a typo in a name). */
export async function openImageSide(spec: string, opts: ImageSourceOptions = {}): Promise<ImageSource> {
  try {
    return await openImageSource(spec, opts);
  } catch (e) {
    if (!isDiffevalError(e, "E_SOURCE") || existsSync(spec) || /[\\/]/.test(spec)) throw e;
    throw new DiffevalError("E_SOURCE", `${e.message}, nor a reference statistics name ('diffeval stats list' shows them)`, { cause: e });
  }
}

/** A side that is statistics (a stats file or a reference name), resolved; undefined for image sources. */
export async function resolveStatsSource(spec: string, opts: LoadReferenceOptions = {}): Promise<ResolvedSource | undefined> {
  if (isStatsFile(spec)) return loadStatsFile(spec);
  if (isReferenceName(spec, opts.env)) return loadReferenceSource(spec, opts);
  return undefined;
}

export interface ExtractSourceOptions {
  onProgress?: (done: number, total: number) => void;
}

/** Features and their Gaussian for an opened image source (see `openImageSource`). */
export async function extractSource(
  spec: string,
  source: ImageSource,
  extractor: Extractor,
  opts: ExtractSourceOptions = {},
): Promise<ResolvedSource> {
  return imagesSide(spec, await extractor.extract(source.items, opts.onProgress), extractor);
}

/**
 * An extraction as a resolved side: its Gaussian fitted once (every distance reuses it), the
 * rows, and the meta a stats file of it records.
 */
export function imagesSide(spec: string, out: ExtractedFeatures, extractor: Pick<Extractor, "encoder" | "protocol" | "model">): ResolvedSource {
  if (out.embedding.n < 2) {
    throw new DiffevalError(
      "E_TOO_FEW_SAMPLES",
      `${spec}: ${out.embedding.n} usable image(s)${out.skipped.length ? ` (${out.skipped.length} skipped)` : ""}; a covariance needs at least 2`,
    );
  }
  return {
    spec,
    kind: "images",
    gaussian: fitGaussian(out.embedding),
    features: out.embedding,
    logits: out.logits,
    spatial: out.spatial,
    names: out.names,
    skipped: out.skipped,
    meta: {
      ...featureSpaceMeta(extractor.encoder, extractor.protocol),
      weights_sha256: extractor.model.weightsSha256,
      n: out.embedding.n,
      source: spec,
    },
  };
}
