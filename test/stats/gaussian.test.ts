import { afterEach, describe, expect, it } from "vitest";
import { accumulate, createAccumulator, finalizeGaussian, fitGaussian, mergeAccumulators } from "../../src/stats/gaussian.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import type { FeatureMatrix, Gaussian } from "../../src/types.js";
import { maxAbsDiff } from "../helpers/arrays.js";
import { xorshift32 } from "../helpers/xorshift.js";
import { codeOf } from "../helpers/errors.js";

/** Seeded xorshift normals as float32 rows: offset + scale * z. */
function features(n: number, d: number, seed: number, offset = 0, scale = 1): FeatureMatrix {
  const next = xorshift32(seed);
  const u = () => {
    const s = next();
    return (s + 0.5) / 4294967296;
  };
  const data = new Float32Array(n * d);
  for (let i = 0; i < data.length; i++) data[i] = offset + scale * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return { n, d, data };
}

/** The two-pass textbook reference (np.cov's arithmetic): mean first, then centred products. */
function twoPassGaussian(x: FeatureMatrix): Gaussian {
  const { n, d, data } = x;
  const mu = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mu[j] += data[r * d + j];
  for (let j = 0; j < d; j++) mu[j] /= n;
  const sigma = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const yi = data[r * d + i] - mu[i];
      for (let j = 0; j < d; j++) sigma[i * d + j] += (yi * (data[r * d + j] - mu[j])) / (n - 1);
    }
  }
  return { n, mu, sigma };
}

function rows(x: FeatureMatrix, from: number, to: number): FeatureMatrix {
  return { n: to - from, d: x.d, data: x.data.slice(from * x.d, to * x.d) };
}

function relDiff(a: Float64Array, b: Float64Array): number {
  return maxAbsDiff(a, b) / Math.max(...b.map(Math.abs));
}


afterEach(() => setOrtDisabled(false));

describe("fitGaussian", () => {
  it("equals the two-pass mean and covariance (ddof = 1)", () => {
    const x = features(200, 24, 1, 0.3, 2);
    const g = fitGaussian(x);
    const ref = twoPassGaussian(x);
    expect(g.n).toBe(200);
    expect(relDiff(g.mu, ref.mu)).toBeLessThan(1e-13);
    expect(relDiff(g.sigma, ref.sigma)).toBeLessThan(1e-13);
  });

  it("stays accurate when |mu| >> std, where sum(x x^T) - n mu mu^T would cancel", () => {
    const x = features(500, 8, 2, 1000, 0.01); // mean 1e3, std 1e-2: the naive form loses ~10 digits
    const g = fitGaussian(x);
    const ref = twoPassGaussian(x);
    expect(relDiff(g.sigma, ref.sigma)).toBeLessThan(1e-9);
    expect(relDiff(g.mu, ref.mu)).toBeLessThan(1e-15);
  });

  it("gives the same statistics for one matrix and for a stream of uneven batches", () => {
    const x = features(301, 16, 3, 5);
    const whole = fitGaussian(x);
    const streamed = fitGaussian([rows(x, 0, 1), rows(x, 1, 100), rows(x, 100, 101), rows(x, 101, 301)]);
    expect(relDiff(streamed.mu, whole.mu)).toBeLessThan(1e-14);
    expect(relDiff(streamed.sigma, whole.sigma)).toBeLessThan(1e-12);
  });

  it("returns an exactly symmetric covariance", () => {
    const { sigma } = fitGaussian(features(50, 33, 4));
    for (let i = 0; i < 33; i++) for (let j = 0; j < i; j++) expect(sigma[i * 33 + j]).toBe(sigma[j * 33 + i]);
  });

  it("gives the same result through onnxruntime and through the JavaScript kernel (d = 256)", () => {
    const x = features(300, 256, 5, 0.2);
    const viaOrt = fitGaussian(x);
    setOrtDisabled(true);
    const viaJs = fitGaussian(x);
    expect(relDiff(viaOrt.sigma, viaJs.sigma)).toBeLessThan(1e-12);
    expect(relDiff(viaOrt.mu, viaJs.mu)).toBe(0);
  });
});

describe("mergeAccumulators", () => {
  it("merging two shards equals the fit of all rows (1e-12 relative)", () => {
    // The shards have different means, so their accumulators are centred on different shifts.
    const a = features(120, 20, 6, 1);
    const b = features(80, 20, 7, 3, 0.5);
    const all: FeatureMatrix = { n: 200, d: 20, data: Float32Array.from([...a.data, ...b.data]) };
    const accA = createAccumulator(20);
    accumulate(accA, a);
    const accB = createAccumulator(20);
    accumulate(accB, b);
    const merged = finalizeGaussian(mergeAccumulators(accA, accB));
    const ref = twoPassGaussian(all);
    expect(merged.n).toBe(200);
    expect(relDiff(merged.mu, ref.mu)).toBeLessThan(1e-12);
    expect(relDiff(merged.sigma, ref.sigma)).toBeLessThan(1e-12);
    // The inputs keep their meaning: each still finalizes to its own shard.
    expect(relDiff(finalizeGaussian(accA).sigma, twoPassGaussian(a).sigma)).toBeLessThan(1e-12);
  });

  it("treats an empty accumulator as the identity", () => {
    const x = features(40, 6, 8);
    const acc = createAccumulator(6);
    accumulate(acc, x);
    const g = finalizeGaussian(mergeAccumulators(createAccumulator(6), acc));
    expect(relDiff(g.sigma, fitGaussian(x).sigma)).toBe(0);
  });
});

describe("input checks", () => {
  it("refuses NaN and Inf with E_NONFINITE, naming the row in the whole stream", () => {
    const acc = createAccumulator(4);
    accumulate(acc, features(10, 4, 9));
    const bad = features(3, 4, 10);
    bad.data[2 * 4 + 1] = Number.NaN;
    expect(() => accumulate(acc, bad)).toThrow(/row 12 has NaN in column 1/);
    expect(codeOf(() => fitGaussian({ n: 1, d: 2, data: Float32Array.of(1, Infinity) }))).toBe("E_NONFINITE");
  });

  it("refuses a batch of another dimension (E_FEATURE_DIM) and fewer than two rows (E_TOO_FEW_SAMPLES)", () => {
    const acc = createAccumulator(4);
    expect(codeOf(() => accumulate(acc, features(3, 5, 11)))).toBe("E_FEATURE_DIM");
    accumulate(acc, features(1, 4, 12));
    expect(codeOf(() => finalizeGaussian(acc))).toBe("E_TOO_FEW_SAMPLES");
    expect(codeOf(() => fitGaussian([]))).toBe("E_TOO_FEW_SAMPLES");
  });
});
