/**
 * Issue 17, the encoder part: ONNX model bytes (`--weights model.onnx`) and the encoder configs
 * (a CLIP folder's config.json and preprocessor_config.json, DINOv2's config.json). Each test
 * builds its hostile bytes here and asserts the named error in-process; the hang and the generic
 * exception are also run through the built CLI, which must exit 2 with `error[CODE]` within
 * seconds under a 768 MB RSS cap.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import onnxProto from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseJsonText } from "../../src/io/read-json.js";
import { buildClipTextOnnx, buildClipVisionOnnx, parseClipConfig } from "../../src/models/clip-onnx.js";
import { dinov2Layout, parseDinov2Config } from "../../src/models/dinov2-onnx.js";
import { appendOnnxMetadata, onnxInitializerOf, readOnnxMetadata } from "../../src/models/onnx-metadata.js";
import { readSafetensors } from "../../src/models/safetensors.js";
import { CONFIG_LIMITS } from "../../src/models/transformer-onnx.js";
import { CLIP_MAX_RESIZED_PIXELS, CLIP_MAX_SIDE, CLIP_PREPROCESS_224, clipConfigFromPreprocessorJson, preprocessClip } from "../../src/preprocess/clip.js";
import { runCliCapped } from "../helpers/capped-run.js";
import { expectNamedExit } from "../helpers/named-exit.js";
import { errorOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";

const { onnx } = onnxProto;
const CLIP_DIR = fixture("encoders", "clip-tiny");
const DINO_DIR = fixture("encoders", "dinov2-tiny");
const clipConfigText = () => readFileSync(path.join(CLIP_DIR, "config.json"), "utf8");
const preprocessorText = () => readFileSync(path.join(CLIP_DIR, "preprocessor_config.json"), "utf8");
const dinoConfigText = () => readFileSync(path.join(DINO_DIR, "config.json"), "utf8");

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-encoder-configs-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


// ---------------------------------------------------------------------------------------------
// ONNX bytes

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}

/**
 * Length-delimited fields nested in one another, `fields[0]` outermost, the innermost empty: the
 * headers alone, each length counting everything after it (built inside out in linear time).
 */
function nestedFields(fields: readonly number[]): Uint8Array {
  const headers: number[][] = [];
  let size = 0;
  for (let i = fields.length - 1; i >= 0; i--) {
    const head = [...varint((fields[i] << 3) | 2), ...varint(size)];
    headers.push(head);
    size += head.length;
  }
  return Uint8Array.from(headers.reverse().flat());
}

/** A small valid model: one Relu node and one 2x2 float32 initializer `w`. */
function smallModel(initializer: Record<string, unknown> = { name: "w", dims: [2, 2], dataType: 1, rawData: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) }): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    graph: { name: "g", node: [{ opType: "Relu", input: ["x"], output: ["y"] }], initializer: [initializer] },
  }).finish();
}

describe("ONNX model bytes", () => {
  it("generic exception: malformed ONNX bytes in readOnnxMetadata", () => {
    const cases: Record<string, Uint8Array> = {
      // field 1, wire type 7 (protobufjs: "invalid wire type 7 at offset 1")
      "wire type 7": new Uint8Array([0x0f, 1, 2, 3]),
      // graph (field 7) declaring 64 bytes where 2 follow ("index out of range")
      "length past the end": new Uint8Array([0x3a, 0x40, 1, 2]),
      truncated: smallModel().subarray(0, 20),
      // decodes as protobuf, but is no model: nothing but an unknown varint field
      "no graph": new Uint8Array([0x08, 0x01]),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const e = errorOf(() => readOnnxMetadata(bytes, "bad.onnx"));
      expect(e.code, `${what}: ${e.message}`).toBe("E_WEIGHTS_FORMAT");
      expect(e.message).toMatch(/^bad\.onnx: not a readable ONNX model/);
    }
  });

  it("generic exception: ONNX messages and groups nested past the stack in readOnnxMetadata", () => {
    // 100,000 nested start-group tags of an unknown field (protobufjs skips groups recursively).
    const groups = new Uint8Array(200_000);
    for (let i = 0; i < groups.length; i += 2) groups.set(varint((100 << 3) | 3), i);
    // ModelProto.graph (7) -> GraphProto.node (1) -> NodeProto.attribute (5) -> AttributeProto.g
    // (6) -> GraphProto.node -> ...: 30,000 subgraphs deep, about 300 KB.
    const graphs = nestedFields([7, ...Array.from({ length: 30_000 }, () => [1, 5, 6]).flat()]);
    for (const bytes of [groups, graphs]) {
      const e = errorOf(() => readOnnxMetadata(bytes, "deep.onnx"));
      expect(e.code, e.message).toBe("E_WEIGHTS_FORMAT");
      expect(e.message).toMatch(/deep\.onnx: not a readable ONNX model \(messages nested too deep\)/);
    }
    // The overflow left nothing behind: a valid model still reads.
    expect(readOnnxMetadata(appendOnnxMetadata(smallModel(), { k: "v" }), "ok.onnx")).toEqual({ k: "v" });
  });

  it("generic exception: ONNX initializer whose dims promise more than its raw data", () => {
    const raw = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
    expect(onnxInitializerOf(smallModel(), "ok.onnx", "w")).toEqual({ dims: [2, 2], data: Float32Array.of(1, 2, 3, 4) });
    const bad: Array<[string, Record<string, unknown>, string]> = [
      ["dims beyond the bytes", { dims: [1000, 1000] }, "E_MODEL_OUTPUTS"],
      ["a negative dim", { dims: [-2, -2] }, "E_MODEL_OUTPUTS"],
      ["a dim of 2^62", { dims: [2 ** 62, 0] }, "E_MODEL_OUTPUTS"],
      ["fewer dims than bytes", { dims: [2] }, "E_MODEL_OUTPUTS"],
      ["raw bytes not a multiple of 4", { dims: [1], rawData: raw.subarray(0, 6) }, "E_MODEL_OUTPUTS"],
      ["float_data shorter than dims", { dims: [3], rawData: undefined, floatData: [1, 2] }, "E_MODEL_OUTPUTS"],
      ["a double tensor", { dataType: 11 }, "E_WEIGHTS_DTYPE"],
    ];
    for (const [what, patch, code] of bad) {
      const model = smallModel({ name: "w", dims: [2, 2], dataType: 1, rawData: raw, ...patch });
      const e = errorOf(() => onnxInitializerOf(model, "bad.onnx", "w"));
      expect(e.code, `${what}: ${e.message}`).toBe(code);
      expect(e.message).toMatch(/^bad\.onnx: initializer 'w'/);
    }
    expect(errorOf(() => onnxInitializerOf(smallModel(), "ok.onnx", "fc.weight")).code).toBe("E_MODEL_OUTPUTS");
    expect(errorOf(() => onnxInitializerOf(new Uint8Array([0x0f]), "bad.onnx", "w")).code).toBe("E_WEIGHTS_FORMAT");
  });

  it("generic exception: `fid --weights garbage.onnx` exits 2 with E_WEIGHTS_FORMAT", async () => {
    const weights = path.join(tmp, "garbage.onnx");
    writeFileSync(weights, new Uint8Array([0x3a, 0x40, 1, 2, 0x0f, 0xff]));
    const r = await runCliCapped(["fid", "--real", fixture("images", "real"), "--fake", fixture("images", "fake"), "--weights", weights, "--device", "cpu"], {
      env: { DIFFEVAL_CACHE: path.join(tmp, "cache") },
    });
    expectNamedExit(r, "E_WEIGHTS_FORMAT");
    expect(r.stderr).toContain(weights);
  });
});

// ---------------------------------------------------------------------------------------------
// Encoder configs

/** The fixture's config text with `patch` merged in (at the top, or into a section). */
function patched(text: string, patch: Record<string, unknown>, section?: string): unknown {
  const json = JSON.parse(text) as Record<string, any>;
  if (section) json[section] = { ...json[section], ...patch };
  else Object.assign(json, patch);
  return json;
}

describe("encoder configs", () => {
  it("the fixtures' configs still parse through parseJsonText, the fuzz entry points", () => {
    const clip = parseClipConfig(parseJsonText(clipConfigText(), "config.json", "E_WEIGHTS_FORMAT", "a CLIPModel config.json"), "config.json");
    expect(clip.vision).toMatchObject({ imageSize: 224, patchSize: 32, numHiddenLayers: 2 });
    const pre = clipConfigFromPreprocessorJson(parseJsonText(preprocessorText(), "p.json", "E_WEIGHTS_FORMAT", "a preprocessor_config.json"), "p.json");
    expect(pre).toMatchObject({ size: 224, crop: 224 });
    const dino = parseDinov2Config(parseJsonText(dinoConfigText(), "config.json", "E_WEIGHTS_FORMAT", "DINOv2 arguments"), "config.json");
    expect(dinov2Layout(dino).size).toBe(4 + 2 * 14 + 2); // embeddings, 2 blocks with LayerScale, norm
  });

  it("hang: dinov2 config depth 10^9", () => {
    const started = Date.now();
    const e = errorOf(() => parseDinov2Config(patched(dinoConfigText(), { depth: 1e9 }), "dino/config.json"));
    expect(e.code).toBe("E_WEIGHTS_LAYOUT");
    expect(e.message).toMatch(/^dino\/config\.json: depth is 1000000000, expected an integer from 1 to 256/);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it("hang: CLIP config num_hidden_layers 10^9 (either tower)", () => {
    for (const section of ["text_config", "vision_config"]) {
      const e = errorOf(() => parseClipConfig(patched(clipConfigText(), { num_hidden_layers: 1e9 }, section), "clip/config.json"));
      expect(e.code).toBe("E_WEIGHTS_LAYOUT");
      expect(e.message).toContain(`clip/config.json: ${section}.num_hidden_layers is 1000000000`);
    }
  });

  it("hang: `features --encoder dinov2` on a folder whose config.json says depth 10^9 exits 2 with E_WEIGHTS_LAYOUT", async () => {
    const dir = path.join(tmp, "dino-deep");
    mkdirSync(dir, { recursive: true });
    symlinkSync(path.join(DINO_DIR, "dinov2-tiny.pth"), path.join(dir, "dinov2-tiny.pth"));
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(patched(dinoConfigText(), { depth: 1e9 })));
    const r = await runCliCapped(["features", fixture("images", "real"), "--encoder", "dinov2", "--weights", dir, "--device", "cpu", "--out", path.join(tmp, "f.npy")], {
      env: { DIFFEVAL_CACHE: path.join(tmp, "cache") },
    });
    expectNamedExit(r, "E_WEIGHTS_LAYOUT");
    expect(r.stderr).toContain(path.join(dir, "config.json"));
  });

  it("accepted but inconsistent: DINOv2 config sizes out of range", () => {
    const L = CONFIG_LIMITS;
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ embed_dim: 0 }, /embed_dim is 0/],
      [{ embed_dim: 2.5 }, /embed_dim is 2.5/],
      [{ embed_dim: L.width + 1 }, /embed_dim is 65537/],
      [{ embed_dim: "64" }, /embed_dim is a string/],
      [{ depth: null }, /depth is null/],
      [{ num_heads: 5 }, /num_heads 5 does not divide embed_dim 64/],
      [{ img_size: 1e6 }, /img_size is 1000000/],
      [{ patch_size: 15 }, /img_size 518 is not a multiple of patch_size 15/],
      [{ patch_size: 600 }, /patch_size is 600, expected an integer from 1 to 518/],
      [{ in_chans: 4 }, /in_chans is 4; only 3/],
      [{ mlp_ratio: -1 }, /mlp_ratio is -1/],
      [{ mlp_ratio: 1e6 }, /makes an MLP 64000000 wide/],
      [{ num_register_tokens: 1e9 }, /num_register_tokens is 1000000000/],
      [{ interpolate_offset: 5 }, /interpolate_offset is 5/],
      [{ block_chunks: "x" }, /block_chunks/],
    ];
    for (const [patch, message] of bad) {
      const e = errorOf(() => parseDinov2Config(patched(dinoConfigText(), patch), "d.json"));
      expect(e.code, `${JSON.stringify(patch)}: ${e.message}`).toBe("E_WEIGHTS_LAYOUT");
      expect(e.message).toMatch(/^d\.json: /);
      expect(e.message).toMatch(message);
    }
  });

  it("accepted but inconsistent: CLIP config sizes out of range", () => {
    const bad: Array<[Record<string, unknown>, string | undefined, RegExp]> = [
      [{ projection_dim: 1e12 }, undefined, /config\.projection_dim is 1000000000000/],
      [{ projection_dim: -16 }, undefined, /config\.projection_dim is -16/],
      [{ hidden_size: 32.5 }, "text_config", /text_config\.hidden_size is 32\.5/],
      [{ intermediate_size: 1e9 }, "vision_config", /vision_config\.intermediate_size is 1000000000/],
      [{ num_attention_heads: 3 }, "vision_config", /num_attention_heads 3 does not divide vision_config\.hidden_size 32/],
      [{ num_attention_heads: 0 }, "text_config", /text_config\.num_attention_heads is 0/],
      [{ image_size: 1e5 }, "vision_config", /vision_config\.image_size is 100000/],
      [{ patch_size: 30 }, "vision_config", /image_size 224 is not a multiple of vision_config\.patch_size 30/],
      [{ num_channels: 4 }, "vision_config", /num_channels is 4/],
      [{ max_position_embeddings: 1e9 }, "text_config", /max_position_embeddings is 1000000000/],
      [{ vocab_size: 1e12 }, "text_config", /vocab_size is 1000000000000/],
      [{ eos_token_id: 49408 }, "text_config", /eos_token_id is 49408, expected an integer from 0 to 49407/],
      [{ layer_norm_eps: 0 }, "text_config", /layer_norm_eps is 0, expected a number between 0 and 1/],
      [{ hidden_act: "relu" }, "text_config", /hidden_act/],
      [{ text_config: [] }, undefined, /'text_config' is not an object/],
    ];
    for (const [patch, section, message] of bad) {
      const e = errorOf(() => parseClipConfig(patched(clipConfigText(), patch, section), "c.json"));
      expect(e.code, `${JSON.stringify(patch)}: ${e.message}`).toBe("E_WEIGHTS_LAYOUT");
      expect(e.message).toMatch(/^c\.json: /);
      expect(e.message).toMatch(message);
    }
  });

  it("accepted but inconsistent: CLIP config sizes in range are checked against the weights before sizing anything", () => {
    const file = path.join(CLIP_DIR, "model.safetensors");
    const sd = readSafetensors(new Uint8Array(readFileSync(file)), file);
    // 4096 positions would be a 64 MB causal mask: the position embedding's shape refuses it first.
    const text = parseClipConfig(patched(clipConfigText(), { max_position_embeddings: 4096 }, "text_config"));
    expect(errorOf(() => buildClipTextOnnx(sd, text)).message).toMatch(/position_embedding\.weight' has shape \[77, 32\], expected \[4096, 32\]/);
    const vision = parseClipConfig(patched(clipConfigText(), { image_size: 4096 }, "vision_config"));
    expect(errorOf(() => buildClipVisionOnnx(sd, vision)).code).toBe("E_WEIGHTS_LAYOUT");
  });

  it("memory blowup: preprocessor_config crop_size and shortest_edge of 10^9", () => {
    const base = JSON.parse(preprocessorText()) as Record<string, unknown>;
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ crop_size: { height: 1e9, width: 1e9 } }, /crop_size\.height is 1000000000/],
      [{ crop_size: 1e9 }, /crop_size\.height is 1000000000/],
      [{ size: { shortest_edge: 1e9 } }, /size\.shortest_edge is 1000000000/],
      [{ size: { shortest_edge: CLIP_MAX_SIDE + 1 } }, /size\.shortest_edge is 4097/],
      [{ size: { height: 224, width: 224 } }, /size\.shortest_edge is missing/],
      [{ crop_size: { height: 224, width: 225 } }, /crop_size\.width/],
      [{ image_std: [0.26, 0, 0.27] }, /image_std/],
      [{ image_std: [0.26, -1, 0.27] }, /image_std/],
      [{ image_mean: [0.4, "x", 0.4] }, /image_mean/],
      [{ image_mean: [0.4, 0.4] }, /image_mean/],
      [{ rescale_factor: 1 }, /rescale_factor 1 is not 1\/255/],
      [{ rescale_factor: "1/255" }, /rescale_factor/],
      [{ do_normalize: false }, /do_normalize is false/],
    ];
    for (const [patch, message] of bad) {
      const e = errorOf(() => clipConfigFromPreprocessorJson({ ...base, ...patch }, "p.json"));
      expect(e.code, `${JSON.stringify(patch)}: ${e.message}`).toBe("E_WEIGHTS_LAYOUT");
      expect(e.message).toMatch(/^p\.json: /);
      expect(e.message).toMatch(message);
    }
    for (const notObject of [null, [], "x", 3]) expect(errorOf(() => clipConfigFromPreprocessorJson(notObject, "p.json")).code).toBe("E_WEIGHTS_LAYOUT");
  });

  it("memory blowup: a 100000x1 image through CLIP's shortest-edge resize", () => {
    // 300 KB of pixels would become 224 x 22,400,000 (15 GB) before the centre crop.
    const started = Date.now();
    const e = errorOf(() => preprocessClip({ width: 100_000, height: 1, data: new Uint8Array(300_000) }, CLIP_PREPROCESS_224));
    expect(e.code, e.message).toBe("E_IMAGE_TOO_LARGE");
    expect(e.message).toMatch(new RegExp(`100000x1 image: .* 22400000x224, over ${CLIP_MAX_RESIZED_PIXELS} pixels`));
    expect(Date.now() - started).toBeLessThan(100);
  });
});
