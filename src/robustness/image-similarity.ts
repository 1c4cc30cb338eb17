/**
 * How close an image is to its compressed copy, in the two numbers people quote for "visually
 * identical": PSNR and SSIM. Both compare 8-bit RGB pixels as decoded for the features
 * (io/decode.ts), images of the same size.
 *
 * - PSNR = 10 log10(255^2 / MSE), MSE over all H x W x 3 samples (scikit-image's
 *   `peak_signal_noise_ratio(a, b, data_range=255)` on the RGB array). Identical images give
 *   +Infinity.
 * - SSIM: Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error visibility to
 *   structural similarity", IEEE TIP 13(4), 2004, eq. 13 with K1 = 0.01, K2 = 0.03, L = 255, local
 *   statistics under an 11-tap Gaussian window of sigma 1.5, only where the window fits ("valid"),
 *   mean over the map. Colour: each RGB channel separately, then the mean of the three, which is
 *   pytorch-msssim's `ssim(X, Y, data_range=255)`. Not the same number as Wang's MATLAB ssim.m
 *   (grey only, and it first downsamples by round(min(H, W) / 256)) nor scikit-image's default
 *   (7 x 7 uniform window); the window code is shared with MS-SSIM (metrics/ms-ssim.ts).
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../io/decode.js";
import { ssimAndCs } from "../metrics/ms-ssim.js";

const SSIM_WINDOW = 11;

export function psnr(a: RgbImage, b: RgbImage): number {
  assertSameSize(a, b, "PSNR");
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = a.data[i] - b.data[i];
    sum += d * d;
  }
  const mse = sum / a.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** Mean single-scale SSIM over the three channels, in [-1, 1]; 1 for identical images. */
export function ssim(a: RgbImage, b: RgbImage): number {
  assertSameSize(a, b, "SSIM");
  if (Math.min(a.width, a.height) < SSIM_WINDOW) {
    throw new DiffevalError("E_IMAGE_TOO_SMALL", `SSIM needs both sides >= ${SSIM_WINDOW} px (its window), got ${a.width}x${a.height}`);
  }
  let sum = 0;
  for (let c = 0; c < 3; c++) sum += ssimAndCs(channelPlane(a, c), channelPlane(b, c), a.width, a.height).ssim;
  return sum / 3;
}

function channelPlane(img: RgbImage, c: number): Float64Array {
  const n = img.width * img.height;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = img.data[3 * i + c];
  return out;
}

function assertSameSize(a: RgbImage, b: RgbImage, what: string): void {
  if (a.width !== b.width || a.height !== b.height) {
    throw new DiffevalError("E_IMAGE_SIZE_MISMATCH", `${what} compares images of one size, got ${a.width}x${a.height} and ${b.width}x${b.height}`);
  }
}
