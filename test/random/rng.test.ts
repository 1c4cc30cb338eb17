import { describe, expect, it } from "vitest";
import { createRng, fillNormal, pairFromIndex, randomInt, randomPairs, rngFromState, sampleWithoutReplacement } from "../../src/random/rng.js";

describe("createRng", () => {
  it("repeats its sequence for a seed and changes it with the seed", () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const sa = Array.from({ length: 8 }, () => a.uint32());
    const sb = Array.from({ length: 8 }, () => b.uint32());
    const sc = Array.from({ length: 8 }, () => c.uint32());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    for (const v of sa) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
  });

  it("separates seeds beyond 32 bits", () => {
    expect(createRng(2 ** 32).uint32()).not.toBe(createRng(0).uint32());
  });

  it("draws uniforms in [0, 1) with the moments of U(0, 1)", () => {
    const rng = createRng(1);
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      s += u;
      s2 += u * u;
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(s / n).toBeCloseTo(0.5, 2); // sd of the mean: 0.29 / sqrt(n) = 6.5e-4
    expect(s2 / n - (s / n) ** 2).toBeCloseTo(1 / 12, 3);
  });

  it("draws normals with mean 0, variance 1 and P(Z < 1) = 0.8413", () => {
    const z = fillNormal(createRng(7), new Float64Array(200_000));
    let s = 0;
    let s2 = 0;
    let below = 0;
    for (const v of z) {
      s += v;
      s2 += v * v;
      if (v < 1) below++;
    }
    const n = z.length;
    expect(Math.abs(s / n)).toBeLessThan(0.01); // 4.5 sd
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.015); // sd of the variance: sqrt(2/n) = 0.0032
    expect(Math.abs(below / n - 0.8413447460685429)).toBeLessThan(0.004);
  });
});

describe("randomInt", () => {
  it("hits every value of a small range about equally often", () => {
    const rng = createRng(3);
    const counts = [0, 0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 70_000; i++) counts[randomInt(rng, 7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500); // 5 sd
  });
});

describe("sampleWithoutReplacement", () => {
  it("returns k distinct values in range, and a permutation when k = n", () => {
    const rng = createRng(5);
    const s = sampleWithoutReplacement(rng, 1_000_000_000, 1000);
    expect(new Set(s).size).toBe(1000);
    for (const v of s) expect(v >= 0 && v < 1e9 && Number.isInteger(v)).toBe(true);
    const p = sampleWithoutReplacement(rng, 50, 50);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(p).not.toEqual(Array.from({ length: 50 }, (_, i) => i)); // shuffled
  });

  it("draws each item with probability k/n", () => {
    const rng = createRng(9);
    const counts = new Array(10).fill(0);
    for (let t = 0; t < 20_000; t++) for (const v of sampleWithoutReplacement(rng, 10, 3)) counts[v]++;
    for (const c of counts) expect(Math.abs(c - 6000)).toBeLessThan(350); // sd ~65
  });
});

describe("randomPairs", () => {
  it("gives distinct pairs i < j, and all pairs when more are asked than exist", () => {
    const pairs = randomPairs(createRng(11), 40, 300);
    expect(pairs).toHaveLength(300);
    expect(new Set(pairs.map(([i, j]) => `${i},${j}`)).size).toBe(300);
    for (const [i, j] of pairs) expect(0 <= i && i < j && j < 40).toBe(true);
    const all = randomPairs(createRng(11), 4, 100);
    expect(all.map(([i, j]) => `${i},${j}`).sort()).toEqual(["0,1", "0,2", "0,3", "1,2", "1,3", "2,3"]);
  });

  it("decodes pair numbers exactly, also far out", () => {
    const decoded: Array<[number, number]> = [];
    const expected: Array<[number, number]> = [];
    let t = 0;
    for (let j = 1; j < 200; j++) {
      for (let i = 0; i < j; i++) {
        decoded.push(pairFromIndex(t++));
        expected.push([i, j]);
      }
    }
    expect(decoded).toEqual(expected);
    const j = 3_000_000;
    expect(pairFromIndex((j * (j - 1)) / 2 + 17)).toEqual([17, j]);
    expect(pairFromIndex((j * (j + 1)) / 2 - 1)).toEqual([j - 1, j]);
  });
});

describe("rngFromState", () => {
  it("reproduces xoshiro128**'s outputs from state {1, 2, 3, 4}", () => {
    // The first outputs of the reference C code (Blackman & Vigna, xoshiro128starstar.c) from this
    // state; the first two are checkable by hand: rotl(2 * 5, 7) * 9 = 11520, then s[1] = 0.
    const rng = rngFromState([1, 2, 3, 4]);
    const out = Array.from({ length: 10 }, () => rng.uint32());
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  });
});
