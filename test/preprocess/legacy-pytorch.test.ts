import { describe, expect, it } from "vitest";
import { fmaf, torchLinearTaps } from "../../src/preprocess/legacy-pytorch.js";

describe("fmaf", () => {
  it("rounds once, even where rounding the double sum to float32 would round twice", () => {
    const a = 1 + 2 ** -23;
    const b = 2 ** -24 * (1 - 2 ** -23); // a * b = 2^-24 - 2^-70 exactly
    const c = 1 + 2 ** -23;
    // The exact sum lies just below the midpoint of 1 + 2^-23 and 1 + 2^-22; the double sum is
    // the midpoint itself, which ties-to-even would round up.
    expect(Math.fround(a * b + c)).toBe(1 + 2 ** -22);
    expect(fmaf(a, b, c)).toBe(1 + 2 ** -23);
  });

  it("agrees with plain rounding when the double sum is exact", () => {
    expect(fmaf(0.5, 0.25, 0.125)).toBe(0.25);
    expect(fmaf(Math.fround(0.1), Math.fround(0.3), Math.fround(0.7))).toBe(Math.fround(Math.fround(0.1) * Math.fround(0.3) + Math.fround(0.7)));
  });
});

describe("torchLinearTaps", () => {
  it("follows align_corners=False: half-pixel centres, clamped at the edges", () => {
    const t = torchLinearTaps(2, 4); // scale 0.5: sources -0.25 -> 0, 0.25, 0.75, 1.25
    expect(Array.from(t.i0)).toEqual([0, 0, 0, 1]);
    expect(Array.from(t.i1)).toEqual([1, 1, 1, 1]);
    expect(Array.from(t.w1)).toEqual([0, 0.25, 0.75, 0.25]);
    expect(Array.from(t.w0)).toEqual([1, 0.75, 0.25, 0.75]);
  });
});
