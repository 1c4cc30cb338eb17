import { describe, expect, it } from "vitest";
import { inceptionScore } from "../../src/metrics/inception-score.js";
import type { FeatureMatrix } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";

const expected = expectedJson();

function logitsFixture(): FeatureMatrix {
  const a = loadNpy(fixture("reference", "logits_unbiased_legacy_tensorflow_real.npy"));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

/** n rows over c classes: row i peaks (logit `peak`, others 0) on class i mod c. */
function peakedLogits(n: number, c: number, peak: number): FeatureMatrix {
  const data = new Float32Array(n * c);
  for (let i = 0; i < n; i++) data[i * c + (i % c)] = peak;
  return { n, d: c, data };
}

describe("inceptionScore", () => {
  it("matches torch-fidelity on the fixture logits (unbiased, 1008 classes, shuffled with seed 2020, 10 splits)", () => {
    const want = expected.isc_legacy_tensorflow_real_torch_fidelity_splits10_seed2020;
    const got = inceptionScore(logitsFixture(), { splits: 10, shuffleSeed: 2020 });
    expect(got.splits).toBe(10);
    expect(Math.abs(got.mean - want.inception_score_mean)).toBeLessThan(1e-9);
    expect(Math.abs(got.std - want.inception_score_std)).toBeLessThan(1e-9);
  });

  it("splits rows in the given order without a seed (so the fixture std is not met)", () => {
    const want = expected.isc_legacy_tensorflow_real_torch_fidelity_splits10_seed2020;
    const unshuffled = inceptionScore(logitsFixture(), { splits: 10 });
    expect(Math.abs(unshuffled.std - want.inception_score_std)).toBeGreaterThan(1e-7);
    // One split over all rows has no spread.
    const whole = inceptionScore(logitsFixture(), { splits: 1, shuffleSeed: 2020 });
    expect(whole.std).toBe(0);
    expect(whole.mean).toBeGreaterThan(1);
  });

  it("is c for confident, evenly spread predictions over c classes (KL = log c in every split)", () => {
    // 40 rows, 4 classes, 10 splits of 4 rows: each split holds one row of every class.
    const got = inceptionScore(peakedLogits(40, 4, 60), { splits: 10 });
    expect(got.mean).toBeCloseTo(4, 12);
    expect(got.std).toBeLessThan(1e-12);
    // 5 classes in splits of 5: IS = 5.
    expect(inceptionScore(peakedLogits(50, 5, 60), { splits: 10 }).mean).toBeCloseTo(5, 12);
  });

  it("is 1 when every sample predicts the same distribution", () => {
    const data = new Float32Array(20 * 7);
    for (let i = 0; i < data.length; i++) data[i] = (i % 7) * 0.3;
    const got = inceptionScore({ n: 20, d: 7, data }, { splits: 4 });
    expect(Math.abs(got.mean - 1)).toBeLessThan(1e-14);
  });

  it("rejects fewer samples than splits", () => {
    expect(() => inceptionScore(peakedLogits(5, 3, 1), { splits: 10 })).toThrow(/at least 10 samples/);
  });
});
