import { describe, expect, it } from "vitest";
import { bootstrapIntervals, percentile } from "../../src/metrics/bootstrap.js";
import { defaultSizes, fidInfinity, leastSquaresLine } from "../../src/metrics/fid-infinity.js";
import { createRng, fillNormal } from "../../src/random/rng.js";
import { frechetDistanceFromFeatures } from "../../src/stats/frechet.js";
import { fitGaussian } from "../../src/stats/gaussian.js";
import type { FeatureMatrix } from "../../src/types.js";

function gaussianFeatures(n: number, d: number, seed: number, shift = 0): FeatureMatrix {
  const data = fillNormal(createRng(seed), new Float32Array(n * d));
  for (let i = 0; i < n * d; i += d) data[i] += shift;
  return { n, d, data };
}

const fid = (r: FeatureMatrix, f: FeatureMatrix) => ({ fid: frechetDistanceFromFeatures(r, f) });

describe("bootstrap intervals", () => {
  it("contain the point estimate and narrow as n grows (seeded)", () => {
    const width = (n: number) => {
      const real = gaussianFeatures(n, 8, 1);
      const fake = gaussianFeatures(n, 8, 2, 1.5);
      const point = fid(real, fake).fid;
      const iv = bootstrapIntervals(real, fake, fid, { replicates: 60, seed: 7 }).fid;
      expect(iv.ci95[0]).toBeLessThanOrEqual(point);
      expect(iv.ci95[1]).toBeGreaterThanOrEqual(point);
      return iv.ci95[1] - iv.ci95[0];
    };
    const small = width(100);
    const large = width(1600);
    expect(large).toBeLessThan(small / 2);
  });

  it("are reproducible with the same seed", () => {
    const real = gaussianFeatures(50, 4, 3);
    const fake = gaussianFeatures(50, 4, 4);
    const a = bootstrapIntervals(real, fake, fid, { replicates: 10, seed: 5 });
    expect(bootstrapIntervals(real, fake, fid, { replicates: 10, seed: 5 })).toEqual(a);
    expect(bootstrapIntervals(real, fake, fid, { replicates: 10, seed: 6 }).fid.ci95).not.toEqual(a.fid.ci95);
  });

  it("percentile interpolates linearly between ranks like numpy", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([0, 10], 2.5)).toBeCloseTo(0.25, 12);
    expect(percentile([5], 97.5)).toBe(5);
  });
});

describe("FID-infinity", () => {
  it("recovers intercept and slope of an exact line in 1/N", () => {
    const x = [1 / 10, 1 / 20, 1 / 40];
    const { intercept, slope } = leastSquaresLine(x, x.map((v) => 3 + 50 * v));
    expect(intercept).toBeCloseTo(3, 12);
    expect(slope).toBeCloseTo(50, 10);
  });

  it("extrapolates below the smallest-N FID for same-distribution sets (the bias is positive)", () => {
    const real = fitGaussian(gaussianFeatures(4000, 6, 11));
    const fake = gaussianFeatures(2000, 6, 12);
    const r = fidInfinity(real, fake, { seed: 1 });
    expect(r.points).toHaveLength(15);
    expect(r.points[0].n).toBe(400);
    expect(r.points.at(-1)!.n).toBe(2000);
    expect(r.slope).toBeGreaterThan(0);
    expect(Math.abs(r.value)).toBeLessThan(r.points[0].fid);
  });

  it("uses the paper's 5k..N sizes for large sets", () => {
    expect(defaultSizes(50_000)[0]).toBe(5_000);
    expect(defaultSizes(50_000).at(-1)).toBe(50_000);
  });
});
