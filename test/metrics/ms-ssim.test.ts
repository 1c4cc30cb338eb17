import { readFileSync, readdirSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError, type ErrorCode } from "../../src/errors.js";
import { decodeImage, type RgbImage } from "../../src/io/decode.js";
import { centreCropResize, MS_SSIM_MIN_SIDE, MS_SSIM_WEIGHTS, msSsim, msSsimDiversity } from "../../src/metrics/ms-ssim.js";
import { createRng } from "../../src/random/rng.js";
import { fixture } from "../helpers/fixtures.js";

async function load(set: string, name: string): Promise<RgbImage> {
  return decodeImage(new Uint8Array(readFileSync(fixture("images", set, name))), name);
}

function constantImage(width: number, height: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, data };
}

function crop(img: RgbImage, x0: number, y0: number, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    const src = ((y0 + r) * img.width + x0) * 3;
    data.set(img.data.subarray(src, src + width * 3), r * width * 3);
  }
  return { width, height, data };
}

/** img + N(0, sigma^2) per value, rounded and clipped to 0..255 (seeded). */
function noisy(img: RgbImage, sigma: number, seed: number): RgbImage {
  const rng = createRng(seed);
  const data = img.data.map((v) => Math.min(255, Math.max(0, Math.round(v + sigma * rng.normal()))));
  return { ...img, data };
}

function expectCode(f: () => unknown, code: ErrorCode): void {
  try {
    f();
    expect.unreachable();
  } catch (e) {
    expect(isDiffevalError(e, code), String(e)).toBe(true);
  }
}

let real1: RgbImage; // real_0001.png, 512 x 384
let fake0: RgbImage; // fake_0000.jpg, 512 x 384
let realSet: RgbImage[];

beforeAll(async () => {
  real1 = await load("real", "real_0001.png");
  fake0 = await load("fake", "fake_0000.jpg");
  const names = readdirSync(fixture("images", "real")).sort();
  realSet = await Promise.all(names.map((n) => load("real", n)));
});

describe("msSsim", () => {
  it("is 1 for an image with itself", () => {
    expect(Math.abs(msSsim(real1, real1) - 1)).toBeLessThanOrEqual(1e-12);
    const sq = centreCropResize(realSet[0], 256); // a 128 px image brought to 256
    expect(Math.abs(msSsim(sq, sq) - 1)).toBeLessThanOrEqual(1e-12);
  });

  it("falls with added noise, further with more", () => {
    const light = msSsim(real1, noisy(real1, 5, 1));
    const heavy = msSsim(real1, noisy(real1, 25, 2));
    expect(light).toBeLessThan(1);
    expect(light).toBeGreaterThan(0.9);
    expect(heavy).toBeLessThan(light - 0.05);
    expect(msSsim(noisy(real1, 5, 1), real1)).toBeCloseTo(light, 14); // symmetric
  });

  it("reduces to the luminance term of the coarsest scale on constant images (by hand)", () => {
    // No variance anywhere: cs = C2 / C2 = 1 at every scale, ssim_5 = l = (2ab + C1) / (a^2 + b^2 + C1),
    // C1 = (0.01 * 255)^2 = 6.5025; per channel l^0.1333, then the mean over R, G, B.
    const a = constantImage(200, 190, [100, 30, 200]);
    const b = constantImage(200, 190, [150, 30, 0]);
    const c1 = 6.5025;
    const l = (p: number, q: number) => (2 * p * q + c1) / (p * p + q * q + c1);
    const expected = (l(100, 150) ** 0.1333 + 1 + l(200, 0) ** 0.1333) / 3;
    expect(msSsim(a, b)).toBeCloseTo(expected, 12);
    expect(expected).toBeCloseTo(0.7673, 4); // (0.98939 + 1 + 0.31255) / 3: 200 vs 0 in blue dominates
  });

  it("agrees with an independent numpy implementation on a fixture pair", () => {
    // /tmp reference (numpy 1.x, float64): the same definition written independently, with the
    // full 11 x 11 outer-product window (121 shifted slices, not separable passes), reshape-mean
    // pooling, per-channel products then the mean:
    //   g = exp(-(arange(11)-5)**2 / 4.5); g /= g.sum(); w = outer(g, g)
    //   filt(img) = sum_ij w[i,j] * img[i:i+H-10, j:j+W-10]
    //   cs = (2*(f(xy)-mx*my) + C2) / (f(xx)-mx**2 + f(yy)-my**2 + C2); ssim = l * cs (means)
    //   v = prod_{s<4} max(cs_s,0)**w_s * max(ssim_4,0)**w_4; down(a) = a[:H//2*2,:W//2*2]
    //       .reshape(H//2,2,W//2,2).mean((1,3)); result = mean over channels
    // on the decoded pixels of real_0001.png and fake_0000.jpg (512 x 384):
    expect(msSsim(real1, fake0)).toBeCloseTo(0.39157593098785526, 13);
    // and on a 201 x 187 crop at (5, 7) of both: odd sizes, last row/column dropped when pooling
    expect(msSsim(crop(real1, 5, 7, 201, 187), crop(fake0, 5, 7, 201, 187))).toBeCloseTo(0.30381062852456764, 13);
  });

  it("uses Wang et al.'s five weights", () => {
    expect(MS_SSIM_WEIGHTS).toEqual([0.0448, 0.2856, 0.3001, 0.2363, 0.1333]);
    expect(MS_SSIM_MIN_SIDE).toBe(176);
  });

  it("refuses images below 176 px or of different sizes", () => {
    expectCode(() => msSsim(crop(real1, 0, 0, 175, 300), crop(real1, 0, 0, 175, 300)), "E_IMAGE_TOO_SMALL");
    expect(() => msSsim(crop(real1, 0, 0, 176, 176), crop(fake0, 0, 0, 176, 176))).not.toThrow();
    expectCode(() => msSsim(real1, crop(fake0, 0, 0, 512, 380)), "E_IMAGE_SIZE_MISMATCH");
  });
});

describe("centreCropResize", () => {
  it("takes the centred square, and resizes only when its side differs", () => {
    const sq = centreCropResize(real1, 384); // 512 x 384 -> columns 64..447, no resize
    expect([sq.width, sq.height]).toEqual([384, 384]);
    expect(Buffer.compare(sq.data, crop(real1, 64, 0, 384, 384).data)).toBe(0);
    const up = centreCropResize(realSet[0], 256); // 128 x 128 -> bicubic upsample
    expect([up.width, up.height, up.data.length]).toEqual([256, 256, 256 * 256 * 3]);
  });
});

describe("msSsimDiversity", () => {
  it("scores seeded random pairs of mixed-size images, reproducibly", () => {
    const r = msSsimDiversity(realSet, { pairs: 12, seed: 3 });
    expect(r.pairs).toBe(12);
    expect(r.mean).toBeGreaterThan(0.02);
    expect(r.mean).toBeLessThan(0.6); // unrelated photographs
    expect(r.std).toBeGreaterThan(0);
    expect(msSsimDiversity(realSet, { pairs: 12, seed: 3 })).toEqual(r);
    expect(msSsimDiversity(realSet, { pairs: 12, seed: 4 }).mean).not.toBe(r.mean);
  });

  it("rates noisy copies of one image as far less diverse than distinct photographs", () => {
    const copies = [1, 2, 3, 4, 5, 6].map((s) => noisy(real1, 10, s));
    const collapsed = msSsimDiversity(copies, { pairs: 10 });
    const diverse = msSsimDiversity(realSet, { pairs: 10 });
    expect(collapsed.mean).toBeGreaterThan(0.8);
    expect(collapsed.mean).toBeGreaterThan(diverse.mean + 0.3);
  });

  it("uses every pair when fewer exist than asked, and gives 1 +- 0 for identical images", () => {
    const same = msSsimDiversity([real1, real1, real1]);
    expect(same.pairs).toBe(3);
    expect(same.mean).toBe(1);
    expect(same.std).toBe(0);
  });

  it("refuses fewer than two images and a common size below 176", () => {
    expectCode(() => msSsimDiversity([real1]), "E_TOO_FEW_SAMPLES");
    expectCode(() => msSsimDiversity([real1, fake0], { size: 160 }), "E_USAGE");
  });
});
