/**
 * Pillow's convolution resampler, reproduced operation for operation from Pillow 9.4
 * `src/libImaging/Resample.c` (`precompute_coeffs`, `ImagingResampleInner` and the `_32bpc` /
 * `_8bpc` passes) so that `Image.resize` results are matched bit for bit:
 *
 * - Separable: a horizontal pass (rows ybox_first..ybox_last only) into a temporary image, then a
 *   vertical pass. A pass is skipped when that dimension keeps its size (`need_horizontal`,
 *   `need_vertical`).
 * - Coefficients in double: `scale = in / out`, `filterscale = max(scale, 1)` (the antialias:
 *   when shrinking, the kernel is stretched by the shrink factor), `support = filter.support *
 *   filterscale`, for output pixel xx: `center = (xx + 0.5) * scale`, input range
 *   `[trunc(center - support + 0.5), trunc(center + support + 0.5))` clipped to the image,
 *   weights `filter((x - center + 0.5) / filterscale)` normalised to sum 1.
 * - Float ("F" mode) path: each output is a double sum of float32 inputs times double weights,
 *   stored as float32 after each pass.
 * - 8-bit path: weights rounded to fixed point with PRECISION_BITS = 32 - 8 - 2 = 22 bits
 *   (`normalize_coeffs_8bpc`: round half away from zero), integer sums started at 1 << 21
 *   (rounding), shifted down and clipped to 0..255 after each pass.
 * Compiled C without FMA contraction (Debian's x86-64 build) does exactly these double
 * operations, which JavaScript numbers reproduce.
 */

export type PilFilter = "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

interface FilterDef {
  support: number;
  fn: (x: number) => number;
}

/** Resample.c `box_filter` (Pillow >= 9.1: the interval is (-0.5, 0.5]). */
function boxFilter(x: number): number {
  return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

function bilinearFilter(x: number): number {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/** Resample.c `hamming_filter`; the 0.54/0.46 literals are float (`0.54f`) in the C source. */
function hammingFilter(x: number): number {
  if (x < 0.0) x = -x;
  if (x === 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * Math.PI;
  return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
}

/** Resample.c `bicubic_filter`: Keys' cubic convolution with a = -0.5, same operation order. */
function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

function sincFilter(x: number): number {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

/** Resample.c `lanczos_filter`: truncated sinc, 3 lobes. */
function lanczosFilter(x: number): number {
  if (-3.0 <= x && x < 3.0) return sincFilter(x) * sincFilter(x / 3);
  return 0.0;
}

const FILTERS: Record<PilFilter, FilterDef> = {
  box: { support: 0.5, fn: boxFilter },
  bilinear: { support: 1.0, fn: bilinearFilter },
  hamming: { support: 1.0, fn: hammingFilter },
  bicubic: { support: 2.0, fn: bicubicFilter },
  lanczos: { support: 3.0, fn: lanczosFilter },
};

/** One pass's taps: output i reads `count[i]` inputs from `start[i]` with `weights[i * ksize + j]`. */
export interface PilCoefficients {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
}

const coeffCache = new Map<string, PilCoefficients>();
const fixedCache = new Map<string, Int32Array>();

/** Resample.c `precompute_coeffs` for the whole input range (box = (0, inSize)); cached. */
export function pilCoefficients(inSize: number, outSize: number, filter: PilFilter): PilCoefficients {
  const key = `${filter}:${inSize}:${outSize}`;
  let c = coeffCache.get(key);
  if (!c) {
    c = computeCoefficients(inSize, outSize, FILTERS[filter]);
    coeffCache.set(key, c);
  }
  return c;
}

function computeCoefficients(inSize: number, outSize: number, filter: FilterDef): PilCoefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0.0;
    const k = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      weights[k + x] = w;
      ww += w;
    }
    if (ww !== 0.0) for (let x = 0; x < xmax; x++) weights[k + x] /= ww;
    start[xx] = xmin;
    count[xx] = Math.max(0, xmax);
  }
  return { ksize, start, count, weights };
}

/**
 * Pillow's "F"-mode (float32) resize of one channel, `Image.resize((outW, outH), filter)`.
 * `src` is row-major h x w; returns row-major outH x outW.
 */
export function resizePilFloat(
  src: Float32Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
  filter: PilFilter,
): Float32Array {
  if (src.length !== w * h) throw new RangeError(`resizePilFloat: ${src.length} values for ${w}x${h}`);
  const vert = pilCoefficients(h, outH, filter);
  let img = src;
  let rowOffset = 0; // the source row that row 0 of `img` holds
  if (outW !== w) {
    const first = vert.start[0];
    const last = vert.start[outH - 1] + vert.count[outH - 1];
    img = horizontalFloat(src, w, first, last, outW, pilCoefficients(w, outW, filter));
    rowOffset = first;
  }
  if (outH !== h) return verticalFloat(img, outW, rowOffset, outH, vert);
  return img === src ? src.slice() : img;
}

/** `ImagingResampleHorizontal_32bpc`, FLOAT32 case: rows [first, last) of src. */
function horizontalFloat(
  src: Float32Array,
  w: number,
  first: number,
  last: number,
  outW: number,
  c: PilCoefficients,
): Float32Array {
  const out = new Float32Array(outW * (last - first));
  const { ksize, start, count, weights } = c;
  for (let y = first; y < last; y++) {
    const row = y * w;
    const o = (y - first) * outW;
    for (let xx = 0; xx < outW; xx++) {
      const s = row + start[xx];
      const k = xx * ksize;
      const n = count[xx];
      let ss = 0.0;
      for (let x = 0; x < n; x++) ss += src[s + x] * weights[k + x];
      out[o + xx] = ss; // float32 store, as IMAGING_PIXEL_F
    }
  }
  return out;
}

/** `ImagingResampleVertical_32bpc`, FLOAT32 case; `rowOffset` = source row of img's row 0. */
function verticalFloat(
  img: Float32Array,
  w: number,
  rowOffset: number,
  outH: number,
  c: PilCoefficients,
): Float32Array {
  const out = new Float32Array(w * outH);
  const { ksize, start, count, weights } = c;
  for (let yy = 0; yy < outH; yy++) {
    const k = yy * ksize;
    const y0 = start[yy] - rowOffset;
    const n = count[yy];
    const o = yy * w;
    for (let xx = 0; xx < w; xx++) {
      let ss = 0.0;
      for (let y = 0; y < n; y++) ss += img[(y0 + y) * w + xx] * weights[k + y];
      out[o + xx] = ss;
    }
  }
  return out;
}

/**
 * The float ("F") resize applied to each band of an interleaved 3-band image at once: exactly
 * `resizePilFloat` per band (same operations, same order), in one sweep over the pixels.
 * `src` is HWC (uint8 values are read as the float32 they convert to exactly); returns HWC
 * float32 outH x outW x 3.
 */
export function resizePilFloatRgb(
  src: Uint8Array | Float32Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
  filter: PilFilter,
): Float32Array {
  if (src.length !== w * h * 3) throw new RangeError(`resizePilFloatRgb: ${src.length} values for ${w}x${h}x3`);
  const vert = pilCoefficients(h, outH, filter);
  let img: Uint8Array | Float32Array = src;
  let rowOffset = 0;
  if (outW !== w) {
    const first = vert.start[0];
    const last = vert.start[outH - 1] + vert.count[outH - 1];
    img = horizontalFloatRgb(src, w, first, last, outW, pilCoefficients(w, outW, filter));
    rowOffset = first;
  }
  if (outH !== h) return verticalFloatRgb(img, outW, rowOffset, outH, vert);
  return Float32Array.from(img);
}

function horizontalFloatRgb(
  src: Uint8Array | Float32Array,
  w: number,
  first: number,
  last: number,
  outW: number,
  c: PilCoefficients,
): Float32Array {
  const out = new Float32Array(outW * (last - first) * 3);
  const { ksize, start, count, weights } = c;
  for (let y = first; y < last; y++) {
    const row = y * w;
    let o = (y - first) * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      let p = (row + start[xx]) * 3;
      const k = xx * ksize;
      const n = count[xx];
      let s0 = 0.0;
      let s1 = 0.0;
      let s2 = 0.0;
      for (let x = 0; x < n; x++, p += 3) {
        const wt = weights[k + x];
        s0 += src[p] * wt;
        s1 += src[p + 1] * wt;
        s2 += src[p + 2] * wt;
      }
      out[o++] = s0;
      out[o++] = s1;
      out[o++] = s2;
    }
  }
  return out;
}

function verticalFloatRgb(
  img: Uint8Array | Float32Array,
  w: number,
  rowOffset: number,
  outH: number,
  c: PilCoefficients,
): Float32Array {
  const rowLen = w * 3;
  const out = new Float32Array(rowLen * outH);
  const { ksize, start, count, weights } = c;
  for (let yy = 0; yy < outH; yy++) {
    const k = yy * ksize;
    const base = (start[yy] - rowOffset) * rowLen;
    const n = count[yy];
    let o = yy * rowLen;
    for (let xx = 0; xx < rowLen; xx += 3) {
      let s0 = 0.0;
      let s1 = 0.0;
      let s2 = 0.0;
      for (let y = 0, p = base + xx; y < n; y++, p += rowLen) {
        const wt = weights[k + y];
        s0 += img[p] * wt;
        s1 += img[p + 1] * wt;
        s2 += img[p + 2] * wt;
      }
      out[o++] = s0;
      out[o++] = s1;
      out[o++] = s2;
    }
  }
  return out;
}

/** PRECISION_BITS in Resample.c: 8 bits for the result, 2 for overflow, 22 of fraction. */
const PRECISION_BITS = 32 - 8 - 2;

/** `normalize_coeffs_8bpc`: weights to fixed point, rounded half away from zero. */
function fixedCoefficients(inSize: number, outSize: number, filter: PilFilter): Int32Array {
  const key = `${filter}:${inSize}:${outSize}`;
  let kk = fixedCache.get(key);
  if (!kk) {
    const c = pilCoefficients(inSize, outSize, filter);
    kk = new Int32Array(c.weights.length);
    const one = 1 << PRECISION_BITS;
    for (let i = 0; i < kk.length; i++) {
      const v = c.weights[i];
      kk[i] = v < 0 ? Math.trunc(-0.5 + v * one) : Math.trunc(0.5 + v * one);
    }
    fixedCache.set(key, kk);
  }
  return kk;
}

/** Resample.c `clip8`: the sum shifted down by PRECISION_BITS, clipped to 0..255. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Pillow's 8-bit resize (modes L, RGB, RGBA... as `Image.resize` on uint8 images; no alpha
 * premultiplication here, so for RGBA/LA use it only on images without transparency).
 * `src` is HWC interleaved with `channels` bands; returns HWC outH x outW x channels.
 */
export function resizePil8(
  src: Uint8Array,
  w: number,
  h: number,
  channels: number,
  outW: number,
  outH: number,
  filter: PilFilter,
): Uint8Array {
  if (src.length !== w * h * channels) throw new RangeError(`resizePil8: ${src.length} bytes for ${w}x${h}x${channels}`);
  const vert = pilCoefficients(h, outH, filter);
  let img = src;
  let rowOffset = 0;
  if (outW !== w) {
    const first = vert.start[0];
    const last = vert.start[outH - 1] + vert.count[outH - 1];
    img = horizontal8(src, w, channels, first, last, outW, pilCoefficients(w, outW, filter), fixedCoefficients(w, outW, filter));
    rowOffset = first;
  }
  if (outH !== h) return vertical8(img, outW, channels, rowOffset, outH, vert, fixedCoefficients(h, outH, filter));
  return img === src ? src.slice() : img;
}

function horizontal8(
  src: Uint8Array,
  w: number,
  ch: number,
  first: number,
  last: number,
  outW: number,
  c: PilCoefficients,
  kk: Int32Array,
): Uint8Array {
  const out = new Uint8Array(outW * (last - first) * ch);
  const { ksize, start, count } = c;
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = first; y < last; y++) {
    const row = y * w * ch;
    const o = (y - first) * outW * ch;
    for (let xx = 0; xx < outW; xx++) {
      const k = xx * ksize;
      const n = count[xx];
      const s = row + start[xx] * ch;
      for (let b = 0; b < ch; b++) {
        let ss = half;
        for (let x = 0; x < n; x++) ss += src[s + x * ch + b] * kk[k + x];
        out[o + xx * ch + b] = clip8(ss);
      }
    }
  }
  return out;
}

function vertical8(
  img: Uint8Array,
  w: number,
  ch: number,
  rowOffset: number,
  outH: number,
  c: PilCoefficients,
  kk: Int32Array,
): Uint8Array {
  const rowLen = w * ch;
  const out = new Uint8Array(rowLen * outH);
  const { ksize, start, count } = c;
  const acc = new Float64Array(rowLen);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outH; yy++) {
    const k = yy * ksize;
    const y0 = start[yy] - rowOffset;
    const n = count[yy];
    acc.fill(half);
    for (let y = 0; y < n; y++) {
      const wt = kk[k + y];
      const row = (y0 + y) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += img[row + i] * wt;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return out;
}
