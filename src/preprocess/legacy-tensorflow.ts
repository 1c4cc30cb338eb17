/**
 * The original TTUR / TF1 Inception input: TF1 `ResizeBilinear` with align_corners=False and no
 * half-pixel centres on 0..255 values, then `(x - 128) / 128`. Reproduced as torch-fidelity
 * 0.4.0 does it (`interpolate_compat_tensorflow.py`, `interpolate_bilinear_2d_like_tensorflow1x`,
 * method "slow", which is bit-exact with TF on CPU; `feature_extractor_inceptionv3.py` for the
 * normalisation), all in float32:
 * - scale = in / out (Python double, then a float32 tensor);
 * - src = i * scale (float32), lo = trunc(src), hi = min(lo + 1, in - 1), d = src - lo;
 * - row mix: a + (b - a) * dx, then the same between the two rows with dy.
 * Note the missing half-pixel offset: TF1 samples at i * scale, so the image shifts by up to
 * half an input pixel compared with torch's and Pillow's resizes.
 */
import type { RgbImage } from "../io/decode.js";

export const LEGACY_TENSORFLOW_SIZE = 299;

interface TfTaps {
  lo: Int32Array;
  hi: Int32Array;
  d: Float32Array;
}

const tapCache = new Map<string, TfTaps>();

/** TF1 ResizeBilinear taps along one axis (align_corners=False, no half-pixel centres); cached. */
export function tf1LinearTaps(inSize: number, outSize: number): TfTaps {
  const key = `${inSize}:${outSize}`;
  let t = tapCache.get(key);
  if (t) return t;
  t = { lo: new Int32Array(outSize), hi: new Int32Array(outSize), d: new Float32Array(outSize) };
  const scale = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.fround(i * scale);
    const lo = Math.trunc(src);
    t.lo[i] = lo;
    t.hi[i] = Math.min(lo + 1, inSize - 1);
    t.d[i] = Math.fround(src - lo);
  }
  tapCache.set(key, t);
  return t;
}

/** The network input: CHW 3 x size x size float32, (resized - 128) / 128. */
export function preprocessLegacyTensorflow(img: RgbImage, size = LEGACY_TENSORFLOW_SIZE): Float32Array {
  const tx = tf1LinearTaps(img.width, size);
  const ty = tf1LinearTaps(img.height, size);
  const firstRow = ty.lo[0];
  const rows = horizontalMix(img, tx, firstRow, ty.hi[size - 1] + 1, size);
  const out = new Float32Array(3 * size * size);
  const f = Math.fround;
  const rowLen = size * 3;
  for (let y = 0; y < size; y++) {
    const p0 = (ty.lo[y] - firstRow) * rowLen;
    const p1 = (ty.hi[y] - firstRow) * rowLen;
    const dy = ty.d[y];
    for (let i = 0; i < rowLen; i++) {
      const top = rows[p0 + i];
      const v = f(top + f(f(rows[p1 + i] - top) * dy));
      out[(i % 3) * size * size + y * size + ((i / 3) | 0)] = f(v - 128) / 128;
    }
  }
  return out;
}

/**
 * in_0 = in_00 + (in_01 - in_00) * dx for every input row in [first, last) (torch-fidelity's
 * `resample_manually`, first step): computed once per row and output column.
 * Returns (last - first) x size x 3 float32, channels interleaved.
 */
function horizontalMix(img: RgbImage, tx: TfTaps, first: number, last: number, size: number): Float32Array {
  const { width, data } = img;
  const out = new Float32Array((last - first) * size * 3);
  const f = Math.fround;
  let o = 0;
  for (let r = first; r < last; r++) {
    const row = r * width;
    for (let x = 0; x < size; x++) {
      const p0 = (row + tx.lo[x]) * 3;
      const p1 = (row + tx.hi[x]) * 3;
      const dx = tx.d[x];
      for (let c = 0; c < 3; c++) {
        const a = data[p0 + c];
        out[o++] = f(a + f((data[p1 + c] - a) * dx)); // integer differences are exact in float32
      }
    }
  }
  return out;
}
