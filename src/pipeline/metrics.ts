/**
 * `diffeval metrics`: many metrics over the same two sources. Features (and logits, and sFID's
 * spatial features when asked for) are extracted once per source and shared by every metric; a
 * metric that needs per-image features is skipped, with a reason, for a stats-file side.
 */
import { DiffevalError } from "../errors.js";
import { decodeImage } from "../io/decode.js";
import { openImageSource } from "../io/sources.js";
import { cmmd } from "../metrics/cmmd.js";
import { bootstrapIntervals, type BootstrapInterval } from "../metrics/bootstrap.js";
import { byGroup, meanPairwiseDistance, selectRows } from "../metrics/diversity.js";
import { fidInfinity, type FidInfinityResult } from "../metrics/fid-infinity.js";
import { gaussianity, type GaussianityResult } from "../metrics/gaussianity.js";
import { inceptionScore } from "../metrics/inception-score.js";
import { kid } from "../metrics/kid.js";
import { msSsimDiversityLazy } from "../metrics/ms-ssim.js";
import { prdc } from "../metrics/prdc.js";
import { vendiScore } from "../metrics/vendi.js";
import { readOnnxInitializer } from "../models/onnx-metadata.js";
import type { ResolvedSource } from "./resolve-source.js";
import { provenance, resolveSourcePair, type Provenance, type SourcePair, type SourcePairOptions } from "./source-pair.js";
import { frechetDistanceDetails, frechetDistanceFromFeatures } from "../stats/frechet.js";
import { gemm } from "../stats/gemm.js";
import type { FeatureMatrix } from "../types.js";

export const METRIC_NAMES = ["fid", "kid", "is", "pr", "dc", "sfid", "vendi", "pairwise", "msssim", "gauss", "fidinf", "fd", "cmmd"] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export const DEFAULT_METRICS: MetricName[] = ["fid", "kid", "is", "pr", "dc"];
/** The default for an encoder other than inception (no IS or sFID there; FD in place of FID). */
export const DEFAULT_ENCODER_METRICS: MetricName[] = ["fd", "kid", "pr", "dc"];
/** Metrics that only exist in the Inception feature space. */
const INCEPTION_ONLY: readonly MetricName[] = ["fid", "is", "sfid", "fidinf"];

/** What a metric key holds in the results: a number, or an estimate with its spread. */
export type Estimate = number | { mean: number; std: number; ci95?: [number, number] };

export interface MetricsOptions extends SourcePairOptions {
  metrics: MetricName[];
  /** Bootstrap replicates for FID, KID, precision and recall (0: none). */
  bootstrap?: number;
  /** Seed of every random draw (KID subsets, bootstrap, pairs, projections). */
  metricSeed?: number;
  /** k for precision/recall (default 3) and density/coverage (default 5). */
  prK?: number;
  dcK?: number;
  kidSubsets?: number;
  kidSubsetSize?: number;
  msssimPairs?: number;
  /** Group (e.g. prompt) of each fake image, by image name: diversity metrics are also reported per group. */
  groups?: Map<string, string>;
  warn?: (line: string) => void;
}

export interface MetricsResult extends Provenance {
  metrics: Record<string, Estimate | Record<string, unknown>>;
  /** Metrics that could not be computed, and why. */
  skipped: Record<string, string>;
}

export function parseMetricList(list: string): MetricName[] {
  const names = list.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const n of names) {
    if (!(METRIC_NAMES as readonly string[]).includes(n)) {
      throw new DiffevalError("E_USAGE", `unknown metric '${n}': choose from ${METRIC_NAMES.join(", ")}`);
    }
  }
  if (names.length === 0) throw new DiffevalError("E_USAGE", "--metrics is empty");
  return [...new Set(names)] as MetricName[];
}

export async function computeMetrics(opts: MetricsOptions): Promise<MetricsResult> {
  const t0 = performance.now();
  const inception = (opts.encoder ?? "inception") === "inception";
  const pair = await resolveSourcePair({ ...opts, spatial: inception && (opts.metrics.includes("sfid") || opts.spatial) });
  const { metrics, skipped } = await metricsOfPair(pair, opts);
  return { metrics, skipped, ...provenance(pair, t0) };
}

/** The settings of the metrics themselves, apart from how the two sides were resolved. */
export type MetricSettings = Pick<
  MetricsOptions,
  "metrics" | "bootstrap" | "metricSeed" | "prK" | "dcK" | "kidSubsets" | "kidSubsetSize" | "msssimPairs" | "groups" | "warn" | "limit" | "seed"
> & {
  /** The model's fc.weight (the Inception Score's logits), when the caller has already read it. */
  fcWeight?: Float32Array;
};

/**
 * The metrics of two already-resolved sides. Split from computeMetrics so that a sweep can
 * extract its reference once and compare every cell with it.
 */
export async function metricsOfPair(
  pair: Pick<SourcePair, "real" | "fake" | "onnxPath"> & Partial<Pick<SourcePair, "encoder">>,
  opts: MetricSettings,
): Promise<Pick<MetricsResult, "metrics" | "skipped">> {
  const want = new Set(opts.metrics);
  const encoder = pair.encoder ?? "inception";
  const seed = opts.metricSeed ?? 0;
  const { real, fake } = pair;
  const out: MetricsResult["metrics"] = {};
  const skipped: Record<string, string> = {};
  const needFeatures = (metric: string, ...sides: ResolvedSource[]): boolean => {
    const missing = sides.filter((s) => !s.features);
    if (missing.length === 0) return true;
    skipped[metric] = `needs per-image features; ${missing.map((s) => s.spec).join(" and ")} ${missing.length > 1 ? "are" : "is a"} stats file${missing.length > 1 ? "s" : ""}`;
    return false;
  };

  if (encoder !== "inception") {
    for (const m of INCEPTION_ONLY) {
      if (!want.has(m)) continue;
      want.delete(m);
      skipped[m] = `exists only for the inception encoder, not ${encoder}${m === "fid" ? "; fd is the Frechet distance in this encoder's space" : ""}`;
    }
  }
  const frechet = () =>
    real.features && fake.features
      ? frechetDistanceFromFeatures(real.features, fake.features)
      : frechetDistanceDetails(real.gaussian, fake.gaussian).value;
  if (want.has("fid")) out.fid = frechet();
  // The Frechet distance in the encoder's space (FD-DINOv2 with dinov2; equals fid for inception).
  if (want.has("fd")) out.fd = typeof out.fid === "number" ? out.fid : frechet();
  // CMMD (Jayasumana et al. 2024): cmmd() L2-normalises the embeddings itself.
  if (want.has("cmmd") && needFeatures("cmmd", real, fake)) out.cmmd = cmmd(real.features!, fake.features!);
  if (want.has("kid") && needFeatures("kid", real, fake)) {
    const r = kid(real.features!, fake.features!, { subsets: opts.kidSubsets, subsetSize: opts.kidSubsetSize, seed });
    out.kid = { mean: r.mean, std: r.std };
  }
  if (want.has("is") && needFeatures("is", fake)) {
    const fc = opts.fcWeight ?? (await readOnnxInitializer(pair.onnxPath!, "fc.weight")).data;
    const r = inceptionScore(unbiasedLogits(fake.features!, fc), { splits: 10 });
    out.is = { mean: r.mean, std: r.std };
  }
  if (want.has("pr") && needFeatures("pr", real, fake)) {
    const r = prdc(real.features!, fake.features!, { k: opts.prK ?? 3 });
    out.precision = r.precision;
    out.recall = r.recall;
  }
  if (want.has("dc") && needFeatures("dc", real, fake)) {
    const r = prdc(real.features!, fake.features!, { k: opts.dcK ?? 5 });
    out.density = r.density;
    out.coverage = r.coverage;
  }
  if (want.has("sfid") && needFeatures("sfid", real, fake)) {
    out.sfid = frechetDistanceFromFeatures(real.spatial!, fake.spatial!);
  }
  for (const [metric, fn] of [
    ["vendi", (x: FeatureMatrix) => vendiScore(x).score],
    ["pairwise", meanPairwiseDistance],
  ] as const) {
    if (!want.has(metric)) continue;
    const key = metric === "pairwise" ? "mean_pairwise_distance" : metric;
    for (const side of [fake, real]) {
      if (!side.features) continue;
      out[side === fake ? key : `${key}_real`] = fn(side.features);
    }
    if (!fake.features) skipped[metric] = `needs per-image features; ${fake.spec} is a stats file`;
    const groups = fake.features && groupLabels(fake, opts.groups);
    if (groups) out[`${key}_by_group`] = { ...byGroup(groups, (rows) => fn(selectRows(fake.features!, rows))) };
  }
  if (want.has("msssim")) {
    if (fake.kind !== "images") skipped.msssim = `needs images; ${fake.spec} is a stats file`;
    else {
      const r = await msSsimOfSource(fake, opts, seed);
      out.msssim = { mean: r.mean, std: r.std };
    }
  }
  if (want.has("gauss")) {
    const g: Record<string, GaussianityResult> = {};
    for (const [name, side] of [["real", real], ["fake", fake]] as const) {
      if (side.features) g[name] = gaussianity(side.features, { seed });
    }
    if (Object.keys(g).length) out.gauss = { ...g };
    else skipped.gauss = "needs per-image features; both sides are stats files";
  }
  if (want.has("fidinf") && needFeatures("fidinf", fake)) {
    const r: FidInfinityResult = fidInfinity(real.gaussian, fake.features!, { seed });
    out.fid_infinity = { ...r };
  }
  if ((opts.bootstrap ?? 0) > 0) addBootstrap(out, real, fake, want, opts, seed, skipped);

  for (const [metric, why] of Object.entries(skipped)) opts.warn?.(`warning: ${metric} skipped: ${why}`);
  return { metrics: out, skipped };
}

/**
 * torch-fidelity's Inception Score input: pool3 @ fc.weight^T, all 1008 classes, without the fc
 * bias ("logits_unbiased"). Computed in float64.
 */
export function unbiasedLogits(pool3: FeatureMatrix, fcWeight: Float32Array): FeatureMatrix {
  const classes = fcWeight.length / pool3.d;
  const y = gemm(
    { rows: pool3.n, cols: pool3.d, data: Float64Array.from(pool3.data) },
    { rows: classes, cols: pool3.d, data: Float64Array.from(fcWeight) },
    { transB: true },
  );
  return { n: pool3.n, d: classes, data: Float32Array.from(y.data) };
}

/** Adds bootstrap std and 95% intervals to FID, KID, precision and recall. */
function addBootstrap(
  out: MetricsResult["metrics"],
  real: ResolvedSource,
  fake: ResolvedSource,
  want: Set<MetricName>,
  opts: MetricSettings,
  seed: number,
  skipped: Record<string, string>,
): void {
  if (!real.features || !fake.features) {
    skipped.bootstrap = "needs per-image features on both sides";
    return;
  }
  const intervals = bootstrapIntervals(
    real.features,
    fake.features,
    (r, f) => {
      const values: Record<string, number> = {};
      if (want.has("fid")) values.fid = frechetDistanceFromFeatures(r, f);
      if (want.has("kid")) values.kid = kid(r, f, { subsets: opts.kidSubsets, subsetSize: opts.kidSubsetSize, seed }).mean;
      if (want.has("pr")) {
        const pr = prdc(r, f, { k: opts.prK ?? 3 });
        values.precision = pr.precision;
        values.recall = pr.recall;
      }
      return values;
    },
    { replicates: opts.bootstrap!, seed },
  );
  for (const [key, iv] of Object.entries(intervals) as [string, BootstrapInterval][]) {
    const point = out[key];
    const mean = typeof point === "number" ? point : (point as { mean: number }).mean;
    out[key] = { mean, std: iv.std, ci95: iv.ci95 };
  }
}

function groupLabels(side: ResolvedSource, groups: Map<string, string> | undefined): string[] | undefined {
  if (!groups || !side.names) return undefined;
  return side.names.map((name) => {
    const g = groups.get(name);
    if (g === undefined) throw new DiffevalError("E_GROUPS", `the groups file names no group for image '${name}'`);
    return g;
  });
}

/** MS-SSIM diversity of an image source: the pairs' images are decoded on demand. */
async function msSsimOfSource(side: ResolvedSource, opts: MetricSettings, seed: number) {
  const source = await openImageSource(side.spec, { limit: opts.limit, seed: opts.seed });
  try {
    const byName = new Map(source.items.map((it) => [it.name, it]));
    const items = side.names!.map((n) => byName.get(n)!);
    return await msSsimDiversityLazy(items.length, async (i) => decodeImage(await items[i].read(), items[i].location), {
      pairs: opts.msssimPairs ?? 100,
      seed,
    });
  } finally {
    await source.close();
  }
}
