import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encoderOnnxCachePath } from "../../src/features/encoder-weights.js";
import { DEFAULT_ENCODER_WEIGHTS, ENCODER_NAMES, getEncoder, parseEncoderName, resolveEncoder, type EncoderName } from "../../src/features/encoders.js";
import { preprocessImage, preprocessName, type PreprocessSpec } from "../../src/preprocess/preprocess-spec.js";
import { openExtractor } from "../../src/features/extractor.js";
import { openImageSource } from "../../src/io/sources.js";
import { getEncoderWeightsEntry, getWeightsEntry, knownEncoderWeightsIds } from "../../src/models/registry.js";
import { CLIP_PREPROCESS_224, CLIP_PREPROCESS_336, preprocessClip } from "../../src/preprocess/clip.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

const clipDir = fixture("encoders", "clip-tiny");
const dinoDir = fixture("encoders", "dinov2-tiny");
let savedCache: string | undefined;

beforeAll(() => {
  savedCache = process.env.DIFFEVAL_CACHE;
  process.env.DIFFEVAL_CACHE = path.join(mkdtempSync(path.join(os.tmpdir(), "diffeval-enc-unit-")), "cache");
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.DIFFEVAL_CACHE;
  else process.env.DIFFEVAL_CACHE = savedCache;
});

describe("encoder preprocessing names", () => {
  it("names the standard CLIP configs, and any other one by its values", () => {
    expect(preprocessName({ kind: "clip", config: CLIP_PREPROCESS_224 })).toBe("clip");
    expect(preprocessName({ kind: "clip", config: CLIP_PREPROCESS_336 })).toBe("clip-336");
    const odd = { size: 256, crop: 240, mean: [0.5, 0.25, 0.125], std: [0.2, 0.3, 0.4] } as const;
    expect(preprocessName({ kind: "clip", config: odd })).toBe("clip-256-240-m0.5,0.25,0.125-s0.2,0.3,0.4");
    expect(preprocessName({ kind: "dinov2", size: 224 })).toBe("dinov2");
    const img = { width: 5, height: 3, data: new Uint8Array(45) };
    expect(() => preprocessImage({ kind: "nope" } as unknown as PreprocessSpec, img)).toThrow(/unknown preprocessing/);
  });

  it("'clip' is preprocessClip at 224", () => {
    const img = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 37) % 256) };
    expect(preprocessImage({ kind: "clip", config: CLIP_PREPROCESS_224 }, img)).toEqual(preprocessClip(img, CLIP_PREPROCESS_224));
  });
});

describe("encoder registry", () => {
  it("parses names", () => {
    expect(parseEncoderName("CLIP")).toBe("clip");
    expect(() => parseEncoderName("vgg")).toThrow(/unknown encoder/);
  });

  it("lists the standard weights with their upstream URLs", () => {
    expect(knownEncoderWeightsIds()).toEqual(
      expect.arrayContaining(["openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14-336", "openai/clip-vit-base-patch32", "dinov2_vitl14"]),
    );
    expect(getEncoderWeightsEntry("dinov2_vitl14").files[0].url).toBe(
      "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    );
    expect(getEncoderWeightsEntry("openai/clip-vit-large-patch14").files.map((f) => f.name)).toContain("model.safetensors");
  });

  it("resolves clip-tiny: cached conversion keyed by the weights' sha256 and the config", async () => {
    const enc = await resolveEncoder("clip", { weights: clipDir });
    expect(enc).toMatchObject({ encoder: "clip", protocol: "clip", inputSize: 224, outputName: "image_embeds", dim: 16 });
    expect(path.basename(enc.onnxPath)).toMatch(/^clip-[0-9a-f]{12}-v1-c[0-9a-f]{8}\.onnx$/);
    expect(path.basename(enc.onnxPath)).toContain(enc.weightsSha256.slice(0, 12));
    expect(encoderOnnxCachePath("clip", enc.weightsSha256, 1, { other: true })).not.toBe(enc.onnxPath);
    expect(existsSync(enc.onnxPath)).toBe(true);
    // The model.safetensors path resolves to the same thing.
    expect(await resolveEncoder("clip", { weights: path.join(clipDir, "model.safetensors") })).toEqual(enc);
  });

  it("resolves dinov2-tiny from its folder and its .pth", async () => {
    const a = await resolveEncoder("dinov2", { weights: dinoDir });
    const b = await resolveEncoder("dinov2", { weights: path.join(dinoDir, "dinov2-tiny.pth") });
    expect(a).toEqual(b);
    expect(a).toMatchObject({ encoder: "dinov2", protocol: "dinov2", inputSize: 224, outputName: "features", dim: 64 });
    expect(path.basename(a.onnxPath)).toMatch(/^dinov2-[0-9a-f]{12}-v\d+-c[0-9a-f]{8}\.onnx$/);
  });

  it("refuses a missing weights path", async () => {
    await expect(resolveEncoder("clip", { weights: path.join(clipDir, "nope") })).rejects.toMatchObject({ code: "E_WEIGHTS_MISSING" });
  });
});

describe("openExtractor({ encoder })", () => {
  it("extracts dinov2 features through the feature cache (second run infers nothing)", async () => {
    const source = await openImageSource(fixture("images", "fake"));
    const ex = await openExtractor({ encoder: "dinov2", weights: dinoDir, device: "cpu", threads: 0 });
    try {
      expect(ex).toMatchObject({ encoder: "dinov2", protocol: "dinov2" });
      const first = await ex.extract(source.items);
      const second = await ex.extract(source.items);
      expect(first.inferred).toBe(32);
      expect(second.inferred).toBe(0);
      expect(second.embedding).toEqual(first.embedding);
      expect(first.logits.d).toBe(0);
      expect(maxAbsDiff(first.embedding.data, loadNpy(fixture("encoders", "reference", "dinov2_feats_fake.npy")).data)).toBeLessThan(1e-4);
    } finally {
      await ex.close();
      await source.close();
    }
  });

  it("refuses an Inception protocol or sFID with another encoder", async () => {
    await expect(openExtractor({ encoder: "clip", weights: clipDir, protocol: "legacy-pytorch", device: "cpu" })).rejects.toMatchObject({ code: "E_USAGE" });
    await expect(openExtractor({ encoder: "clip", weights: clipDir, spatial: true, device: "cpu" })).rejects.toMatchObject({ code: "E_USAGE" });
  });
});

describe("the encoder registry entries", () => {
  it("every encoder in ENCODER_NAMES has an entry, with its help texts and a known default weights id", () => {
    for (const name of ENCODER_NAMES) {
      const e = getEncoder(name);
      expect(e.name).toBe(name);
      expect(e.description.length).toBeGreaterThan(20);
      expect(e.description).not.toContain("\n");
      expect(e.weightsHelp.length).toBeGreaterThan(20);
      if (name === "inception") expect(getWeightsEntry(e.defaultWeightsId).id).toBe(e.defaultWeightsId);
      else expect(getEncoderWeightsEntry(e.defaultWeightsId).encoder).toBe(name);
    }
    expect(DEFAULT_ENCODER_WEIGHTS).toEqual({ clip: "openai/clip-vit-large-patch14", dinov2: "dinov2_vitl14" });
    expect(getEncoder("DINOv2").name).toBe("dinov2");
    expect(() => getEncoder("vgg")).toThrow(/unknown encoder 'vgg'/);
  });

  it("gives the standard weights' dims and what each encoder outputs", () => {
    expect(ENCODER_NAMES.map((n) => [n, getEncoder(n).dim, getEncoder(n).hasLogits, getEncoder(n).hasSpatial])).toEqual([
      ["inception", 2048, true, true],
      ["clip", 768, false, false],
      ["dinov2", 1024, false, false],
    ]);
  });

  it("opening each entry with the fixture weights gives the fixtures' feature widths", async () => {
    const width = (...p: string[]) => loadNpy(fixture(...p)).shape[1];
    const want: Record<EncoderName, number> = {
      inception: width("reference", "feats_clean_real.npy"),
      clip: width("encoders", "reference", "clip_image_embeds_real.npy"),
      dinov2: width("encoders", "reference", "dinov2_feats_real.npy"),
    };
    const weights: Record<EncoderName, string> = { inception: await fixtureStateDictPath(false), clip: clipDir, dinov2: dinoDir };
    for (const name of ENCODER_NAMES) {
      const net = await getEncoder(name).open({ weights: weights[name] });
      expect([name, net.dim]).toEqual([name, want[name]]);
    }
    expect(want).toEqual({ inception: 2048, clip: 16, dinov2: 64 });
  });

  it("the extractor reports the network's width and its preprocessing", async () => {
    const ex = await openExtractor({ encoder: "clip", weights: clipDir, device: "cpu", threads: 0 });
    try {
      expect(ex).toMatchObject({ encoder: "clip", protocol: "clip", dim: 16, preprocess: { kind: "clip", config: CLIP_PREPROCESS_224 } });
    } finally {
      await ex.close();
    }
  });

  it("refuses --encoder-weights with inception, and with --weights", async () => {
    await expect(openExtractor({ encoderWeights: "dinov2_vitl14", device: "cpu" })).rejects.toMatchObject({ code: "E_USAGE", message: expect.stringContaining("--encoder-weights") });
    await expect(resolveEncoder("clip", { weights: clipDir, weightsId: "openai/clip-vit-base-patch32" })).rejects.toMatchObject({ code: "E_USAGE" });
  });
});
