/**
 * pytorch-fid's input pipeline (pytorch-fid 0.3.0): `ToTensor` (uint8 / 255 in float32), then in
 * `InceptionV3.forward` `F.interpolate(x, size=(299, 299), mode="bilinear",
 * align_corners=False)` (no antialias) and `2 * x - 1`.
 *
 * torch's CPU bilinear kernel (torch 1.13 ATen `UpSample.h` `area_pixel_compute_scale`,
 * `area_pixel_compute_source_index`, `compute_source_index_and_lambda`; `cpu/UpSampleKernel.cpp`
 * `HelperInterpLinear` and the `Interpolate` recursion, height outermost), float32 input:
 * - scale = (float)in / out, a float32;
 * - source index = scale * (dst + 0.5) - 0.5 (the 0.5 literals make this a double expression),
 *   clamped at 0 (`cubic=false`); i0 = trunc(src), i1 = min(i0 + 1, in - 1);
 * - w1 = (float)(src - i0) from the double index, w0 = 1 - w1 in float;
 * - per output: t0 = fma(x00, wx0, x01 * wx1), t1 = fma(x10, wx0, x11 * wx1),
 *   value = fma(t0, wy0, t1 * wy1): torch's AVX2 build lets the compiler contract
 *   `a * w0 + b * w1` into a fused multiply-add, and that is what its float32 results show.
 * This reproduces the fixture tensors (torch 1.13.1, x86-64 CPU) bit for bit; the weight and
 * fma details were settled against them (computing the index in float32, or without fma, moves
 * results by up to 1.6e-5 and 2.4e-7 respectively).
 */
import type { RgbImage } from "../io/decode.js";

export const LEGACY_PYTORCH_SIZE = 299;

interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

const tapCache = new Map<string, LinearTaps>();

/** Source indices and weights of torch's bilinear (align_corners=False) along one axis; cached. */
export function torchLinearTaps(inSize: number, outSize: number): LinearTaps {
  const key = `${inSize}:${outSize}`;
  let t = tapCache.get(key);
  if (t) return t;
  t = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), w0: new Float32Array(outSize), w1: new Float32Array(outSize) };
  const scale = outSize > 1 ? Math.fround(inSize / outSize) : 0;
  for (let i = 0; i < outSize; i++) {
    let src = scale * (i + 0.5) - 0.5; // double, as in C: float * (int64 + 0.5)
    if (src < 0) src = 0;
    const i0 = Math.trunc(src);
    t.i0[i] = i0;
    t.i1[i] = i0 < inSize - 1 ? i0 + 1 : i0;
    const w1 = Math.fround(src - i0);
    t.w1[i] = w1;
    t.w0[i] = Math.fround(1 - w1);
  }
  tapCache.set(key, t);
  return t;
}

/** ToTensor's x / 255 in float32, for every uint8 value. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** The network input: CHW 3 x size x size float32 in [-1, 1]. */
export function preprocessLegacyPytorch(img: RgbImage, size = LEGACY_PYTORCH_SIZE): Float32Array {
  const tx = torchLinearTaps(img.width, size);
  const ty = torchLinearTaps(img.height, size);
  const firstRow = ty.i0[0];
  const rows = horizontalMix(img, tx, firstRow, ty.i1[size - 1] + 1, size);
  const out = new Float32Array(3 * size * size);
  const f = Math.fround;
  const rowLen = size * 3;
  for (let y = 0; y < size; y++) {
    const p0 = (ty.i0[y] - firstRow) * rowLen;
    const p1 = (ty.i1[y] - firstRow) * rowLen;
    const wy0 = ty.w0[y];
    const wy1 = ty.w1[y];
    for (let i = 0; i < rowLen; i++) {
      const v = fmaf(rows[p0 + i], wy0, f(rows[p1 + i] * wy1));
      // channel i % 3, column i / 3; 2 * v is exact, the float32 store rounds the subtraction
      out[(i % 3) * size * size + y * size + ((i / 3) | 0)] = 2 * v - 1;
    }
  }
  return out;
}

/**
 * The inner (width) step of torch's 2D interpolation, t = fma(x0, wx0, x1 * wx1), for every input
 * row in [first, last): it depends on the row and output column only, so each is computed once.
 * Returns (last - first) x size x 3 float32, channels interleaved.
 */
function horizontalMix(img: RgbImage, tx: LinearTaps, first: number, last: number, size: number): Float32Array {
  const { width, data } = img;
  const out = new Float32Array((last - first) * size * 3);
  const f = Math.fround;
  let o = 0;
  for (let r = first; r < last; r++) {
    const row = r * width;
    for (let x = 0; x < size; x++) {
      const p0 = (row + tx.i0[x]) * 3;
      const p1 = (row + tx.i1[x]) * 3;
      const wx0 = tx.w0[x];
      const wx1 = tx.w1[x];
      for (let c = 0; c < 3; c++) out[o++] = fmaf(UNIT[data[p0 + c]], wx0, f(UNIT[data[p1 + c]] * wx1));
    }
  }
  return out;
}

/**
 * float32 fused multiply-add, fmaf(a, b, c) = round32(a * b + c) with one rounding. The product of
 * two float32 values is exact in double; the double sum may be inexact, and rounding that to
 * float32 can differ from one correct rounding only when the double sum sits exactly halfway
 * between two float32 values, which is checked with an error-free TwoSum.
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s) return r;
  const m = s - r; // exact (Sterbenz)
  const other = s + m; // the float32 on the far side of s, if s is a midpoint
  if (Math.fround(other) !== other) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // s + err == p + c exactly
  if (err === 0) return r; // a true tie: round(s) already applied ties-to-even
  return (err > 0) === (m > 0) ? other : r;
}
