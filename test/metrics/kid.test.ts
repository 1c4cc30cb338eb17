import { describe, expect, it } from "vitest";
import { kid } from "../../src/metrics/kid.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import type { FeatureMatrix } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";
import { xorshift32 } from "../helpers/xorshift.js";

const expected = expectedJson();

function features(protocol: string, side: "real" | "fake"): FeatureMatrix {
  const a = loadNpy(fixture("reference", `feats_${protocol}_${side}.npy`));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

/** Seeded xorshift uniforms in [0, scale) + shift. */
function uniformFeatures(n: number, d: number, seed: number, shift = 0, scale = 1): FeatureMatrix {
  const next = xorshift32(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < data.length; i++) {
    const s = next();
    data[i] = shift + (scale * s) / 4294967296;
  }
  return { n, d, data };
}

/** The unbiased MMD^2 of the polynomial kernel over all rows, written out naively in float64. */
function naiveMmd2(x: FeatureMatrix, y: FeatureMatrix): number {
  const { d } = x;
  const k = (a: FeatureMatrix, i: number, b: FeatureMatrix, j: number) => {
    let s = 0;
    for (let p = 0; p < d; p++) s += a.data[i * d + p] * b.data[j * d + p];
    return (s / d + 1) ** 3;
  };
  const m = x.n;
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i !== j) {
        xx += k(x, i, x, j);
        yy += k(y, i, y, j);
      }
      xy += k(x, i, y, j);
    }
  }
  return (xx + yy) / (m * (m - 1)) - (2 * xy) / (m * m);
}

describe("kid", () => {
  for (const protocol of ["legacy_pytorch", "clean"]) {
    it(`matches clean-fid's kernel_distance on the ${protocol} fixture features (every subset is all 32)`, () => {
      const got = kid(features(protocol, "real"), features(protocol, "fake"));
      expect(got.subsetSize).toBe(32);
      expect(got.subsets).toBe(100);
      expect(Math.abs(got.mean - expected[`kid_${protocol}_cleanfid_subsets100_size1000`])).toBeLessThan(1e-9);
      expect(got.std).toBeLessThan(1e-13); // the same set 100 times over, in float64 (measured 7e-16)
    });
  }

  it("agrees with torch-fidelity's mean on the legacy_tensorflow features up to torch-fidelity's float32 rounding", () => {
    const want = expected.kid_legacy_tensorflow_torch_fidelity_subsets100;
    const got = kid(features("legacy_tensorflow", "real"), features("legacy_tensorflow", "fake"), { convention: "torch-fidelity" });
    // torch-fidelity runs numpy in float32 on float32 features: its 100 permutations of the same 32
    // rows scatter by ~1.2e-7 (its reported std) around the float64 value; ours is exact (std ~0),
    // so the means can agree only to about that noise divided by sqrt(100). Measured: 4.2e-8.
    expect(Math.abs(got.mean - want.kernel_inception_distance_mean)).toBeLessThan(1e-7);
    expect(got.std).toBeLessThan(1e-13);
    expect(want.kernel_inception_distance_std).toBeLessThan(2e-7);
  });

  it("gives the same value under both conventions when subsets are whole sets", () => {
    const real = features("clean", "real");
    const fake = features("clean", "fake");
    const a = kid(real, fake, { convention: "clean-fid" }).mean;
    const b = kid(real, fake, { convention: "torch-fidelity" }).mean;
    expect(Math.abs(a - b)).toBeLessThan(1e-14);
    expect(Math.abs(a - naiveMmd2(fake, real))).toBeLessThan(1e-14);
  });

  it("draws the subsets numpy draws: fake indices first, then real, from RandomState(seed)", () => {
    // numpy 2.4 (float64): torch-fidelity's loop with RandomState(7), input1 = fake, input2 = real,
    // and clean-fid's kernel_distance(real, fake) after np.random.seed(7); 5 subsets of 10 of 32.
    const real = features("clean", "real");
    const fake = features("clean", "fake");
    const tf = kid(real, fake, { subsets: 5, subsetSize: 10, seed: 7, convention: "torch-fidelity" });
    expect(Math.abs(tf.mean - -0.0005168714220884496)).toBeLessThan(1e-14);
    expect(Math.abs(tf.std - 0.0005116778327684448)).toBeLessThan(1e-14);
    const cf = kid(real, fake, { subsets: 5, subsetSize: 10, seed: 7, convention: "clean-fid" });
    expect(Math.abs(cf.mean - -0.0005168714220882009)).toBeLessThan(1e-14);
    // With real drawn first the subsets differ and so does the value (numpy: -8.19e-6).
    expect(Math.abs(kid(fake, real, { subsets: 5, subsetSize: 10, seed: 7 }).mean - -8.194194597876958e-6)).toBeLessThan(1e-14);
  });

  it("averages over subsets drawn by numpy's RandomState and reports their spread", () => {
    const real = uniformFeatures(60, 16, 1);
    const fake = uniformFeatures(50, 16, 2, 0.05);
    const a = kid(real, fake, { subsets: 20, subsetSize: 10, seed: 3 });
    const b = kid(real, fake, { subsets: 20, subsetSize: 10, seed: 3 });
    const c = kid(real, fake, { subsets: 20, subsetSize: 10, seed: 4 });
    expect(a).toEqual(b);
    expect(a.subsetSize).toBe(10);
    expect(a.mean).not.toBe(c.mean);
    expect(a.std).toBeGreaterThan(1e-4);
    // Shifted features: clearly positive on average over many subsets.
    expect(kid(real, fake, { subsets: 200, subsetSize: 40 }).mean).toBeGreaterThan(0);
  });

  it("is near zero for two samples of one distribution and grows with the shift", () => {
    const real = uniformFeatures(200, 8, 11);
    const same = uniformFeatures(200, 8, 12);
    const shifted = uniformFeatures(200, 8, 13, 0.3);
    const near = kid(real, same, { subsets: 10, subsetSize: 100 });
    const far = kid(real, shifted, { subsets: 10, subsetSize: 100 });
    expect(Math.abs(near.mean)).toBeLessThan(5 * near.std + 1e-3);
    expect(far.mean).toBeGreaterThan(20 * Math.abs(near.mean));
  });

  it("gives the same numbers without onnxruntime (JavaScript products)", () => {
    const real = features("legacy_pytorch", "real");
    const fake = features("legacy_pytorch", "fake");
    setOrtDisabled(true);
    try {
      expect(Math.abs(kid(real, fake, { subsets: 5 }).mean - expected.kid_legacy_pytorch_cleanfid_subsets100_size1000)).toBeLessThan(1e-9);
    } finally {
      setOrtDisabled(false);
    }
  });

  it("rejects mismatched dimensions and subsets of one sample", () => {
    expect(() => kid(uniformFeatures(5, 4, 1), uniformFeatures(5, 3, 2))).toThrow(/dimensions/);
    expect(() => kid(uniformFeatures(1, 4, 1), uniformFeatures(5, 4, 2))).toThrow(/at least 2/);
  });
});
