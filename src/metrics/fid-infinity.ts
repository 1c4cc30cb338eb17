/**
 * FID-infinity (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find
 * them", CVPR 2020): FID is biased upwards at finite N, and the bias is linear in 1/N. Compute FID
 * on random subsets of the generated set at several sizes N, fit FID = a + b / N by least squares,
 * and report a, the value at 1/N = 0. The paper uses 15 sizes from 5,000 to 50,000; with fewer
 * images we use 15 sizes evenly spaced from n/5 (at least 2) to n.
 */
import { DiffevalError } from "../errors.js";
import { frechetDistance } from "../stats/frechet.js";
import { fitGaussian } from "../stats/gaussian.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { selectRows } from "./diversity.js";
import { createRng, sampleWithoutReplacement } from "../random/rng.js";

export interface FidInfinityResult {
  /** The extrapolated FID at 1/N = 0. */
  value: number;
  /** Slope b of FID = a + b / N. */
  slope: number;
  points: { n: number; fid: number }[];
}

export interface FidInfinityOptions {
  sizes?: number[];
  seed?: number;
}

export function fidInfinity(real: Gaussian, fake: FeatureMatrix, opts: FidInfinityOptions = {}): FidInfinityResult {
  const sizes = opts.sizes ?? defaultSizes(fake.n);
  if (sizes.length < 2 || new Set(sizes).size < 2) {
    throw new DiffevalError("E_TOO_FEW_SAMPLES", `FID-infinity needs at least 2 distinct subset sizes; ${fake.n} images give ${sizes.join(", ")}`);
  }
  const rng = createRng(opts.seed ?? 0);
  const points = sizes.map((n) => {
    const subset = selectRows(fake, sampleWithoutReplacement(rng, fake.n, n));
    return { n, fid: frechetDistance(real, fitGaussian(subset)) };
  });
  const { intercept, slope } = leastSquaresLine(
    points.map((p) => 1 / p.n),
    points.map((p) => p.fid),
  );
  return { value: intercept, slope, points };
}

export function defaultSizes(n: number, count = 15): number[] {
  const lo = n >= 25_000 ? 5_000 : Math.max(2, Math.floor(n / 5));
  const sizes = Array.from({ length: count }, (_, i) => Math.round(lo + ((n - lo) * i) / (count - 1)));
  return [...new Set(sizes)];
}

/** Ordinary least squares y = intercept + slope x. */
export function leastSquaresLine(x: readonly number[], y: readonly number[]): { intercept: number; slope: number } {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope };
}
