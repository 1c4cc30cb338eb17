/**
 * The two sides of a comparison (real and fake), resolved once: stats files and reference-statistics
 * names (`diffeval stats list`, fetched into the cache on first use) are read, image
 * sources opened (so a typo fails before the network loads), features extracted through one
 * extractor shared by both sides. Statistics made under different protocols or weights are
 * refused (E_PROTOCOL_MISMATCH) unless `force`.
 */
import { DiffevalError } from "../errors.js";
import { DEFAULT_PROTOCOL, type Extractor, type ExtractorOptions } from "../features/extractor.js";
import { DEFAULT_ENCODER, parseEncoderName, type EncoderName } from "../features/encoders.js";
import { POOL3_DIM } from "../features/inception-runner.js";
import { extractSource, featureSpaceMeta, resolveStatsSource, type ResolvedSource, type SourceIdentity } from "./resolve-source.js";
import { withExtraction } from "./with-extraction.js";
import type { ImageSourceOptions } from "../io/sources.js";
import { censusRecorder, type CensusPair } from "../robustness/format-census.js";
import { VERSION } from "../version.js";

export interface SourcePairOptions extends ExtractorOptions, ImageSourceOptions {
  real: string;
  fake: string;
  /** Compare even when the two sides disagree on protocol or weights. */
  force?: boolean;
  limit?: number;
  seed?: number;
  onProgress?: (side: "real" | "fake", done: number, total: number) => void;
}

export interface SourcePair {
  real: ResolvedSource;
  fake: ResolvedSource;
  /** The feature space (features/encoders.ts). */
  encoder: EncoderName;
  protocol: string;
  weightsSha256: string;
  /** The device features were extracted on (absent when both sides are stats files). */
  device?: string;
  /** The ONNX model used (absent when both sides are stats files). */
  onnxPath?: string;
  /** File formats of each image side (robustness/format-census.ts); stats-file sides have none. */
  census: CensusPair;
}

/** What every comparison result records, so that two numbers are never compared across settings. */
export interface Provenance {
  /** The feature space; recorded only when it is not inception (older results have none). */
  encoder?: EncoderName;
  protocol: string;
  weights_sha256: string;
  /** Image counts; null for a stats file that does not record its n (pytorch-fid's). */
  n_real: number | null;
  n_fake: number | null;
  real: string;
  fake: string;
  /** Each side's kind (folder, list, zip, tar, array, features, stats, reference) and fingerprint. */
  sources: { real: SourceIdentity; fake: SourceIdentity };
  /** Wall-clock seconds, source resolution and feature extraction included. */
  seconds: number;
  version: string;
  device?: string;
  /** File formats of the image sides, present when at least one side is images. */
  census?: CensusPair;
}

export function provenance(pair: SourcePair, startedAt: number): Provenance {
  return {
    ...(pair.encoder !== "inception" ? { encoder: pair.encoder } : {}),
    protocol: pair.protocol,
    weights_sha256: pair.weightsSha256,
    n_real: pair.real.gaussian.n || null,
    n_fake: pair.fake.gaussian.n || null,
    real: pair.real.spec,
    fake: pair.fake.spec,
    sources: { real: pair.real.identity, fake: pair.fake.identity },
    seconds: (performance.now() - startedAt) / 1000,
    version: VERSION,
    ...(pair.device ? { device: pair.device } : {}),
    ...(pair.census.real || pair.census.fake ? { census: pair.census } : {}),
  };
}

/** Provenance as printed in JSON (seconds rounded to ms). */
export function provenanceJson(p: Provenance): Record<string, unknown> {
  return { ...p, seconds: Number(p.seconds.toFixed(3)) };
}

export async function resolveSourcePair(opts: SourcePairOptions): Promise<SourcePair> {
  const specs = [opts.real, opts.fake] as const;
  // Stats files and reference-statistics names (fetched into the cache on first use).
  const statsOpts = { log: opts.log, onProgress: opts.onDownloadProgress, arrayKey: opts.arrayKey, limit: opts.limit, seed: opts.seed };
  const stats = await Promise.all(specs.map((s) => resolveStatsSource(s, statsOpts)));
  const encoder = pairEncoder(opts.encoder, stats, opts.force);
  const protocol = plannedProtocol(encoder, opts.protocol, stats);
  // The census reads the bytes the extraction reads anyway: no extra I/O.
  const recorders = [censusRecorder(), censusRecorder()] as const;
  const refuse = () => {
    if (!opts.force) refuseBeforeExtracting(specs, stats, protocol, encoder);
  };
  const imageSpecs = specs.map((spec, i) => (stats[i] ? undefined : spec));
  let extracted: { real: ResolvedSource; fake: ResolvedSource; extractor?: Extractor } | undefined;
  if (imageSpecs.every((s) => s === undefined)) {
    refuse();
    extracted = { real: stats[0]!, fake: stats[1]! };
  } else {
    extracted = await withExtraction(imageSpecs, { ...opts, protocol, beforeModel: refuse }, async (images, extractor) => {
      const resolve = (i: 0 | 1, side: "real" | "fake") =>
        stats[i] ??
        extractSource(specs[i], { ...images[i]!, items: recorders[i].watch(images[i]!.items) }, extractor, {
          onProgress: (done, total) => opts.onProgress?.(side, done, total),
        });
      return { real: await resolve(0, "real"), fake: await resolve(1, "fake"), extractor };
    });
  }
  const { real, fake, extractor } = extracted;

  if (!opts.force) assertComparable(real, fake);
  const d1 = real.gaussian.mu.length;
  const d2 = fake.gaussian.mu.length;
  if (d1 !== d2) {
    throw new DiffevalError("E_FEATURE_DIM", `dimension mismatch: ${real.spec} has ${d1}-d features, ${fake.spec} has ${d2}-d`);
  }
  return {
    real,
    fake,
    encoder,
    protocol: real.meta.protocol ?? fake.meta.protocol ?? protocol ?? extractor?.protocol ?? "unknown",
    weightsSha256: String(real.meta.weights_sha256 ?? fake.meta.weights_sha256 ?? "unknown"),
    device: extractor?.device,
    onnxPath: extractor?.model.onnxPath,
    census: {
      ...(imageSpecs[0] ? { real: recorders[0].census() } : {}),
      ...(imageSpecs[1] ? { fake: recorders[1].census() } : {}),
    },
  };
}

/**
 * The preprocessing an extraction will use: for inception the --protocol, else a stats side's,
 * else clean; another encoder has its own preprocessing, known once the extractor resolves it.
 */
export function plannedProtocol(encoder: EncoderName, protocol: string | undefined, stats: readonly (ResolvedSource | undefined)[]): string | undefined {
  if (encoder !== "inception") return protocol;
  return protocol ?? stats.find((s) => s?.meta.protocol)?.meta.protocol ?? DEFAULT_PROTOCOL;
}

/**
 * The pair's feature space: --encoder when given; else, when both sides are precomputed (stats or
 * features files), the one they were made in (two dinov2 files are a dinov2 distance, fd, not an
 * Inception FID); else inception, the default for images (a dinov2 file against images without
 * --encoder is refused as a mismatch rather than guessed). A side in another space than --encoder
 * is refused.
 */
function pairEncoder(asked: EncoderName | undefined, stats: readonly (ResolvedSource | undefined)[], force = false): EncoderName {
  const known = stats.filter((s): s is ResolvedSource => s !== undefined);
  const allKnown = known.length === stats.length;
  const encoder = asked ?? (allKnown ? parseEncoderName(known[0].meta.encoder ?? DEFAULT_ENCODER) : DEFAULT_ENCODER);
  if (asked && !force) for (const side of known) assertComparable(side, { spec: `--encoder ${asked}`, meta: featureSpaceMeta(asked, undefined) });
  return encoder;
}

/** A stats file against images: refuse a protocol or dimension mismatch before the slow part. */
function refuseBeforeExtracting(
  specs: readonly string[],
  stats: (ResolvedSource | undefined)[],
  protocol: string | undefined,
  encoder: EncoderName,
): void {
  const [i, j] = stats[0] ? [0, 1] : [1, 0];
  const known = stats[i];
  if (!known || stats[j]) return;
  assertComparable(known, { spec: specs[j], meta: featureSpaceMeta(encoder, protocol) });
  const d = known.gaussian.mu.length;
  if (encoder === "inception" && d !== POOL3_DIM) {
    throw new DiffevalError("E_FEATURE_DIM", `${known.spec} holds ${d}-d statistics; ${specs[j]} would give ${POOL3_DIM}-d Inception features`);
  }
}

/** Refuses to compare statistics made with different encoders, protocols or weights (E_PROTOCOL_MISMATCH). */
export function assertComparable(a: Pick<ResolvedSource, "spec" | "meta">, b: Pick<ResolvedSource, "spec" | "meta">): void {
  // A file without an encoder predates the other encoders: inception.
  const ea = a.meta.encoder ?? DEFAULT_ENCODER;
  const eb = b.meta.encoder ?? DEFAULT_ENCODER;
  if (ea !== eb) {
    throw new DiffevalError(
      "E_PROTOCOL_MISMATCH",
      `${a.spec} was computed with encoder ${ea}, ${b.spec} with ${eb}: distances between different feature spaces mean nothing. ` +
        `Recompute one side with the same --encoder, or pass --force to compare anyway.`,
    );
  }
  for (const key of ["protocol", "weights_sha256"] as const) {
    const x = a.meta[key];
    const y = b.meta[key];
    if (x !== undefined && y !== undefined && x !== y) {
      throw new DiffevalError(
        "E_PROTOCOL_MISMATCH",
        `${a.spec} was computed with ${key} ${x}, ${b.spec} with ${y}: the FID would not be comparable to anything. ` +
          `Recompute one side with matching settings, or pass --force to compare anyway.`,
      );
    }
  }
}
