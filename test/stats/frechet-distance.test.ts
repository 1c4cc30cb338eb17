import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { afterEach, describe, expect, it } from "vitest";
import {
  frechetDistance,
  frechetDistanceDetails,
  frechetDistanceFromFeatures,
  frechetDistanceFromFeaturesDetails,
} from "../../src/stats/frechet.js";
import { fitGaussian } from "../../src/stats/gaussian.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import type { FeatureMatrix, Gaussian } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";
import { xorshift32 } from "../helpers/xorshift.js";
import { codeOf } from "../helpers/errors.js";

const PROTOCOLS = ["legacy_pytorch", "clean", "legacy_tensorflow"] as const;
const expected = expectedJson();

function fixtureFeatures(protocol: string, side: "real" | "fake"): FeatureMatrix {
  const a = loadNpy(fixture("reference", `feats_${protocol}_${side}.npy`));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

/** Seeded xorshift normals, mixed across neighbouring columns so the covariance is not diagonal. */
function features(n: number, d: number, seed: number, offset = 0): FeatureMatrix {
  const next = xorshift32(seed);
  const u = () => {
    const s = next();
    return (s + 0.5) / 4294967296;
  };
  const data = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    let prev = 0;
    for (let j = 0; j < d; j++) {
      const z = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
      data[r * d + j] = offset + (1 + j / d) * (z + 0.6 * prev);
      prev = z;
    }
  }
  return { n, d, data };
}

/**
 * An independent float64 reference: scipy-free, eigendecomposition-based, the "eigh route"
 * (ml-matrix's JAMA tred2/tql2): Tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))).
 */
function eighReference(g1: Gaussian, g2: Gaussian): number {
  const d = g1.mu.length;
  const toMatrix = (s: Float64Array) => new Matrix(Array.from({ length: d }, (_, i) => Array.from(s.subarray(i * d, i * d + d))));
  const e1 = new EigenvalueDecomposition(toMatrix(g1.sigma), { assumeSymmetric: true });
  const v = e1.eigenvectorMatrix;
  const root = v.mmul(Matrix.diag(e1.realEigenvalues.map((x) => Math.sqrt(Math.max(x, 0))))).mmul(v.transpose());
  const m = root.mmul(toMatrix(g2.sigma)).mmul(root);
  const e2 = new EigenvalueDecomposition(m.add(m.transpose()).div(2), { assumeSymmetric: true });
  const traceSqrt = e2.realEigenvalues.reduce((acc, x) => acc + Math.sqrt(Math.max(x, 0)), 0);
  let mean = 0;
  let t1 = 0;
  let t2 = 0;
  for (let i = 0; i < d; i++) {
    mean += (g1.mu[i] - g2.mu[i]) ** 2;
    t1 += g1.sigma[i * d + i];
    t2 += g2.sigma[i * d + i];
  }
  return mean + t1 + t2 - 2 * traceSqrt;
}


afterEach(() => setOrtDisabled(false));

describe("frechetDistance on the fixture features (N = 32 < d = 2048: singular covariances)", () => {
  // pytorch-fid's scipy sqrtm adds ~4e-6 of rounding noise here (the reference's own float64
  // eigh route differs from it by ~7e-7 and its Gram route by ~4e-6), so 1e-5 is the agreement
  // to expect with it. The Gram nuclear-norm value is exact up to rounding of rank-31 problems:
  // both our routes should meet it within 1e-10 (measured: ~1e-13 covariance, ~6e-12 Gram).
  for (const protocol of PROTOCOLS) {
    it(`agrees with pytorch-fid and the float64 references (${protocol})`, () => {
      const real = fixtureFeatures(protocol, "real");
      const fake = fixtureFeatures(protocol, "fake");
      const viaCov = frechetDistanceDetails(fitGaussian(real), fitGaussian(fake));
      const viaGram = frechetDistanceFromFeaturesDetails(real, fake);
      const pytorchFid = expected[`fid_${protocol}_pytorch_fid_formula`];
      expect(viaCov.route).toBe("covariance");
      expect(viaGram.route).toBe("gram");
      expect(viaCov.rank).toBe(31);
      expect(Math.abs(viaCov.value - pytorchFid)).toBeLessThan(1e-5);
      expect(Math.abs(viaGram.value - pytorchFid)).toBeLessThan(1e-5);
      expect(Math.abs(viaCov.value - viaGram.value)).toBeLessThan(1e-10);
      const gramRef = expected[`fid_${protocol}_float64_gram_nuclear_norm_route`];
      if (gramRef !== undefined) {
        expect(Math.abs(viaCov.value - gramRef)).toBeLessThan(1e-10);
        expect(Math.abs(viaGram.value - gramRef)).toBeLessThan(1e-10);
        expect(Math.abs(viaCov.value - expected[`fid_${protocol}_float64_eigh_route`])).toBeLessThan(1e-5);
        for (const r of [viaCov, viaGram]) {
          expect(Math.abs(r.trace1 - expected[`trace_sigma_real_${protocol}`])).toBeLessThan(1e-12);
          expect(Math.abs(r.trace2 - expected[`trace_sigma_fake_${protocol}`])).toBeLessThan(1e-12);
        }
      }
    });
  }

  it("matches pytorch-fid's clean-fid twin value as well", () => {
    const value = frechetDistanceFromFeatures(fixtureFeatures("clean", "real"), fixtureFeatures("clean", "fake"));
    expect(Math.abs(value - expected.fid_clean_cleanfid_formula)).toBeLessThan(1e-5);
  });
});

describe("frechetDistance", () => {
  it("matches an eigendecomposition reference at d = 256 with full-rank covariances", () => {
    const g1 = fitGaussian(features(600, 256, 1));
    const g2 = fitGaussian(features(500, 256, 2, 0.05));
    const ref = eighReference(g1, g2);
    const value = frechetDistance(g1, g2);
    expect(Math.abs(value - ref) / ref).toBeLessThan(1e-10);
  });

  it("gives the same value through onnxruntime and through JavaScript only (d = 300)", () => {
    const g1 = fitGaussian(features(400, 300, 3));
    const g2 = fitGaussian(features(350, 300, 4, 0.1));
    const viaOrt = frechetDistanceDetails(g1, g2);
    setOrtDisabled(true);
    const viaJs = frechetDistanceDetails(g1, g2);
    expect(viaOrt.rank).toBe(300);
    expect(Math.abs(viaOrt.value - viaJs.value) / viaJs.value).toBeLessThan(1e-11);
  });

  it("is 0 between a Gaussian and itself, and never negative", () => {
    for (const g of [fitGaussian(features(300, 64, 5)), fitGaussian(fixtureFeatures("clean", "real"))]) {
      const fd = frechetDistanceDetails(g, g);
      expect(fd.value).toBeGreaterThanOrEqual(0);
      expect(Math.abs(fd.raw)).toBeLessThan(1e-12 * (fd.trace1 + fd.trace2));
    }
  });

  it("adds ||mu1 - mu2||^2 for a shifted mean and is symmetric in its arguments", () => {
    const g1 = fitGaussian(features(200, 40, 6));
    const g2 = fitGaussian(features(200, 40, 7));
    const shifted = { ...g2, mu: g2.mu.map((v, i) => v + (i % 2 ? 0.5 : -0.25)) };
    const base = frechetDistance(g1, g2);
    let extra = 0;
    for (let i = 0; i < 40; i++) extra += 2 * (g2.mu[i] - g1.mu[i]) * (shifted.mu[i] - g2.mu[i]) + (shifted.mu[i] - g2.mu[i]) ** 2;
    expect(frechetDistance(g1, shifted)).toBeCloseTo(base + extra, 10);
    expect(frechetDistance(g2, g1)).toBeCloseTo(base, 10);
  });

  it("stays finite and correct for singular and zero covariances", () => {
    const small = features(10, 50, 8); // rank 9 covariance in 50 dimensions
    const other = features(200, 50, 9);
    const viaCov = frechetDistance(fitGaussian(small), fitGaussian(other));
    const viaGram = frechetDistanceFromFeatures(small, other);
    expect(Math.abs(viaCov - viaGram) / viaGram).toBeLessThan(1e-10);
    // All rows equal: sigma = 0, so FD = ||mu1 - mu2||^2 + Tr S2.
    const constant: FeatureMatrix = { n: 5, d: 50, data: new Float32Array(250).fill(0.25) };
    const g2 = fitGaussian(other);
    let expectedValue = 0;
    for (let i = 0; i < 50; i++) expectedValue += (0.25 - g2.mu[i]) ** 2 + g2.sigma[i * 50 + i];
    expect(frechetDistance(fitGaussian(constant), g2)).toBeCloseTo(expectedValue, 10);
  });

  it("refuses NaN statistics (E_NONFINITE) and mismatched dimensions (E_FEATURE_DIM)", () => {
    const g = fitGaussian(features(20, 8, 10));
    const nan = { ...g, sigma: g.sigma.map((v, i) => (i === 9 ? NaN : v)) };
    expect(codeOf(() => frechetDistance(g, nan))).toBe("E_NONFINITE");
    expect(codeOf(() => frechetDistance(g, fitGaussian(features(20, 9, 11))))).toBe("E_FEATURE_DIM");
  });
});

describe("frechetDistanceFromFeatures", () => {
  it("uses the Gram route below d samples and the covariance route otherwise, with equal results", () => {
    const x1 = features(40, 100, 12);
    const x2 = features(70, 100, 13, 0.1);
    const gram = frechetDistanceFromFeaturesDetails(x1, x2);
    const cov = frechetDistanceDetails(fitGaussian(x1), fitGaussian(x2));
    expect(gram.route).toBe("gram");
    expect(Math.abs(gram.value - cov.value) / cov.value).toBeLessThan(1e-10);
    const big = frechetDistanceFromFeaturesDetails(features(150, 100, 14), features(120, 100, 15));
    expect(big.route).toBe("covariance");
  });

  it("names the offending row for NaN features (E_NONFINITE) and refuses a d mismatch (E_FEATURE_DIM)", () => {
    const bad = features(10, 4, 16);
    bad.data[3 * 4 + 2] = Number.NaN;
    expect(() => frechetDistanceFromFeatures(features(10, 4, 17), bad)).toThrow(/second feature set: row 3 has NaN/);
    expect(codeOf(() => frechetDistanceFromFeatures(features(10, 4, 18), features(10, 5, 19)))).toBe("E_FEATURE_DIM");
  });
});
