/**
 * A source, resolved once: a stats `.npz` (ours or pytorch-fid's) becomes a Gaussian; a features
 * file (`diffeval features --out`) becomes its rows and the Gaussian fitted to them; a folder,
 * list file or zip becomes features (through the extractor) and the Gaussian fitted to them.
 * Every command works on what this returns, never on the kind of source.
 */
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { DiffevalError, isDiffevalError } from "../errors.js";
import type { ExtractedFeatures } from "../features/extract.js";
import type { Extractor } from "../features/extractor.js";
import { findReference, loadManifest, manifestPath } from "../reference/manifest.js";
import { loadReference, type LoadReferenceOptions } from "../reference/load.js";
import { ENCODER_NAMES, type EncoderName } from "../features/encoders.js";
import { POOL3_DIM } from "../features/inception-runner.js";
import { fitGaussian } from "../stats/gaussian.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { readNpzArrays, readStatsFile } from "../io/npz-file.js";
import { readFeaturesSource, type FeaturesFile } from "../io/features-file.js";
import { sha256File } from "../io/atomic.js";
import { openImageSource, subset, type ImageSource, type ImageSourceKind, type ImageSourceOptions } from "../io/sources.js";

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

/** What a source is, as results record it: the image source kinds, and the three precomputed ones. */
export type SourceKind = ImageSourceKind | "features" | "stats" | "reference";

/**
 * A source's identity in results: its kind and a fingerprint that changes when its content does.
 * Images: sha256 over the lines `<image sha256> <name>` in row order (the hashes the feature cache
 * computes anyway, so it costs nothing); a stats or features file: the file's sha256; a reference:
 * the sha256 of its statistics file as fetched.
 */
export interface SourceIdentity {
  kind: SourceKind;
  fingerprint: string;
}

export interface ResolvedSource {
  spec: string;
  kind: "stats" | "features" | "images";
  identity: SourceIdentity;
  gaussian: Gaussian;
  /** Present for image sources and features files: rows in `names` order. */
  features?: FeatureMatrix;
  logits?: FeatureMatrix;
  /** sFID's spatial features, when they were extracted. */
  spatial?: FeatureMatrix;
  names?: string[];
  skipped: { name: string; message: string }[];
  /** From the stats or features file's `meta`, or describing the extraction for image sources. */
  meta: StatsMeta;
}

/**
 * The meta keys that say which feature space a side is in: `encoder` only when it is not
 * inception (files written before other encoders have none, and mean inception), `protocol` when known.
 */
export function featureSpaceMeta(encoder: string, protocol: string | undefined): Pick<StatsMeta, "encoder" | "protocol"> {
  return { ...(encoder !== "inception" ? { encoder } : {}), ...(protocol ? { protocol } : {}) };
}

/**
 * An `.npz` that holds statistics (`mu`/`sigma`) rather than images (io/array-source.ts). ADM's
 * reference batches (`VIRTUAL_imagenet256_labeled.npz`) hold both, `arr_0` beside `mu`/`sigma`:
 * statistics by default, as guided-diffusion's evaluator reads them, and images when `--array-key`
 * names an array the file holds (`--array-key arr_0`: precision/recall against ADM's own reference
 * images). An .npz with neither `mu` nor `sigma` is an image array. Only the zip directory is read.
 */
export async function isStatsFile(spec: string, arrayKey?: string): Promise<boolean> {
  if (!/\.npz$/i.test(spec) || !existsSync(spec) || !statSync(spec).isFile()) return false;
  const { keys } = await readNpzArrays(spec, []);
  if (arrayKey !== undefined && keys.includes(arrayKey)) return false;
  return keys.includes("mu") || keys.includes("sigma");
}

/** Reads only `mu`, `sigma` and `meta` from the file (a guided-diffusion batch's `arr_0` images stay unread). */
export async function loadStatsFile(spec: string): Promise<ResolvedSource> {
  const { gaussian, meta } = await readStatsFile(spec);
  const identity: SourceIdentity = { kind: "stats", fingerprint: await sha256File(spec) };
  return { spec, kind: "stats", identity, gaussian, skipped: [], meta: (meta ?? {}) as StatsMeta };
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
  const { gaussian, meta, fetched } = await loadReference(spec, opts);
  const identity: SourceIdentity = { kind: "reference", fingerprint: fetched.sha256 };
  return { spec, kind: "stats", identity, gaussian, skipped: [], meta: meta as StatsMeta };
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

/**
 * A side that needs no extraction (a features file, a stats file or a reference name), resolved;
 * undefined for image sources. A features `.npz` is told from a stats `.npz` by its `features` key.
 */
export async function resolveStatsSource(
  spec: string,
  opts: LoadReferenceOptions & Pick<ImageSourceOptions, "arrayKey" | "limit" | "seed"> = {},
): Promise<ResolvedSource | undefined> {
  const features = await readFeaturesSource(spec);
  if (features) return featuresSide(spec, featuresSubset(features, opts), { kind: "features", fingerprint: await sha256File(spec) });
  if (await isStatsFile(spec, opts.arrayKey)) return loadStatsFile(spec);
  if (isReferenceName(spec, opts.env)) return loadReferenceSource(spec, opts);
  return undefined;
}

/** The `--limit`/`--seed` rows of a features file: the same subset the images would give. */
function featuresSubset(file: FeaturesFile, opts: Pick<ImageSourceOptions, "limit" | "seed">): FeaturesFile {
  if (opts.limit === undefined || opts.limit >= file.features.n) return file;
  const rows = subset(Array.from({ length: file.features.n }, (_, i) => i), opts);
  const { d } = file.features;
  const data = new Float32Array(rows.length * d);
  rows.forEach((r, i) => data.set(file.features.data.subarray(r * d, (r + 1) * d), i * d));
  return { ...file, features: { n: rows.length, d, data }, names: rows.map((r) => file.names[r]) };
}

/**
 * A features file as a resolved side: its rows and names as written, the Gaussian fitted to them
 * (as for images, so every metric sees the same numbers either way), and the meta that lets a
 * mismatch of encoder, protocol or weights with the other side be refused.
 */
export function featuresSide(spec: string, file: FeaturesFile, identity: SourceIdentity): ResolvedSource {
  const { features, names, meta } = file;
  const encoder = meta.encoder as EncoderName;
  if (!(ENCODER_NAMES as readonly string[]).includes(encoder)) {
    throw new DiffevalError("E_FEATURES_FORMAT", `${spec}: made with encoder '${meta.encoder.slice(0, 80)}', which diffeval does not know (${ENCODER_NAMES.join(", ")})`);
  }
  if (encoder === "inception" && features.d !== POOL3_DIM) {
    throw new DiffevalError("E_FEATURE_DIM", `${spec}: holds ${features.d}-d features, but Inception pool3 features are ${POOL3_DIM}-d; the file is damaged`);
  }
  if (features.n < 2) throw new DiffevalError("E_TOO_FEW_SAMPLES", `${spec}: ${features.n} feature row(s); a covariance needs at least 2`);
  return {
    spec,
    kind: "features",
    identity,
    gaussian: fitGaussian(features),
    features,
    names,
    skipped: [],
    meta: {
      ...featureSpaceMeta(encoder, meta.protocol),
      weights_sha256: meta.weights_sha256,
      n: features.n,
      source: typeof meta.source === "string" ? meta.source : spec,
      ...(typeof meta.tool_version === "string" ? { tool_version: meta.tool_version } : {}),
      ...(typeof meta.date === "string" ? { date: meta.date } : {}),
    },
  };
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
  return imagesSide(spec, await extractor.extract(source.items, opts.onProgress), extractor, source.kind);
}

/**
 * An extraction as a resolved side: its Gaussian fitted once (every distance reuses it), the
 * rows, and the meta a stats file of it records.
 */
export function imagesSide(
  spec: string,
  out: ExtractedFeatures,
  extractor: Pick<Extractor, "encoder" | "protocol" | "model">,
  kind: ImageSourceKind,
): ResolvedSource {
  if (out.embedding.n < 2) {
    throw new DiffevalError(
      "E_TOO_FEW_SAMPLES",
      `${spec}: ${out.embedding.n} usable image(s)${out.skipped.length ? ` (${out.skipped.length} skipped)` : ""}; a covariance needs at least 2`,
    );
  }
  return {
    spec,
    kind: "images",
    identity: { kind, fingerprint: contentFingerprint(out.names, out.contentSha256) },
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

/** sha256 over `<image sha256> <name>` lines in row order: same images, names and order, same print. */
export function contentFingerprint(names: readonly string[], contentSha256: readonly string[]): string {
  const hash = createHash("sha256");
  names.forEach((name, i) => hash.update(`${contentSha256[i]} ${name}\n`));
  return hash.digest("hex");
}
