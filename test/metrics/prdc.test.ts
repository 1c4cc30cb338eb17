import { describe, expect, it } from "vitest";
import { prdc } from "../../src/metrics/prdc.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import type { FeatureMatrix } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";

const expected = expectedJson();
const KEYS = ["precision", "recall", "density", "coverage"] as const;

function features(protocol: string, side: "real" | "fake"): FeatureMatrix {
  const a = loadNpy(fixture("reference", `feats_${protocol}_${side}.npy`));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

function points(values: number[]): FeatureMatrix {
  return { n: values.length, d: 1, data: Float32Array.from(values) };
}

describe("prdc", () => {
  for (const protocol of ["legacy_pytorch", "clean"]) {
    for (const k of [3, 5]) {
      it(`matches prdc's compute_prdc on the ${protocol} fixture features with nearest_k ${k}`, () => {
        const want = expected[`prdc_${protocol}_k${k}_real_vs_fake`];
        const got = prdc(features(protocol, "real"), features(protocol, "fake"), { k });
        expect(got.k).toBe(k);
        for (const key of KEYS) expect(Math.abs(got[key] - want[key]), key).toBeLessThan(1e-9);
      });
    }
  }

  it("counts by hand on a line: strict inequalities, k-th neighbour excluding self", () => {
    // Reals 0..4: radius (k = 1) 1 each. Fakes 0.5, 5, 10: radii 4.5, 4.5, 5.
    // precision: only 0.5 lies strictly inside a real ball (5 is exactly at real 4's radius) = 1/3;
    // recall: every real is within 4.5 of the fake 0.5 = 1; density: fake 0.5 is in 2 balls = 2/3;
    // coverage: reals 0 and 1 have a fake at 0.5 < 1 (real 4's nearest fake is at exactly 1) = 2/5.
    const got = prdc(points([0, 1, 2, 3, 4]), points([0.5, 5, 10]), { k: 1 });
    expect(got).toEqual({ precision: 1 / 3, recall: 1, density: 2 / 3, coverage: 2 / 5, k: 1 });
    // k = 2: real radii 2, 1, 1, 1, 2; fake radii 9.5, 5, 9.5. Fake 0.5 is inside the balls of reals
    // 0 and 1, fake 5 inside real 4's (1 < 2): precision 2/3, density (2 + 1 + 0) / 3 / 2 = 1/2;
    // covered reals: 0, 1 (fake 0.5) and 4 (fake 5): 3/5.
    const k2 = prdc(points([0, 1, 2, 3, 4]), points([0.5, 5, 10]), { k: 2 });
    expect(k2).toEqual({ precision: 2 / 3, recall: 1, density: (1 / 2) * (3 / 3), coverage: 3 / 5, k: 2 });
  });

  it("gives the same numbers without onnxruntime (JavaScript products)", () => {
    const real = features("clean", "real");
    const fake = features("clean", "fake");
    const withOrt = prdc(real, fake, { k: 3 });
    setOrtDisabled(true);
    try {
      expect(prdc(real, fake, { k: 3 })).toEqual(withOrt);
    } finally {
      setOrtDisabled(false);
    }
  });

  it("gives the same counts with float64 distances on the fixtures (no borderline pairs there)", () => {
    const want = expected.prdc_legacy_pytorch_k5_real_vs_fake;
    const got = prdc(features("legacy_pytorch", "real"), features("legacy_pytorch", "fake"), { k: 5, precision: "float64" });
    for (const key of KEYS) expect(Math.abs(got[key] - want[key]), key).toBeLessThan(1e-9);
  });

  it("rejects k too large for the sample count and mismatched dimensions", () => {
    expect(() => prdc(points([0, 1, 2]), points([0, 1, 2, 3]), { k: 3 })).toThrow(/at least 4 samples/);
    expect(() => prdc(points([0, 1, 2]), { n: 3, d: 2, data: new Float32Array(6) })).toThrow(/dimensions/);
  });
});
