import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/io/decode.js";
import {
  CLIP_MEAN,
  CLIP_PREPROCESS_224,
  CLIP_STD,
  clipConfigFromPreprocessorJson,
  clipResizeCrop,
  clipResizeSize,
  preprocessClip,
} from "../../src/preprocess/clip.js";
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

describe("CLIPImageProcessor configuration", () => {
  it("reads clip-tiny's preprocessor_config.json: shortest edge 224, crop 224, OpenAI mean/std", () => {
    const p = fixture("encoders", "clip-tiny", "preprocessor_config.json");
    const cfg = clipConfigFromPreprocessorJson(JSON.parse(readFileSync(p, "utf8")), p);
    expect(cfg).toEqual({ size: 224, crop: 224, mean: [...CLIP_MEAN], std: [...CLIP_STD] });
    expect(cfg.mean).toEqual([...CLIP_PREPROCESS_224.mean]);
    expect(cfg.std).toEqual([...CLIP_PREPROCESS_224.std]);
  });

  it("refuses a configuration it does not reproduce", () => {
    expect(() => clipConfigFromPreprocessorJson({ size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 }, image_mean: [0, 0, 0], image_std: [1, 1, 1], resample: 2 })).toThrow(/CLIPImageProcessor/);
  });

  it("resizes the shortest edge and truncates the long one as int(size * long / short)", () => {
    expect(clipResizeSize(512, 384, 224)).toEqual([298, 224]); // 224 * 512 / 384 = 298.67
    expect(clipResizeSize(384, 512, 224)).toEqual([224, 298]);
    expect(clipResizeSize(128, 128, 224)).toEqual([224, 224]);
    expect(clipResizeSize(31, 17, 224)).toEqual([408, 224]); // 408.47
  });

  it("crops at round((h - crop) / 2) with Python's ties-to-even round, as torchvision's center_crop", () => {
    // A 224 x 227 image: no resize (short side already 224); (227 - 224) / 2 = 1.5 rounds to 2.
    const w = 224;
    const h = 227;
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) data.fill(y, y * w * 3, (y + 1) * w * 3);
    const out = clipResizeCrop({ width: w, height: h, data });
    expect(out.width).toBe(224);
    expect(out.data[0]).toBe(2);
    expect(out.data[out.data.length - 1]).toBe(225);
  });
});

describe.each([0, 1, 2])("fixture image %i", (i) => {
  it("equals CLIPImageProcessor's pixel_values within 1e-5", () => {
    const ref = loadNpy(fixture("encoders", "reference", `clip_input_${i}.npy`));
    expect(ref.shape).toEqual([1, 3, 224, 224]);
    const x = preprocessClip(images[i]);
    const diff = maxAbsDiff(x, ref.data);
    console.log(`clip_input_${i}: ${images[i].width}x${images[i].height}, max |diff| ${diff}`);
    expect(diff).toBeLessThan(1e-5);
    expect(diff).toBe(0); // reached: bit-exact
  });

  it("differs from Pillow's 8-bit resize by one level in some pixels (the reference used torch's)", () => {
    const a = clipResizeCrop(images[i], CLIP_PREPROCESS_224, "torch").data;
    const b = clipResizeCrop(images[i], CLIP_PREPROCESS_224, "pil").data;
    let maxd = 0;
    for (let k = 0; k < a.length; k++) maxd = Math.max(maxd, Math.abs(a[k] - b[k]));
    expect(maxd).toBe(1);
  });
});
