/**
 * Multi-scale structural similarity (Z. Wang, E. P. Simoncelli and A. C. Bovik, "Multiscale
 * structural similarity for image quality assessment", 37th Asilomar Conference, 2003), and the
 * MS-SSIM diversity of a set of generated images (the mean MS-SSIM of random pairs, as used for
 * GANs by Odena et al., "Conditional image synthesis with auxiliary classifier GANs", ICML 2017:
 * lower mean = more diverse).
 *
 * Conventions (pytorch-msssim's `ms_ssim`, tf.image.ssim_multiscale, torchmetrics; where they
 * differ, which one is followed is said):
 * - Pixel values 0..255, data range L = 255, C1 = (0.01 L)^2, C2 = (0.03 L)^2.
 * - Local statistics under an 11-tap Gaussian window, sigma 1.5, normalised to sum 1, applied
 *   separably and only where it fits inside the image ("valid": no padding), in float64.
 * - SSIM map = l * cs with l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) and
 *   cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2), each averaged over the valid region.
 * - 5 scales with Wang et al.'s weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]:
 *   MS-SSIM = prod_{j<5} cs_j^w_j * ssim_5^w_5; between scales a 2 x 2 average pool.
 * - Negative cs or ssim values (anti-correlated structure) are clamped to 0 before the fractional
 *   powers, as pytorch-msssim and torchmetrics (normalize="relu", its default) do; the original
 *   MATLAB code leaves them negative, where the power is undefined.
 * - Colour: MS-SSIM of each RGB channel separately, then the mean of the three (pytorch-msssim's
 *   per-channel product then `mean`). torchmetrics instead averages cs and ssim over channels
 *   before the product; the two agree on grey images and differ slightly on colour ones.
 * - Odd sizes: the 2 x 2 pool drops a last odd row or column (torch's avg_pool2d without padding,
 *   as torchmetrics). pytorch-msssim pads odd sizes with zeros that count in the average and TF
 *   pads symmetrically: the three differ only on images whose sides are not multiples of 16.
 * - Too small: the coarsest scale (side >> 4) must still hold the 11-pixel window, so both sides
 *   must be at least 176 px; smaller images are refused (E_IMAGE_TOO_SMALL) rather than scored
 *   on fewer scales, whose values would not be comparable.
 *
 * The diversity metric brings images of any size to one square size first (default 256): a
 * centre crop to the largest square, then Pillow's 8-bit bicubic resize (preprocess/pil-resample.ts,
 * i.e. `img.crop(box).resize((256, 256), Image.BICUBIC)`); 128 px images are upsampled.
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../types.js";
import { resizePil8 } from "../preprocess/pil-resample.js";
import { createRng, randomPairs } from "../random/rng.js";

/** Wang et al. 2003, Table 1 (as in tf.image.ssim_multiscale's `_MSSSIM_WEIGHTS`). */
export const MS_SSIM_WEIGHTS: readonly number[] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

const WINDOW_SIZE = 11;
const WINDOW_SIGMA = 1.5;
const DATA_RANGE = 255;
const C1 = (0.01 * DATA_RANGE) ** 2;
const C2 = (0.03 * DATA_RANGE) ** 2;

/** Smallest side with all 5 scales: (side >> 4) >= 11. */
export const MS_SSIM_MIN_SIDE = WINDOW_SIZE << (MS_SSIM_WEIGHTS.length - 1);

/** The default common size of the diversity metric. */
export const MS_SSIM_DIVERSITY_SIZE = 256;

const WINDOW = gaussianWindow(WINDOW_SIZE, WINDOW_SIGMA);

/** exp(-x^2 / (2 sigma^2)) at x = -(size-1)/2 .. (size-1)/2, normalised to sum 1 (MATLAB fspecial). */
export function gaussianWindow(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  const half = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - half) ** 2) / (2 * sigma * sigma));
    sum += w[i];
  }
  for (let i = 0; i < size; i++) w[i] /= sum;
  return w;
}

/** MS-SSIM of two RGB images of equal size (each side >= 176 px), in [0, 1]; 1 for identical images. */
export function msSsim(a: RgbImage, b: RgbImage): number {
  assertComparable(a, b);
  let sum = 0;
  for (let c = 0; c < 3; c++) sum += msSsimPlane(channelPlane(a, c), channelPlane(b, c), a.width, a.height);
  return sum / 3;
}

function assertComparable(a: RgbImage, b: RgbImage): void {
  if (a.width !== b.width || a.height !== b.height) {
    throw new DiffevalError(
      "E_IMAGE_SIZE_MISMATCH",
      `MS-SSIM compares images of one size, got ${a.width}x${a.height} and ${b.width}x${b.height}; ` +
        `resize them first (msSsimDiversity does: centre crop and bicubic resize to ${MS_SSIM_DIVERSITY_SIZE} px)`,
    );
  }
  if (Math.min(a.width, a.height) < MS_SSIM_MIN_SIDE) {
    throw new DiffevalError(
      "E_IMAGE_TOO_SMALL",
      `MS-SSIM needs both sides >= ${MS_SSIM_MIN_SIDE} px (5 scales of an ${WINDOW_SIZE}-px window), got ` +
        `${a.width}x${a.height}; upsample the images (e.g. msSsimDiversity's resize to ${MS_SSIM_DIVERSITY_SIZE})`,
    );
  }
}

/** One channel of an HWC RGB image as a float64 plane. */
function channelPlane(img: RgbImage, c: number): Float64Array {
  const n = img.width * img.height;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = img.data[i * 3 + c];
  return out;
}

/** prod_{j<5} max(cs_j, 0)^w_j * max(ssim_5, 0)^w_5 of one channel. */
function msSsimPlane(x: Float64Array, y: Float64Array, w: number, h: number): number {
  const levels = MS_SSIM_WEIGHTS.length;
  let value = 1;
  for (let s = 0; s < levels; s++) {
    const { ssim, cs } = ssimAndCs(x, y, w, h);
    const term = s < levels - 1 ? cs : ssim;
    value *= Math.max(term, 0) ** MS_SSIM_WEIGHTS[s];
    if (s < levels - 1) {
      x = halve(x, w, h);
      y = halve(y, w, h);
      w >>= 1;
      h >>= 1;
    }
  }
  return value;
}

/** 2 x 2 average pool, stride 2; a last odd row or column is dropped. */
function halve(src: Float64Array, w: number, h: number): Float64Array {
  const ow = w >> 1;
  const oh = h >> 1;
  const out = new Float64Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    const r0 = 2 * y * w;
    const r1 = r0 + w;
    for (let x = 0; x < ow; x++) {
      out[y * ow + x] = (src[r0 + 2 * x] + src[r0 + 2 * x + 1] + src[r1 + 2 * x] + src[r1 + 2 * x + 1]) / 4;
    }
  }
  return out;
}

/**
 * Mean SSIM and mean contrast-structure term over the valid region of one scale (exported as the
 * single-scale SSIM building block, robustness/image-similarity.ts). The five
 * filtered maps (mu_x, mu_y, E[x^2], E[y^2], E[xy]) come from a horizontal pass over the rows,
 * then a vertical pass whose results are consumed at once, so only five horizontal maps are held.
 * Both passes fold the window's symmetry (g[5 - t] = g[5 + t]).
 */
export function ssimAndCs(x: Float64Array, y: Float64Array, w: number, h: number): { ssim: number; cs: number } {
  const half = WINDOW_SIZE >> 1;
  const g = WINDOW;
  const ow = w - WINDOW_SIZE + 1;
  const oh = h - WINDOW_SIZE + 1;
  const hx = new Float64Array(h * ow);
  const hy = new Float64Array(h * ow);
  const hxx = new Float64Array(h * ow);
  const hyy = new Float64Array(h * ow);
  const hxy = new Float64Array(h * ow);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < ow; c++) {
      const m = r * w + c + half;
      const a0 = x[m];
      const b0 = y[m];
      const g0 = g[half];
      let sx = g0 * a0, sy = g0 * b0, sxx = g0 * (a0 * a0), syy = g0 * (b0 * b0), sxy = g0 * (a0 * b0);
      for (let t = 1; t <= half; t++) {
        const gt = g[half - t];
        const a1 = x[m - t], a2 = x[m + t];
        const b1 = y[m - t], b2 = y[m + t];
        sx += gt * (a1 + a2);
        sy += gt * (b1 + b2);
        sxx += gt * (a1 * a1 + a2 * a2);
        syy += gt * (b1 * b1 + b2 * b2);
        sxy += gt * (a1 * b1 + a2 * b2);
      }
      const o = r * ow + c;
      hx[o] = sx;
      hy[o] = sy;
      hxx[o] = sxx;
      hyy[o] = syy;
      hxy[o] = sxy;
    }
  }
  let ssimSum = 0;
  let csSum = 0;
  for (let r = 0; r < oh; r++) {
    for (let c = 0; c < ow; c++) {
      const m = (r + half) * ow + c;
      const g0 = g[half];
      let mx = g0 * hx[m], my = g0 * hy[m], exx = g0 * hxx[m], eyy = g0 * hyy[m], exy = g0 * hxy[m];
      for (let t = 1; t <= half; t++) {
        const gt = g[half - t];
        const u = m - t * ow;
        const v = m + t * ow;
        mx += gt * (hx[u] + hx[v]);
        my += gt * (hy[u] + hy[v]);
        exx += gt * (hxx[u] + hxx[v]);
        eyy += gt * (hyy[u] + hyy[v]);
        exy += gt * (hxy[u] + hxy[v]);
      }
      const vx = exx - mx * mx;
      const vy = eyy - my * my;
      const cov = exy - mx * my;
      const cs = (2 * cov + C2) / (vx + vy + C2);
      csSum += cs;
      ssimSum += ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * cs;
    }
  }
  const count = ow * oh;
  return { ssim: ssimSum / count, cs: csSum / count };
}

export interface MsSsimDiversityOptions {
  /** Random pairs to score (default 100); capped at n(n-1)/2, when every pair is used. */
  pairs?: number;
  /** Seed of the pair draw (default 0; random.ts). */
  seed?: number;
  /** Common square side the images are brought to (default 256, at least 176). */
  size?: number;
}

export interface MsSsimDiversity {
  /** Mean MS-SSIM over the pairs: lower means more diverse. */
  mean: number;
  /** Population standard deviation (ddof = 0) over the pairs. */
  std: number;
  /** Number of pairs scored. */
  pairs: number;
}

/**
 * Mean and spread of MS-SSIM over seeded random distinct pairs (i < j) of images, after each image
 * is centre-cropped and bicubic-resized to `size` x `size`. Each image is prepared once. Cost:
 * ~20 ms per pair at 256 px (three channels, five scales; one core of the 2-core machine), so
 * the default 100 pairs take ~2 s plus one resize per image drawn.
 */
export function msSsimDiversity(images: readonly RgbImage[], opts: MsSsimDiversityOptions = {}): MsSsimDiversity {
  const { pairs, size } = diversityPlan(images.length, opts);
  const prepared = new Map<number, RgbImage>();
  const prepare = (i: number): RgbImage => {
    let img = prepared.get(i);
    if (img === undefined) prepared.set(i, (img = centreCropResize(images[i], size)));
    return img;
  };
  return summarise(pairs.map(([i, j]) => msSsim(prepare(i), prepare(j))));
}

/**
 * The same as msSsimDiversity for `count` images that are loaded on demand (decoded from files):
 * only the images drawn into pairs are loaded, one pair at a time, so memory stays bounded.
 */
export async function msSsimDiversityLazy(
  count: number,
  load: (i: number) => Promise<RgbImage>,
  opts: MsSsimDiversityOptions = {},
): Promise<MsSsimDiversity> {
  const { pairs, size } = diversityPlan(count, opts);
  const values: number[] = [];
  for (const [i, j] of pairs) {
    const [a, b] = await Promise.all([load(i), load(j)]);
    values.push(msSsim(centreCropResize(a, size), centreCropResize(b, size)));
  }
  return summarise(values);
}

/** Validates the options and draws the seeded pairs (random.ts). */
function diversityPlan(count: number, opts: MsSsimDiversityOptions): { pairs: Array<[number, number]>; size: number } {
  const { pairs: wanted = 100, seed = 0, size = MS_SSIM_DIVERSITY_SIZE } = opts;
  if (count < 2) throw new DiffevalError("E_TOO_FEW_SAMPLES", `MS-SSIM diversity needs at least 2 images, got ${count}`);
  if (!Number.isInteger(wanted) || wanted < 1) throw new DiffevalError("E_USAGE", `pairs must be a positive integer, got ${wanted}`);
  if (!Number.isInteger(size) || size < MS_SSIM_MIN_SIDE) {
    throw new DiffevalError("E_USAGE", `size must be an integer >= ${MS_SSIM_MIN_SIDE} (5 MS-SSIM scales), got ${size}`);
  }
  return { pairs: randomPairs(createRng(seed), count, wanted), size };
}

function summarise(values: number[]): MsSsimDiversity {
  return { mean: mean(values), std: populationStd(values), pairs: values.length };
}

/**
 * The largest centred square (offsets rounded down, as `(w - s) // 2`), resized to size x size by
 * Pillow's 8-bit bicubic filter; returned as is when it already has that size.
 */
export function centreCropResize(img: RgbImage, size: number): RgbImage {
  const side = Math.min(img.width, img.height);
  const x0 = (img.width - side) >> 1;
  const y0 = (img.height - side) >> 1;
  let square = img;
  if (img.width !== side || img.height !== side) {
    const data = new Uint8Array(side * side * 3);
    for (let r = 0; r < side; r++) {
      const src = ((y0 + r) * img.width + x0) * 3;
      data.set(img.data.subarray(src, src + side * 3), r * side * 3);
    }
    square = { width: side, height: side, data };
  }
  if (side === size) return square;
  return { width: size, height: size, data: resizePil8(square.data, side, side, 3, size, size, "bicubic") };
}

function mean(v: readonly number[]): number {
  let s = 0;
  for (const x of v) s += x;
  return s / v.length;
}

function populationStd(v: readonly number[]): number {
  const m = mean(v);
  let s = 0;
  for (const x of v) s += (x - m) ** 2;
  return Math.sqrt(s / v.length);
}
