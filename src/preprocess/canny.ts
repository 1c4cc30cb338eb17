/**
 * Canny edge maps exactly as OpenCV 4.6's `cv2.Canny(img, low, high)` computes them with its
 * defaults (apertureSize 3, L2gradient false) on a 3-channel uint8 image, as ControlNet's canny
 * annotator calls it. The steps follow OpenCV's imgproc/src/canny.cpp (facts, not code):
 *
 * 1. Sobel 3x3 derivatives per channel (int16), BORDER_REPLICATE: Canny's Sobel calls pass it, and
 *    its row stripes are views into the whole image, so only the image's own edge is replicated.
 * 2. Per pixel the channel whose |gx| + |gy| is largest (the first one on a tie: OpenCV replaces
 *    the running maximum only on `>`), keeping that channel's gx and gy.
 * 3. Non-maximum suppression in four directions with OpenCV's 15-bit fixed-point tangent test
 *    (TG22 = round(tan(22.5 deg) * 2^15) = 13573), against a magnitude buffer with a zero border.
 *    The comparisons are asymmetric as in OpenCV: `m > left && m >= right` (horizontal),
 *    `m > above && m >= below` (vertical), strict on both sides for the diagonals.
 * 4. A candidate needs `m > low`; it is a seed (strong edge) when `m > high`, else a weak one;
 *    low and high are swapped when low > high and floored to integers, as OpenCV does.
 * 5. Hysteresis: weak pixels 8-connected to a strong one, through weak ones, become edges.
 *
 * Returns one byte per pixel, 255 for an edge and 0 elsewhere (cv2.Canny's output).
 */
import type { RgbImage } from "../types.js";

/** tan(22.5 degrees) in 15-bit fixed point, OpenCV's TG22. */
const TG22 = 13573;

/** Pixel states of the hysteresis map (OpenCV's 0/1/2: candidate, not an edge, edge). */
const WEAK = 0;
const NONE = 1;
const EDGE = 2;

export interface CannyThresholds {
  low: number;
  high: number;
}

/** The binary (0/255) Canny edge map of an RGB image, row-major width x height. */
export function cannyEdges(img: RgbImage, thresholds: CannyThresholds): Uint8Array {
  const { width: w, height: h } = img;
  const { low, high } = integerThresholds(thresholds);
  const { mag, gx, gy } = strongestChannelGradient(img);
  const map = suppressedMap(w, h, mag, gx, gy, low, high);
  return hysteresis(w, h, map);
}

/** OpenCV's threshold handling: swapped when low > high, floored (the magnitudes are integers). */
function integerThresholds({ low, high }: CannyThresholds): { low: number; high: number } {
  if (!Number.isFinite(low) || !Number.isFinite(high)) throw new RangeError(`Canny thresholds must be finite, got ${low}, ${high}`);
  const [a, b] = low > high ? [high, low] : [low, high];
  return { low: Math.floor(a), high: Math.floor(b) };
}

/**
 * Per pixel: |gx| + |gy| of the channel where it is largest, with that channel's gx and gy.
 * `mag` is (w + 2) x (h + 2) with a zero border, so that the suppression reads zeros off the image.
 */
function strongestChannelGradient(img: RgbImage): { mag: Int32Array; gx: Int16Array; gy: Int16Array } {
  const { width: w, height: h, data } = img;
  const mw = w + 2;
  const mag = new Int32Array(mw * (h + 2));
  const gx = new Int16Array(w * h);
  const gy = new Int16Array(w * h);
  const at = (x: number, y: number, c: number) => data[(y * w + x) * 3 + c];
  for (let y = 0; y < h; y++) {
    const ym = y > 0 ? y - 1 : 0;
    const yp = y < h - 1 ? y + 1 : h - 1;
    for (let x = 0; x < w; x++) {
      const xm = x > 0 ? x - 1 : 0;
      const xp = x < w - 1 ? x + 1 : w - 1;
      let best = -1;
      let bx = 0;
      let by = 0;
      for (let c = 0; c < 3; c++) {
        // Sobel dx: [-1 0 1] across, [1 2 1] down; dy: the transpose.
        const dx = at(xp, ym, c) - at(xm, ym, c) + 2 * (at(xp, y, c) - at(xm, y, c)) + at(xp, yp, c) - at(xm, yp, c);
        const dy = at(xm, yp, c) - at(xm, ym, c) + 2 * (at(x, yp, c) - at(x, ym, c)) + at(xp, yp, c) - at(xp, ym, c);
        const m = Math.abs(dx) + Math.abs(dy);
        if (m > best) {
          best = m;
          bx = dx;
          by = dy;
        }
      }
      mag[(y + 1) * mw + x + 1] = best;
      gx[y * w + x] = bx;
      gy[y * w + x] = by;
    }
  }
  return { mag, gx, gy };
}

/**
 * The hysteresis map after non-maximum suppression: EDGE for seeds (m > high), WEAK for the other
 * local maxima above low, NONE elsewhere; (w + 2) x (h + 2) with a NONE border.
 */
function suppressedMap(w: number, h: number, mag: Int32Array, gx: Int16Array, gy: Int16Array, low: number, high: number): Uint8Array {
  const mw = w + 2;
  const map = new Uint8Array(mw * (h + 2)).fill(NONE);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y + 1) * mw + x + 1;
      const m = mag[i];
      if (m <= low || !isLocalMaximum(mag, i, mw, gx[y * w + x], gy[y * w + x])) continue;
      map[i] = m > high ? EDGE : WEAK;
    }
  }
  return map;
}

/** OpenCV's four-direction test: is m a maximum across the edge (along the gradient)? */
function isLocalMaximum(mag: Int32Array, i: number, mw: number, xs: number, ys: number): boolean {
  const m = mag[i];
  const x = Math.abs(xs);
  const y = Math.abs(ys) * 32768; // << 15
  const tg22x = x * TG22;
  if (y < tg22x) return m > mag[i - 1] && m >= mag[i + 1]; // gradient near horizontal
  const tg67x = tg22x + x * 65536; // tan(67.5) = tan(22.5) + 2, << 16 for the 2
  if (y > tg67x) return m > mag[i - mw] && m >= mag[i + mw]; // near vertical
  // Diagonal: up-left/down-right when gx and gy have the same sign, else up-right/down-left.
  const s = (xs < 0) !== (ys < 0) ? -1 : 1;
  return m > mag[i - mw - s] && m > mag[i + mw + s];
}

/** Grows the seeds through 8-connected weak pixels; 255 for an edge, 0 elsewhere, w x h. */
function hysteresis(w: number, h: number, map: Uint8Array): Uint8Array {
  const mw = w + 2;
  const stack: number[] = [];
  for (let i = 0; i < map.length; i++) if (map[i] === EDGE) stack.push(i);
  const neighbours = [-mw - 1, -mw, -mw + 1, -1, 1, mw - 1, mw, mw + 1];
  while (stack.length > 0) {
    const i = stack.pop()!;
    for (const d of neighbours) {
      if (map[i + d] === WEAK) {
        map[i + d] = EDGE;
        stack.push(i + d);
      }
    }
  }
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (map[(y + 1) * mw + x + 1] === EDGE) out[y * w + x] = 255;
  return out;
}
