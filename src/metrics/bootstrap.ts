/**
 * Bootstrap confidence intervals (Efron & Tibshirani 1993, percentile method): resample the images
 * of both sides with replacement, recompute each metric, and take the 2.5th and 97.5th
 * percentiles of the replicates. Seeded (random.ts), so a rerun gives the same interval.
 */
import type { FeatureMatrix } from "../types.js";
import { selectRows } from "./diversity.js";
import { createRng, randomInt, type Rng } from "../random/rng.js";

export interface BootstrapInterval {
  /** Standard deviation of the replicates (ddof = 1). */
  std: number;
  /** Percentile 95% interval [2.5%, 97.5%] of the replicates. */
  ci95: [number, number];
  replicates: number;
}

/** A metric of the two feature sets that returns named numbers (e.g. precision and recall). */
export type PairStatistic = (real: FeatureMatrix, fake: FeatureMatrix) => Record<string, number>;

export interface BootstrapOptions {
  /** Number of bootstrap replicates. */
  replicates: number;
  seed?: number;
  onReplicate?: (done: number, total: number) => void;
}

/** Bootstrap intervals for every number `statistic` returns. */
export function bootstrapIntervals(
  real: FeatureMatrix,
  fake: FeatureMatrix,
  statistic: PairStatistic,
  opts: BootstrapOptions,
): Record<string, BootstrapInterval> {
  const rng = createRng(opts.seed ?? 0);
  const samples: Record<string, number[]> = {};
  for (let b = 0; b < opts.replicates; b++) {
    const values = statistic(resample(real, rng), resample(fake, rng));
    for (const [key, v] of Object.entries(values)) (samples[key] ??= []).push(v);
    opts.onReplicate?.(b + 1, opts.replicates);
  }
  return Object.fromEntries(Object.entries(samples).map(([key, v]) => [key, interval(v)]));
}

/** n rows drawn with replacement. */
export function resample(x: FeatureMatrix, rng: Rng): FeatureMatrix {
  const rows = Array.from({ length: x.n }, () => randomInt(rng, x.n));
  return selectRows(x, rows);
}

export function interval(values: number[]): BootstrapInterval {
  const sorted = [...values].sort((a, b) => a - b);
  return { std: sampleStd(values), ci95: [percentile(sorted, 2.5), percentile(sorted, 97.5)], replicates: values.length };
}

/** numpy's default percentile (linear interpolation between closest ranks) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function sampleStd(v: readonly number[]): number {
  if (v.length < 2) return 0;
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - m) * (b - m), 0) / (v.length - 1));
}
