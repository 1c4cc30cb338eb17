import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/io/decode.js";
import { resizeClean } from "../../src/preprocess/clean.js";
import { DEFAULT_PROTOCOL, PROTOCOLS, getProtocol } from "../../src/preprocess/protocols.js";
import { isDiffevalError } from "../../src/errors.js";
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

function ref(name: string): Float32Array {
  return loadNpy(fixture("reference", name)).data as Float32Array;
}

describe.each([0, 1, 2])("fixture image %i", (i) => {
  it("legacy-pytorch tensor equals pytorch-fid's input within 1e-5", () => {
    const diff = maxAbsDiff(getProtocol("legacy-pytorch").preprocess(images[i]), ref(`input_legacy_pytorch_${i}.npy`));
    expect(diff).toBeLessThan(1e-5);
    expect(diff).toBe(0); // reached: bit-exact with torch 1.13's CPU kernel
  });

  it("legacy-tensorflow tensor equals torch-fidelity's input within 1e-5", () => {
    const diff = maxAbsDiff(getProtocol("legacy-tensorflow").preprocess(images[i]), ref(`input_legacy_tensorflow_${i}.npy`));
    expect(diff).toBeLessThan(1e-5);
    expect(diff).toBe(0); // reached: bit-exact with torch-fidelity's float32 arithmetic
  });

  it("clean resize equals clean-fid's Pillow BICUBIC output (0..255)", () => {
    const diff = maxAbsDiff(resizeClean(images[i]), ref(`resized_clean_${i}.npy`));
    expect(diff).toBeLessThan(1e-3);
    expect(diff).toBe(0); // reached: bit-exact with Pillow 9.4's float resampler
  });

  it("clean tensor is (resized - 128) / 128 in CHW order", () => {
    const resized = ref(`resized_clean_${i}.npy`);
    const x = getProtocol("clean").preprocess(images[i]);
    const plane = 299 * 299;
    const expected = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) expected[c * plane + p] = (resized[p * 3 + c] - 128) / 128;
    expect(maxAbsDiff(x, expected)).toBe(0);
  });
});

describe("protocol registry", () => {
  it("defaults to clean and lists all three protocols with their weights and input size", () => {
    expect(DEFAULT_PROTOCOL).toBe("clean");
    expect(getProtocol().name).toBe("clean");
    expect(Object.keys(PROTOCOLS).sort()).toEqual(["clean", "legacy-pytorch", "legacy-tensorflow"]);
    for (const p of Object.values(PROTOCOLS)) {
      expect(p.weights).toBe("pt_inception-2015-12-05");
      expect(p.inputSize).toBe(299);
      expect(p.preprocess(images[0])).toHaveLength(3 * 299 * 299);
    }
  });

  it("an unknown name gives E_PROTOCOL listing the valid names", () => {
    let err: unknown;
    try {
      getProtocol("fancy");
    } catch (e) {
      err = e;
    }
    expect(isDiffevalError(err, "E_PROTOCOL")).toBe(true);
    expect((err as Error).message).toMatch(/fancy.*clean, legacy-pytorch, legacy-tensorflow/);
  });

  it("does not mistake Object.prototype keys for protocols", () => {
    expect(() => getProtocol("toString")).toThrow(/unknown protocol/);
  });
});
