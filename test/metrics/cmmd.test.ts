import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cmmd, l2NormalisedRows } from "../../src/metrics/cmmd.js";
import { frechetDistanceFromFeatures } from "../../src/stats/frechet.js";
import type { FeatureMatrix } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { xorshift32 } from "../helpers/xorshift.js";

function embeds(side: "real" | "fake"): FeatureMatrix {
  const a = loadNpy(fixture("encoders", "reference", `clip_image_embeds_${side}.npy`));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

function clipExpected(): Record<string, number> {
  return JSON.parse(readFileSync(fixture("encoders", "reference", "clip_expected.json"), "utf8"));
}

/** Direct O(n^2 d) evaluation of the paper's formula, for the blocked implementation to match. */
function naiveCmmd(x: FeatureMatrix, y: FeatureMatrix, sigma = 10, scale = 1000): number {
  const xs = l2NormalisedRows(x);
  const ys = l2NormalisedRows(y);
  const d = x.d;
  const k = (a: Float64Array, i: number, b: Float64Array, j: number): number => {
    let s = 0;
    for (let t = 0; t < d; t++) s += (a[i * d + t] - b[j * d + t]) ** 2;
    return Math.exp(-s / (2 * sigma * sigma));
  };
  const mean = (a: Float64Array, na: number, b: Float64Array, nb: number): number => {
    let s = 0;
    for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) s += k(a, i, b, j);
    return s / (na * nb);
  };
  return scale * (mean(xs, x.n, xs, x.n) + mean(ys, y.n, ys, y.n) - 2 * mean(xs, x.n, ys, y.n));
}

function randomMatrix(n: number, d: number, seed: number, shift = 0): FeatureMatrix {
  const rnd = xorshift32(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < data.length; i++) data[i] = rnd() - 0.5 + (i % d === 0 ? shift : 0);
  return { n, d, data };
}

describe("CMMD", () => {
  it("reproduces cmmd_real_vs_fake of the fixtures", () => {
    const want = clipExpected().cmmd_real_vs_fake;
    const got = cmmd(embeds("real"), embeds("fake"));
    console.log(`cmmd: ${got} vs ${want}, |diff| ${Math.abs(got - want).toExponential(2)}`);
    expect(Math.abs(got - want)).toBeLessThan(1e-5);
  });

  it("is 0 for identical sets and symmetric", () => {
    const r = embeds("real");
    expect(Math.abs(cmmd(r, r))).toBeLessThan(1e-12);
    const f = embeds("fake");
    expect(cmmd(r, f)).toBeCloseTo(cmmd(f, r), 12);
  });

  it("does not depend on the embeddings' norms", () => {
    const r = embeds("real");
    const scaled = { ...r, data: r.data.map((v, i) => v * 2 ** (Math.floor(i / r.d) % 5) /* exact in float32 */) };
    expect(cmmd(scaled, embeds("fake"))).toBeCloseTo(cmmd(r, embeds("fake")), 12);
  });

  it("the blocked sums match the direct formula across blocks (n > 512), and sigma/scale apply", () => {
    const x = randomMatrix(700, 24, 7);
    const y = randomMatrix(530, 24, 11, 0.2);
    const got = cmmd(x, y);
    const want = naiveCmmd(x, y);
    expect(Math.abs(got - want)).toBeLessThan(1e-9 * Math.max(1, Math.abs(want)));
    expect(got).toBeGreaterThan(0);
    const small = { x: randomMatrix(20, 8, 3), y: randomMatrix(25, 8, 5, 0.3) };
    expect(cmmd(small.x, small.y, { sigma: 0.7, scale: 1 })).toBeCloseTo(naiveCmmd(small.x, small.y, 0.7, 1), 12);
  });

  it("refuses mismatched dimensions and zero rows", () => {
    expect(() => cmmd(randomMatrix(4, 3, 1), randomMatrix(4, 5, 2))).toThrow(/dimension/);
    const z = { n: 2, d: 3, data: new Float32Array([1, 2, 3, 0, 0, 0]) };
    expect(() => cmmd(z, randomMatrix(4, 3, 2))).toThrow(/norm/);
  });
});

describe("Frechet distance in CLIP space", () => {
  it("reproduces fd_clip_raw_real_vs_fake", () => {
    const want = clipExpected().fd_clip_raw_real_vs_fake;
    const got = frechetDistanceFromFeatures(embeds("real"), embeds("fake"));
    console.log(`fd_clip_raw: ${got} vs ${want}, |diff| ${Math.abs(got - want).toExponential(2)}`);
    expect(Math.abs(got - want)).toBeLessThan(1e-5);
  });

  it("reproduces fd_clip_normalised_real_vs_fake (L2-normalised embeddings)", () => {
    const want = clipExpected().fd_clip_normalised_real_vs_fake;
    const norm = (m: FeatureMatrix): FeatureMatrix => ({ n: m.n, d: m.d, data: Float32Array.from(l2NormalisedRows(m)) });
    const got = frechetDistanceFromFeatures(norm(embeds("real")), norm(embeds("fake")));
    console.log(`fd_clip_normalised: ${got} vs ${want}, |diff| ${Math.abs(got - want).toExponential(2)}`);
    expect(Math.abs(got - want)).toBeLessThan(1e-5);
  });
});
