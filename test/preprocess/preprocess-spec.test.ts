import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { CLIP_PREPROCESS_224, CLIP_PREPROCESS_336, preprocessClip } from "../../src/preprocess/clip.js";
import { preprocessDinov2 } from "../../src/preprocess/dinov2.js";
import { preprocessImage, preprocessInputSize, preprocessName, type PreprocessSpec } from "../../src/preprocess/preprocess-spec.js";
import { PROTOCOLS, type ProtocolName } from "../../src/preprocess/protocols.js";
import { fixture } from "../helpers/fixtures.js";

/** Bit-for-bit equality of two tensors (toEqual walks large typed arrays element by element: slow). */
function sameTensor(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const odd = { size: 256, crop: 240, mean: [0.5, 0.25, 0.125], std: [0.2, 0.3, 0.4] } as const;

describe("preprocessName keeps the names results and caches recorded before the tagged union", () => {
  it("names every FID protocol by its protocol name", () => {
    for (const p of Object.keys(PROTOCOLS) as ProtocolName[]) expect(preprocessName({ kind: "fid", protocol: p })).toBe(p);
  });

  it("names CLIP and DINOv2 preprocessings as before", () => {
    const cases: [PreprocessSpec, string][] = [
      [{ kind: "clip", config: CLIP_PREPROCESS_224 }, "clip"],
      [{ kind: "clip", config: CLIP_PREPROCESS_336 }, "clip-336"],
      [{ kind: "clip", config: { ...CLIP_PREPROCESS_224, crop: 200 } }, "clip-224-200-m0.48145466,0.4578275,0.40821073-s0.26862954,0.26130258,0.27577711"],
      [{ kind: "clip", config: odd }, "clip-256-240-m0.5,0.25,0.125-s0.2,0.3,0.4"],
      [{ kind: "dinov2", size: 224 }, "dinov2"],
      [{ kind: "dinov2", size: 448 }, "dinov2-448"],
    ];
    for (const [spec, name] of cases) expect(preprocessName(spec)).toBe(name);
  });

  it("gives each preprocessing's input side", () => {
    expect(preprocessInputSize({ kind: "fid", protocol: "legacy-tensorflow" })).toBe(299);
    expect(preprocessInputSize({ kind: "clip", config: odd })).toBe(240);
    expect(preprocessInputSize({ kind: "dinov2", size: 448 })).toBe(448);
  });
});

describe("a structured clone of the spec (what a worker thread receives)", () => {
  it("names and preprocesses the same as the original", async () => {
    const file = fixture("images", "real", "real_0000.png");
    const img = await decodeImage(new Uint8Array(readFileSync(file)), path.basename(file));
    const specs: PreprocessSpec[] = [{ kind: "fid", protocol: "clean" }, { kind: "clip", config: odd }, { kind: "dinov2", size: 224 }];
    for (const spec of specs) {
      const clone = structuredClone(spec);
      expect(preprocessName(clone)).toBe(preprocessName(spec));
      expect(sameTensor(preprocessImage(clone, img), preprocessImage(spec, img))).toBe(true);
    }
    expect(sameTensor(preprocessImage({ kind: "clip", config: odd }, img), preprocessClip(img, odd))).toBe(true);
    expect(sameTensor(preprocessImage({ kind: "dinov2", size: 224 }, img), preprocessDinov2(img, 224))).toBe(true);
    expect(sameTensor(preprocessImage({ kind: "fid", protocol: "clean" }, img), PROTOCOLS.clean.preprocess(img))).toBe(true);
    expect(sameTensor(preprocessImage({ kind: "fid", protocol: "clean" }, img), preprocessImage({ kind: "fid", protocol: "legacy-pytorch" }, img))).toBe(false);
  });
});
