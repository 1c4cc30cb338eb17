import { describe, expect, it } from "vitest";
import { forEachDistanceBlock, gramMatrices, kthNearestDistances, squaredNorms } from "../../src/metrics/pairwise.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import type { FeatureMatrix } from "../../src/types.js";
import { xorshift32 } from "../helpers/xorshift.js";

/** Seeded xorshift uniforms in [0, 1) + shift. */
function uniformFeatures(n: number, d: number, seed: number, shift = 0): FeatureMatrix {
  const next = xorshift32(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < data.length; i++) {
    const s = next();
    data[i] = shift + s / 4294967296;
  }
  return { n, d, data };
}

/** Exact-difference distances sqrt(sum (x - y)^2) in float64, all of them. */
function naiveDistances(x: FeatureMatrix, y: FeatureMatrix): Float64Array {
  const out = new Float64Array(x.n * y.n);
  for (let i = 0; i < x.n; i++) {
    for (let j = 0; j < y.n; j++) {
      let s = 0;
      for (let p = 0; p < x.d; p++) s += (x.data[i * x.d + p] - y.data[j * y.d + p]) ** 2;
      out[i * y.n + j] = Math.sqrt(s);
    }
  }
  return out;
}

function collect(x: FeatureMatrix, y: FeatureMatrix, opts: Parameters<typeof forEachDistanceBlock>[3]): { all: Float64Array; blocks: number } {
  const all = new Float64Array(x.n * y.n);
  let blocks = 0;
  forEachDistanceBlock(x, y, (block, r0, rows) => {
    expect(block.length).toBe(rows * y.n);
    all.set(block, r0 * y.n);
    blocks++;
  }, opts);
  return { all, blocks };
}

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1e-300, Math.abs(b[i])));
  return m;
}

describe("pairwise distances", () => {
  // 70 x 90 x 512 = 3.2M multiply-adds: over the threshold, so onnxruntime runs the products.
  const x = uniformFeatures(70, 512, 1);
  const y = uniformFeatures(90, 512, 2, 0.1);

  it("agree with exact differences (float64) block by block, on onnxruntime and in JavaScript", () => {
    const want = naiveDistances(x, y);
    const ort = collect(x, y, { precision: "float64", blockRows: 16 });
    expect(ort.blocks).toBe(5);
    expect(maxRelDiff(ort.all, want)).toBeLessThan(1e-12);
    setOrtDisabled(true);
    try {
      const js = collect(x, y, { precision: "float64" });
      expect(js.blocks).toBe(1);
      expect(maxRelDiff(js.all, want)).toBeLessThan(1e-12);
    } finally {
      setOrtDisabled(false);
    }
  });

  it("round to float32 values in float32 mode (sklearn's output for float32 features)", () => {
    const { all } = collect(x, y, {});
    const exact = naiveDistances(x, y);
    for (let i = 0; i < all.length; i++) expect(Math.fround(all[i])).toBe(all[i]);
    expect(maxRelDiff(all, exact)).toBeLessThan(2e-7);
    expect(maxRelDiff(all, exact)).toBeGreaterThan(0);
  });

  it("are exactly 0 from a set to itself on the diagonal", () => {
    const { all } = collect(x, x, { blockRows: 32 });
    for (let i = 0; i < x.n; i++) expect(all[i * x.n + i]).toBe(0);
    expect(all[1]).toBeGreaterThan(1);
  });

  it("squared norms are float64 sums of the float32 squares", () => {
    const v = { n: 2, d: 3, data: Float32Array.from([1, 2, 2, 0.1, 0, 0]) };
    const got = squaredNorms(v);
    expect(got[0]).toBe(9);
    expect(got[1]).toBe(Math.fround(0.1) * Math.fround(0.1));
  });
});

describe("kthNearestDistances", () => {
  it("is the distance to the k-th nearest other point (self excluded), like prdc's (k+1)-th smallest", () => {
    const pts: FeatureMatrix = { n: 5, d: 1, data: Float32Array.from([0, 1, 3, 7, 15]) };
    expect(Array.from(kthNearestDistances(pts, 1))).toEqual([1, 1, 2, 4, 8]);
    expect(Array.from(kthNearestDistances(pts, 2))).toEqual([3, 2, 3, 6, 12]);
    expect(Array.from(kthNearestDistances(pts, 4))).toEqual([15, 14, 12, 8, 15]);
  });

  it("counts a duplicate as a neighbour at distance 0", () => {
    const pts: FeatureMatrix = { n: 4, d: 1, data: Float32Array.from([2, 2, 5, 9]) };
    expect(Array.from(kthNearestDistances(pts, 1))).toEqual([0, 0, 3, 4]);
  });

  it("matches a full sort across block boundaries", () => {
    const x = uniformFeatures(101, 64, 9);
    const full = naiveDistances(x, x);
    const got = kthNearestDistances(x, 3, { precision: "float64", blockRows: 10 });
    for (let i = 0; i < x.n; i++) {
      const row = Array.from(full.subarray(i * x.n, (i + 1) * x.n)).sort((a, b) => a - b);
      expect(Math.abs(got[i] - row[3]) / row[3]).toBeLessThan(1e-12);
    }
  });

  it("needs more than k samples", () => {
    expect(() => kthNearestDistances(uniformFeatures(3, 2, 1), 3)).toThrow(/at least 4 samples/);
    expect(() => kthNearestDistances(uniformFeatures(3, 2, 1), 0)).toThrow(/positive integer/);
  });
});

describe("gramMatrices", () => {
  it("gives X X^T, Y Y^T and X Y^T", () => {
    const x = Float64Array.from([1, 2, 3, 4]); // 2 x 2
    const y = Float64Array.from([0, 1, 1, 0, 2, 2]); // 3 x 2
    const g = gramMatrices(x, 2, y, 3, 2);
    expect(Array.from(g.xx)).toEqual([5, 11, 11, 25]);
    expect(Array.from(g.yy)).toEqual([1, 0, 2, 0, 1, 2, 2, 2, 8]);
    expect(Array.from(g.xy)).toEqual([2, 1, 6, 4, 3, 14]);
  });
});
