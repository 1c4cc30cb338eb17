import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { fillNormal, createRng } from "../../src/random/rng.js";
import { spectralEntropy, vendiScore } from "../../src/metrics/vendi.js";
import type { FeatureMatrix } from "../../src/types.js";

function matrix(rows: number[][]): FeatureMatrix {
  return { n: rows.length, d: rows[0].length, data: Float32Array.from(rows.flat()) };
}

describe("vendiScore (cosine kernel)", () => {
  it("is 1 for identical features, in either matrix form", () => {
    const row = [0.3, -1.2, 2.5];
    expect(vendiScore(matrix([row, row])).score).toBeCloseTo(1, 12); // n <= d: 2 x 2 Gram form
    const many = vendiScore(matrix(Array.from({ length: 7 }, () => row)));
    expect(many.kernelOrder).toBe(3); // n > d: 3 x 3 form
    expect(many.score).toBeCloseTo(1, 12);
  });

  it("is n for orthogonal features, whatever their lengths", () => {
    const rows = [
      [2, 0, 0, 0, 0],
      [0, 0.5, 0, 0, 0],
      [0, 0, 0, 7, 0],
      [0, 0, 0, 0, 0.1],
    ];
    expect(vendiScore(matrix(rows)).score).toBeCloseTo(4, 12);
  });

  it("matches the hand-computed spectrum of two rows 60 degrees apart", () => {
    // K/n = [[1/2, c/2], [c/2, 1/2]], c = cos 60 = 1/2: eigenvalues 3/4 and 1/4,
    // H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623351446188083, score = e^H = 1.7547653506033232.
    const x1 = [1, 0];
    const x2 = [Math.cos(Math.PI / 3), Math.sin(Math.PI / 3)];
    const r = vendiScore(matrix([x1, x2]));
    expect(r.kernelOrder).toBe(2);
    expect(r.entropy).toBeCloseTo(0.5623351446188083, 7); // float32 storage of sin 60
    expect(r.score).toBeCloseTo(1.7547653506033232, 7);
    // every row twice: K/n keeps its spectrum, now through the d x d form (n = 4 > d = 2)
    const doubled = vendiScore(matrix([x1, x2, x1, x2]));
    expect(doubled.score).toBeCloseTo(r.score, 12);
  });

  it("gives cluster proportions as the spectrum of orthogonal clusters", () => {
    // clusters of 3, 3, 2, 2 rows along 4 axes: eigenvalues 0.3, 0.3, 0.2, 0.2
    const e = (k: number, s: number) => [0, 1, 2, 3].map((j) => (j === k ? s : 0));
    const rows = [e(0, 1), e(0, 2), e(0, 3), e(1, 1), e(1, 5), e(1, 1), e(2, 4), e(2, 1), e(3, 9), e(3, 1)];
    const h = -(2 * 0.3 * Math.log(0.3) + 2 * 0.2 * Math.log(0.2));
    expect(vendiScore(matrix(rows)).score).toBeCloseTo(Math.exp(h), 12);
  });

  it("agrees between the n x n and the d x d forms on random features", () => {
    // zero columns change no cosine: 60 x 20 takes the d x d route, padded to 80 columns the Gram one
    const n = 60;
    const d = 20;
    const g = fillNormal(createRng(3), new Float32Array(n * d));
    const padded = new Float32Array(n * 80);
    for (let i = 0; i < n; i++) padded.set(g.subarray(i * d, (i + 1) * d), i * 80);
    const small = vendiScore({ n, d, data: g });
    const wide = vendiScore({ n, d: 80, data: padded });
    expect(small.kernelOrder).toBe(20);
    expect(wide.kernelOrder).toBe(60);
    expect(wide.score).toBeCloseTo(small.score, 10);
    expect(small.score).toBeGreaterThan(10); // 20 isotropic directions, 60 samples: most of the 20
    expect(small.score).toBeLessThan(20);
  });

  it("stays quick on a larger set through the blocked d x d route", () => {
    const n = 3000;
    const d = 256;
    const g = fillNormal(createRng(4), new Float32Array(n * d));
    const t0 = performance.now();
    const r = vendiScore({ n, d, data: g });
    expect(performance.now() - t0).toBeLessThan(5000);
    // isotropic Gaussian, n/d ~ 12: eigenvalues of X^T X / n spread by Marchenko-Pastur (ratio 0.085),
    // entropy a little below ln 256
    expect(r.score).toBeGreaterThan(0.9 * 256);
    expect(r.score).toBeLessThan(256);
  });

  it("refuses an all-zero row", () => {
    try {
      vendiScore(matrix([[1, 2], [0, 0]]));
      expect.unreachable();
    } catch (e) {
      expect(isDiffevalError(e, "E_NONFINITE")).toBe(true);
      expect((e as Error).message).toMatch(/row 1/);
    }
  });
});

describe("spectralEntropy", () => {
  it("treats 0 log 0 (and rounding negatives) as 0", () => {
    expect(spectralEntropy([0.5, 0.5, 0, -1e-17])).toBeCloseTo(Math.LN2, 15);
  });
});
