import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/io/decode.js";
import { dinov2Resize, preprocessDinov2 } from "../../src/preprocess/dinov2.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";

const FILES = ["real_0000.png", "real_0001.png", "real_0002.png"];
const images: RgbImage[] = [];

beforeAll(async () => {
  for (const f of FILES) {
    const p = fixture("images", "real", f);
    images.push(await decodeImage(new Uint8Array(readFileSync(p)), p));
  }
});

describe.each([0, 1, 2])("fixture image %i", (i) => {
  it("equals dgm-eval's DINOv2 transform within 1e-5", () => {
    const ref = loadNpy(fixture("encoders", "reference", `dinov2_input_${i}.npy`));
    expect(ref.shape).toEqual([1, 3, 224, 224]);
    const x = preprocessDinov2(images[i]);
    const diff = maxAbsDiff(x, ref.data);
    console.log(`dinov2_input_${i}: ${images[i].width}x${images[i].height}, max |diff| ${diff}`);
    expect(diff).toBeLessThan(1e-5);
  });
});

describe("resize", () => {
  it("squashes to 224 x 224 without keeping the aspect ratio", () => {
    const img = { width: 40, height: 10, data: new Uint8Array(40 * 10 * 3).fill(77) };
    const r = dinov2Resize(img);
    expect([r.width, r.height]).toEqual([224, 224]);
    expect(r.data.every((v) => v === 77)).toBe(true);
  });

  it("maps a flat image to (v / 255 - mean) / std per channel, channels first", () => {
    const img = { width: 224, height: 224, data: new Uint8Array(224 * 224 * 3) };
    for (let p = 0; p < 224 * 224; p++) img.data.set([255, 0, 128], p * 3);
    const x = preprocessDinov2(img);
    const plane = 224 * 224;
    expect(x[0]).toBeCloseTo((1 - 0.485) / 0.229, 5);
    expect(x[plane]).toBeCloseTo((0 - 0.456) / 0.224, 5);
    expect(x[2 * plane + plane - 1]).toBeCloseTo((128 / 255 - 0.406) / 0.225, 5);
  });
});
