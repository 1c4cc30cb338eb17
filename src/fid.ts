/**
 * FID between two sources (folders, list files, zips or stats files), with the bookkeeping that
 * makes the number comparable: the protocol and weights it was computed under, and a refusal to
 * compare statistics made under different ones.
 */
import { DiffevalError } from "./errors.js";
import { DEFAULT_PROTOCOL, openExtractor, type Extractor, type ExtractorOptions } from "./features/extractor.js";
import { POOL3_DIM } from "./features/inception-runner.js";
import { extractSource, isStatsFile, loadStatsFile, type ResolvedSource } from "./io/resolve-source.js";
import { openImageSource, type ImageSource } from "./io/sources.js";
import { frechetDistance, frechetDistanceFromFeatures } from "./stats/frechet.js";
import { VERSION } from "./version.js";

export interface FidOptions extends ExtractorOptions {
  real: string;
  fake: string;
  /** Compare even when the two sides disagree on protocol or weights. */
  force?: boolean;
  limit?: number;
  seed?: number;
  onProgress?: (side: "real" | "fake", done: number, total: number) => void;
}

export interface FidResult {
  fid: number;
  protocol: string;
  weights_sha256: string;
  n_real: number;
  n_fake: number;
  real: string;
  fake: string;
  seconds: number;
  version: string;
  /** How the trace term was computed: from the covariances, or the n x n Gram form (n < d). */
  route: "covariance" | "gram";
  skipped: { real: number; fake: number };
  device?: string;
}

export async function computeFid(opts: FidOptions): Promise<FidResult> {
  const t0 = performance.now();
  const specs = [opts.real, opts.fake] as const;
  const stats = await Promise.all(specs.map((s) => (isStatsFile(s) ? loadStatsFile(s) : undefined)));
  const protocol = opts.protocol ?? stats.find((s) => s?.meta.protocol)?.meta.protocol ?? DEFAULT_PROTOCOL;

  // Open (and so validate) the image sources before loading the network: a typo fails in ms.
  const images: (ImageSource | undefined)[] = [];
  let extractor: Extractor | undefined;
  let real: ResolvedSource;
  let fake: ResolvedSource;
  try {
    for (const [i, spec] of specs.entries()) {
      images.push(stats[i] ? undefined : await openImageSource(spec, { limit: opts.limit, seed: opts.seed }));
    }
    if (!opts.force) refuseBeforeExtracting(specs, stats, protocol);
    if (images.some(Boolean)) extractor = await openExtractor({ ...opts, protocol });
    const resolve = (i: 0 | 1, side: "real" | "fake") =>
      stats[i] ??
      extractSource(specs[i], images[i]!, extractor!, { onProgress: (done, total) => opts.onProgress?.(side, done, total) });
    real = await resolve(0, "real");
    fake = await resolve(1, "fake");
  } finally {
    await extractor?.close();
    for (const source of images) await source?.close();
  }

  if (!opts.force) assertComparable(real, fake);
  const d1 = real.gaussian.mu.length;
  const d2 = fake.gaussian.mu.length;
  if (d1 !== d2) {
    throw new DiffevalError("E_STATS_DIM", `dimension mismatch: ${real.spec} has ${d1}-d features, ${fake.spec} has ${d2}-d`);
  }
  const useGram = real.features && fake.features && Math.min(real.features.n, fake.features.n) < d1;
  const fid = useGram ? frechetDistanceFromFeatures(real.features!, fake.features!) : frechetDistance(real.gaussian, fake.gaussian);

  return {
    fid,
    protocol: real.meta.protocol ?? fake.meta.protocol ?? protocol,
    weights_sha256: String(real.meta.weights_sha256 ?? fake.meta.weights_sha256 ?? "unknown"),
    n_real: real.gaussian.n,
    n_fake: fake.gaussian.n,
    real: opts.real,
    fake: opts.fake,
    seconds: (performance.now() - t0) / 1000,
    version: VERSION,
    route: useGram ? "gram" : "covariance",
    skipped: { real: real.skipped.length, fake: fake.skipped.length },
    device: extractor?.device,
  };
}

/** A stats file against images: refuse a protocol or dimension mismatch before the slow part. */
function refuseBeforeExtracting(specs: readonly string[], stats: (ResolvedSource | undefined)[], protocol: string): void {
  const [i, j] = stats[0] ? [0, 1] : [1, 0];
  const known = stats[i];
  if (!known || stats[j]) return;
  assertComparable(known, { spec: specs[j], meta: { protocol } });
  const d = known.gaussian.mu.length;
  if (d !== POOL3_DIM) {
    throw new DiffevalError("E_STATS_DIM", `${known.spec} holds ${d}-d statistics; ${specs[j]} would give ${POOL3_DIM}-d Inception features`);
  }
}

/** Refuses to compare statistics made under different protocols or weights (E_PROTOCOL_MISMATCH). */
export function assertComparable(a: Pick<ResolvedSource, "spec" | "meta">, b: Pick<ResolvedSource, "spec" | "meta">): void {
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
