import { describe, expect, it } from "vitest";
import { NumpyRandomState } from "../../src/random/numpy-random.js";

// Reference values printed by numpy (legacy np.random.RandomState, unchanged since numpy 1.0):
// RandomState(s)._bit_generator.random_raw(3), RandomState(s).permutation(n), RandomState(2020).choice(...).
describe("NumpyRandomState", () => {
  it("reproduces MT19937's raw stream (5489 is the reference implementation's default seed)", () => {
    const a = new NumpyRandomState(5489);
    expect([a.nextUint32(), a.nextUint32(), a.nextUint32()]).toEqual([3499211612, 581869302, 3890346734]);
    const b = new NumpyRandomState(2020);
    expect([b.nextUint32(), b.nextUint32(), b.nextUint32()]).toEqual([4236026720, 639299976, 3751189827]);
  });

  it("permutation(32) with seed 2020 is the order torch-fidelity shuffles Inception-Score logits in", () => {
    expect(Array.from(new NumpyRandomState(2020).permutation(32))).toEqual([
      14, 17, 20, 21, 25, 2, 15, 18, 1, 13, 23, 30, 4, 12, 28, 5, 6, 26, 11, 19, 9, 10, 31, 16, 24, 7, 27, 29, 22, 3, 8, 0,
    ]);
  });

  it("matches numpy's permutation for other seeds and sizes, the largest seed included", () => {
    expect(Array.from(new NumpyRandomState(0).permutation(10))).toEqual([2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
    expect(Array.from(new NumpyRandomState(4294967295).permutation(7))).toEqual([1, 5, 0, 6, 4, 2, 3]);
    const p = new NumpyRandomState(7).permutation(1000); // crosses several 624-word state refills
    expect(Array.from(p.subarray(0, 12))).toEqual([778, 334, 271, 802, 216, 408, 812, 94, 487, 170, 24, 242]);
    let weighted = 0;
    for (let i = 0; i < p.length; i++) weighted += p[i] * i;
    expect(weighted).toBe(246202311); // numpy: (p * arange(1000)).sum()
  });

  it("choice without replacement takes the head of a permutation and advances the stream", () => {
    const r = new NumpyRandomState(2020);
    expect(Array.from(r.choiceWithoutReplacement(32, 5))).toEqual([14, 17, 20, 21, 25]);
    expect(Array.from(r.choiceWithoutReplacement(50, 5))).toEqual([46, 44, 33, 45, 13]);
  });

  it("draws numpy's uniform doubles and legacy Gaussians (randn) exactly", () => {
    expect(sample(new NumpyRandomState(12345), (r) => r.nextDouble(), 3)).toEqual([
      0.9296160928171479, 0.3163755545817859, 0.18391881167709445,
    ]);
    expect(Array.from(new NumpyRandomState(0).randn(5))).toEqual([1.764052345967664, 0.4001572083672233, 0.9787379841057392, 2.240893199201458, 1.8675579901499675]);
    // An odd count leaves the pair's second value cached: the next call returns it.
    const r = new NumpyRandomState(5);
    r.randn(3);
    expect(r.gauss()).toBe(-0.2520921296030769);
    // Many draws (rejections and state refills included), the largest seed.
    const many = new NumpyRandomState(4294967295).randn(2001);
    expect(many[2000]).toBe(-0.6381570355087288);
    expect(many.reduce((a, b) => a + b, 0)).toBeCloseTo(14.374797842802465, 9);
  });

  it("rejects seeds numpy rejects", () => {
    expect(() => new NumpyRandomState(-1)).toThrow(/seed/);
    expect(() => new NumpyRandomState(2 ** 32)).toThrow(/seed/);
    expect(() => new NumpyRandomState(1.5)).toThrow(/seed/);
  });
});

function sample(r: NumpyRandomState, draw: (r: NumpyRandomState) => number, n: number): number[] {
  return Array.from({ length: n }, () => draw(r));
}
