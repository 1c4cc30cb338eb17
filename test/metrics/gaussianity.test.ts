import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { erf, erfc, gaussianity, ksToFittedNormal, normalCdf } from "../../src/metrics/gaussianity.js";
import { createRng, fillNormal } from "../../src/random/rng.js";
import type { FeatureMatrix } from "../../src/types.js";

/** n rows of z A + 5 with z ~ N(0, I_d) and a random d x d A: a correlated Gaussian sample. */
function correlatedGaussian(n: number, d: number, seed: number): FeatureMatrix {
  const rng = createRng(seed);
  const a = fillNormal(rng, new Float64Array(d * d));
  const z = fillNormal(rng, new Float64Array(n * d));
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += z[i * d + k] * a[k * d + j];
      data[i * d + j] = s + 5;
    }
  }
  return { n, d, data };
}

describe("normalCdf / erf / erfc", () => {
  it("agree with scipy.special (ndtr, erf, erfc) to ~1e-15, tails in relative terms", () => {
    // scipy 1.17 values: ndtr(z), erf(x), erfc(x)
    const ndtr: Array<[number, number]> = [
      [-10, 7.61985302416047e-24],
      [-8.5, 9.47953482220325e-18],
      [-5, 2.866515718791933e-7],
      [-4.3, 8.539905470991794e-6],
      [-4.2, 1.334574901590631e-5],
      [-3, 0.0013498980316300933],
      [-1.5, 0.06680720126885807],
      [-1, 0.15865525393145707],
      [-0.3, 0.3820885778110474],
      [0, 0.5],
      [0.2, 0.579259709439103],
      [1, 0.8413447460685429],
      [2.5, 0.9937903346742238],
      [4.25, 0.9999893114742251],
      [6, 0.9999999990134123],
    ];
    for (const [z, p] of ndtr) {
      expect(Math.abs(normalCdf(z) - p)).toBeLessThan(5e-16);
      if (z <= -2.9) expect(Math.abs(normalCdf(z) / p - 1)).toBeLessThan(1e-13); // continued-fraction side
    }
    const erfs: Array<[number, number, number]> = [
      [0.1, 0.1124629160182849, 0.8875370839817152],
      [0.5, 0.5204998778130465, 0.4795001221869535],
      [1, 0.8427007929497148, 0.15729920705028516],
      [2, 0.9953222650189527, 0.004677734981047266],
      [2.9, 0.9999589021219005, 4.109787809945884e-5],
      [3.1, 0.9999883513426328, 1.1648657367199584e-5],
      [5, 0.9999999999984626, 1.5374597944280347e-12],
    ];
    for (const [x, e, ec] of erfs) {
      expect(Math.abs(erf(x) - e)).toBeLessThan(5e-16);
      expect(Math.abs(erf(-x) + e)).toBeLessThan(5e-16);
      expect(Math.abs(erfc(x) / ec - 1)).toBeLessThan(x >= 2 ? 1e-14 : 1e-13);
    }
    expect(normalCdf(-40)).toBe(0);
    expect(normalCdf(40)).toBe(1);
  });
});

describe("ksToFittedNormal", () => {
  it("matches scipy.stats.kstest against the fitted normal", () => {
    // kstest([-1, 0, 1], "norm").statistic (mean 0, sd 1 already) = 0.1746780794018763
    expect(ksToFittedNormal(Float64Array.of(1, -1, 0))).toBeCloseTo(0.1746780794018763, 14);
    // v = [0.3, -1.2, 2.0, 0.1, 0.7]; kstest(v, "norm", args=(mean(v), std(v, ddof=1))).statistic
    expect(ksToFittedNormal(Float64Array.of(0.3, -1.2, 2.0, 0.1, 0.7))).toBeCloseTo(0.2039774911919105, 14);
  });
});

describe("gaussianity", () => {
  it("scores a Gaussian sample like its yardstick, and a two-cluster mixture far outside it", () => {
    const x = correlatedGaussian(2000, 32, 1);
    const g = gaussianity(x, { seed: 1 });
    expect(g.projections).toBe(128);
    expect(g.medianKs).toBeLessThanOrEqual(1.5 * g.yardstick.medianKs);
    expect(g.medianKs).toBeGreaterThanOrEqual(g.yardstick.medianKs / 1.5);
    // Lilliefors at n = 2000: typical statistic ~0.016
    expect(g.yardstick.medianKs).toBeGreaterThan(0.008);
    expect(g.yardstick.medianKs).toBeLessThan(0.025);
    expect(g.maxKs).toBeGreaterThanOrEqual(g.medianKs);

    // the same rows, half shifted by +3 sqrt(d) and half by -3 sqrt(d) in every coordinate
    const mix = { ...x, data: x.data.map((v, k) => v + (Math.floor(k / x.d) % 2 ? 1 : -1) * 3 * Math.sqrt(x.d)) };
    const m = gaussianity(mix, { seed: 1 });
    expect(m.medianKs).toBeGreaterThan(3 * m.yardstick.medianKs);
  });

  it("handles fewer rows than dimensions (singular covariance) without forming it", () => {
    const x = correlatedGaussian(150, 400, 2);
    const g = gaussianity(x, { seed: 3, projections: 200 }); // projections > n - 1: singular C too
    expect(g.d).toBe(400);
    expect(Number.isFinite(g.yardstick.medianKs)).toBe(true);
    expect(g.medianKs).toBeLessThanOrEqual(1.5 * g.yardstick.medianKs);
    expect(g.yardstick.medianKs).toBeGreaterThan(0.02); // n = 150: typical ~0.05
  });

  it("is reproducible for a seed and moves with it", () => {
    const x = correlatedGaussian(300, 8, 4);
    expect(gaussianity(x, { seed: 5 })).toEqual(gaussianity(x, { seed: 5 }));
    expect(gaussianity(x, { seed: 6 }).medianKs).not.toBe(gaussianity(x, { seed: 5 }).medianKs);
  });

  it("refuses constant features", () => {
    const x = { n: 10, d: 3, data: new Float32Array(30).fill(2) };
    try {
      gaussianity(x);
      expect.unreachable();
    } catch (e) {
      expect(isDiffevalError(e, "E_DEGENERATE_FEATURES")).toBe(true);
    }
  });
});
