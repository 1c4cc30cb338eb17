import { describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/io/decode.js";
import { gaussianWindow } from "../../src/metrics/ms-ssim.js";
import { psnr, ssim } from "../../src/robustness/image-similarity.js";
import { codeOf } from "../helpers/errors.js";
import { xorshift32 } from "../helpers/xorshift.js";

function randomImage(width: number, height: number, seed: number): RgbImage {
  const next = xorshift32(seed);
  const data = new Uint8Array(width * height * 3);
  // smooth-ish content: a gradient plus noise, so that the SSIM terms are far from trivial
  for (let i = 0; i < data.length; i++) data[i] = Math.min(255, ((i / 3) % width) * 2 + (next() % 64));
  return { width, height, data };
}

function perturbed(img: RgbImage, amplitude: number, seed: number): RgbImage {
  const next = xorshift32(seed);
  const data = img.data.map((v) => Math.max(0, Math.min(255, v + (next() % (2 * amplitude + 1)) - amplitude)));
  return { ...img, data };
}

/** Wang et al. 2004 eq. 13 straight from the definition: 2-D window at every valid position, per channel. */
function ssimByDefinition(a: RgbImage, b: RgbImage): number {
  const g = gaussianWindow(11, 1.5);
  const C1 = (0.01 * 255) ** 2;
  const C2 = (0.03 * 255) ** 2;
  let total = 0;
  for (let c = 0; c < 3; c++) {
    let sum = 0;
    let count = 0;
    for (let y = 0; y + 11 <= a.height; y++) {
      for (let x = 0; x + 11 <= a.width; x++) {
        let mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (let j = 0; j < 11; j++) {
          for (let i = 0; i < 11; i++) {
            const w = g[i] * g[j];
            const k = 3 * ((y + j) * a.width + x + i) + c;
            const p = a.data[k];
            const q = b.data[k];
            mx += w * p; my += w * q; xx += w * p * p; yy += w * q * q; xy += w * p * q;
          }
        }
        const vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my;
        sum += ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
        count++;
      }
    }
    total += sum / count;
  }
  return total / 3;
}

describe("psnr", () => {
  it("is 10 log10(255^2 / MSE) over all samples and +Infinity for identical images", () => {
    const a = randomImage(20, 16, 1);
    const b = { ...a, data: a.data.map((v) => (v === 255 ? 254 : v + 1)) }; // every sample off by exactly 1
    expect(psnr(a, b)).toBeCloseTo(10 * Math.log10(255 * 255), 12); // 48.1308 dB
    expect(psnr(a, a)).toBe(Infinity);
  });

  it("falls as the error grows", () => {
    const a = randomImage(32, 32, 2);
    expect(psnr(a, perturbed(a, 2, 3))).toBeGreaterThan(psnr(a, perturbed(a, 8, 3)));
  });
});

describe("ssim", () => {
  it("equals the definition (11-tap Gaussian, sigma 1.5, valid window, mean of RGB channels)", () => {
    const a = randomImage(37, 29, 4);
    const b = perturbed(a, 12, 5);
    const value = ssim(a, b);
    expect(value).toBeGreaterThan(0.2);
    expect(value).toBeLessThan(0.99);
    expect(Math.abs(value - ssimByDefinition(a, b))).toBeLessThan(1e-12);
  });

  it("is 1 for identical images and refuses images smaller than its window or of different sizes", () => {
    const a = randomImage(16, 16, 6);
    expect(ssim(a, a)).toBeCloseTo(1, 12);
    expect(codeOf(() => ssim(randomImage(10, 30, 1), randomImage(10, 30, 2)))).toBe("E_IMAGE_TOO_SMALL");
    expect(codeOf(() => ssim(a, randomImage(16, 17, 1)))).toBe("E_IMAGE_SIZE_MISMATCH");
  });
});
