import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { buildClipTextOnnx, buildClipVisionOnnx, checkClipLayout, parseClipConfig, type ClipConfig } from "../../src/models/clip-onnx.js";
import { UnsupportedDtypeTensor, type StateDict } from "../../src/models/pth.js";
import { readSafetensors } from "../../src/models/safetensors.js";
import { OnnxGraph } from "../../src/models/onnx-graph.js";
import { causalMask, emitTransformerBlock, transformerBlockLayout, type Activation } from "../../src/models/transformer-onnx.js";
import { xorshift32 } from "../helpers/xorshift.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { errorOf } from "../helpers/errors.js";
import { cpuSession } from "../helpers/model.js";

const TOL = 1e-4;

const session = cpuSession;

describe("CLIP (clip-tiny fixture)", () => {
  let sd: StateDict;
  let config: ClipConfig;

  beforeAll(() => {
    const file = fixture("encoders", "clip-tiny", "model.safetensors");
    sd = readSafetensors(new Uint8Array(readFileSync(file)), file);
    config = parseClipConfig(JSON.parse(readFileSync(fixture("encoders", "clip-tiny", "config.json"), "utf8")));
  });

  it("reads the config", () => {
    expect(config.projectionDim).toBe(16);
    expect(config.text).toMatchObject({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, eosTokenId: 2, hiddenAct: "quick_gelu", maxPositionEmbeddings: 77 });
    expect(config.vision).toMatchObject({ hiddenSize: 32, patchSize: 32, imageSize: 224, layerNormEps: 1e-5 });
  });

  it("accepts the fixture layout", () => {
    expect(() => checkClipLayout(sd, config)).not.toThrow();
  });

  it("vision tower reproduces clip_image_embeds_real rows 0..2", async () => {
    const s = await session(buildClipVisionOnnx(sd, config));
    const want = loadNpy(fixture("encoders", "reference", "clip_image_embeds_real.npy"));
    expect(want.shape).toEqual([32, 16]);
    // One image at a time, then the three as a batch.
    const inputs = [0, 1, 2].map((i) => loadNpy(fixture("encoders", "reference", `clip_input_${i}.npy`)).data as Float32Array);
    let worst = 0;
    for (let i = 0; i < 3; i++) {
      const out = await s.run({ pixel_values: new ort.Tensor("float32", inputs[i], [1, 3, 224, 224]) });
      expect(out.image_embeds.dims).toEqual([1, 16]);
      worst = Math.max(worst, maxAbsDiff(out.image_embeds.data as Float32Array, want.data.subarray(i * 16, (i + 1) * 16)));
    }
    const batch = new Float32Array(3 * inputs[0].length);
    inputs.forEach((x, i) => batch.set(x, i * x.length));
    const out = await s.run({ pixel_values: new ort.Tensor("float32", batch, [3, 3, 224, 224]) });
    const batchDiff = maxAbsDiff(out.image_embeds.data as Float32Array, want.data.subarray(0, 48));
    console.log(`CLIP vision max |diff|: single ${worst.toExponential(2)}, batch ${batchDiff.toExponential(2)}`);
    expect(worst).toBeLessThan(TOL);
    expect(batchDiff).toBeLessThan(TOL);
  });

  it("text tower reproduces clip_text_embeds for the first 8 prompts (OpenAI ids)", async () => {
    const s = await session(buildClipTextOnnx(sd, config));
    const prompts = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_tokens.json"), "utf8")) as { openai: number[] }[];
    const want = loadNpy(fixture("encoders", "reference", "clip_text_embeds.npy"));
    expect(want.shape).toEqual([8, 16]);
    const ids = BigInt64Array.from(prompts.slice(0, 8).flatMap((p) => p.openai.map((v) => BigInt(v))));
    expect(ids.length).toBe(8 * 77);
    const out = await s.run({ input_ids: new ort.Tensor("int64", ids, [8, 77]) });
    expect(out.text_embeds.dims).toEqual([8, 16]);
    expect(out.last_hidden_state.dims).toEqual([8, 77, 32]);
    const diff = maxAbsDiff(out.text_embeds.data as Float32Array, want.data);
    // A single prompt gives the same row as in the batch.
    const one = await s.run({ input_ids: new ort.Tensor("int64", ids.slice(77 * 3, 77 * 4), [1, 77]) });
    const oneDiff = maxAbsDiff(one.text_embeds.data as Float32Array, want.data.subarray(3 * 16, 4 * 16));
    console.log(`CLIP text max |diff|: batch ${diff.toExponential(2)}, single ${oneDiff.toExponential(2)}`);
    expect(diff).toBeLessThan(TOL);
    expect(oneDiff).toBeLessThan(TOL);
  });

  it("pools at the first eos_token_id when eos_token_id is not 2", async () => {
    // With EOS 49407 as the pad token too, the first 49407 is also the argmax: same embeddings.
    const cfg: ClipConfig = { ...config, text: { ...config.text, eosTokenId: 49407 } };
    const s = await session(buildClipTextOnnx(sd, cfg));
    const prompts = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_tokens.json"), "utf8")) as { openai: number[] }[];
    const want = loadNpy(fixture("encoders", "reference", "clip_text_embeds.npy"));
    const ids = BigInt64Array.from(prompts.slice(0, 8).flatMap((p) => p.openai.map((v) => BigInt(v))));
    const out = await s.run({ input_ids: new ort.Tensor("int64", ids, [8, 77]) });
    expect(maxAbsDiff(out.text_embeds.data as Float32Array, want.data)).toBeLessThan(TOL);
  });

  it("refuses a missing key, naming it", () => {
    const bad = new Map(sd);
    bad.delete("vision_model.encoder.layers.1.mlp.fc2.bias");
    const err = errorOf(() => buildClipVisionOnnx(bad, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'vision_model.encoder.layers.1.mlp.fc2.bias' is missing");
    // The text tower does not need it.
    expect(() => checkClipLayout(bad, config, ["text"])).not.toThrow();
  });

  it("refuses a wrong shape and an unexpected key, naming them", () => {
    const bad = new Map(sd);
    bad.set("text_projection.weight", { shape: [8, 32], data: new Float32Array(256) });
    let err = errorOf(() => buildClipTextOnnx(bad, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'text_projection.weight' has shape [8, 32], expected [16, 32]");
    const extra = new Map(sd);
    extra.set("vision_model.encoder.layers.2.layer_norm1.weight", { shape: [32], data: new Float32Array(32) });
    err = errorOf(() => checkClipLayout(extra, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'vision_model.encoder.layers.2.layer_norm1.weight'");
  });

  it("tolerates logit_scale and int64 position_ids buffers; refuses a non-float32 weight", () => {
    const withIds = new Map(sd);
    withIds.set("text_model.embeddings.position_ids", new UnsupportedDtypeTensor("text_model.embeddings.position_ids", [1, 77], "int64", "m.safetensors"));
    expect(() => checkClipLayout(withIds, config)).not.toThrow();
    const f16 = new Map(sd);
    f16.set("visual_projection.weight", new UnsupportedDtypeTensor("visual_projection.weight", [16, 32], "F16", "m.safetensors"));
    expect(errorOf(() => checkClipLayout(f16, config)).code).toBe("E_WEIGHTS_DTYPE");
  });
});

/** One pre-LN block in float64, written from the formulas in transformer-onnx.ts's header. */
function referenceBlock(sd: StateDict, p: string, x: Float64Array, seq: number, d: number, heads: number, f: number, act: Activation, causal: boolean): Float64Array {
  const W = (k: string): Float32Array => sd.get(`${p}.${k}`)!.data;
  const ln = (src: Float64Array, k: string): Float64Array => {
    const out = new Float64Array(src.length);
    for (let s = 0; s < seq; s++) {
      const row = src.subarray(s * d, (s + 1) * d);
      const mean = row.reduce((a, b) => a + b, 0) / d;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
      for (let j = 0; j < d; j++) out[s * d + j] = ((row[j] - mean) / Math.sqrt(variance + 1e-5)) * W(`${k}.weight`)[j] + W(`${k}.bias`)[j];
    }
    return out;
  };
  const lin = (src: Float64Array, k: string, inF: number, outF: number): Float64Array => {
    const w = W(`${k}.weight`);
    const b = W(`${k}.bias`);
    const out = new Float64Array(seq * outF);
    for (let s = 0; s < seq; s++)
      for (let o = 0; o < outF; o++) {
        let acc = b[o];
        for (let i = 0; i < inF; i++) acc += src[s * inF + i] * w[o * inF + i];
        out[s * outF + o] = acc;
      }
    return out;
  };
  const h1 = ln(x, "layer_norm1");
  const [q, k, v] = ["q_proj", "k_proj", "v_proj"].map((n) => lin(h1, `self_attn.${n}`, d, d));
  const hd = d / heads;
  const ctx = new Float64Array(seq * d);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < seq; i++) {
      const sc: number[] = [];
      for (let j = 0; j < seq; j++) {
        let dot = 0;
        for (let c = 0; c < hd; c++) dot += q[i * d + h * hd + c] * k[j * d + h * hd + c];
        sc.push(causal && j > i ? -Infinity : dot / Math.sqrt(hd));
      }
      const m = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < seq; j++) for (let c = 0; c < hd; c++) ctx[i * d + h * hd + c] += (e[j] / z) * v[j * d + h * hd + c];
    }
  const attn = lin(ctx, "self_attn.out_proj", d, d);
  const res1 = x.map((val, i) => val + attn[i]);
  const u = lin(ln(res1, "layer_norm2"), "mlp.fc1", d, f);
  const erf = (t: number): number => {
    // The Maclaurin series of erf (converges fast for the small |t| of this test).
    let sum = 0;
    let term = t;
    for (let n = 0; n < 60; n++) {
      sum += term / (2 * n + 1);
      term *= (-t * t) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  const a = u.map((t) => (act === "quick_gelu" ? t / (1 + Math.exp(-1.702 * t)) : 0.5 * t * (1 + erf(t / Math.SQRT2))));
  const mlp = lin(a, "mlp.fc2", f, d);
  return res1.map((val, i) => val + mlp[i]);
}

describe("transformer block builder", () => {
  for (const act of ["quick_gelu", "gelu"] as Activation[]) {
    for (const causal of [false, true]) {
      it(`matches a float64 reference (${act}, ${causal ? "causal mask" : "no mask"})`, async () => {
        const [seq, d, heads, f] = [5, 8, 2, 12];
        const next = xorshift32(causal ? 7 : 3);
        const rand = (): number => next() / 2 ** 32;
        const sd: StateDict = new Map();
        for (const [key, shape] of transformerBlockLayout("blk", { hidden: d, heads, intermediate: f, eps: 1e-5, act })) {
          const n = shape.reduce((x, y) => x * y, 1);
          // LayerNorm scales around 1, everything else uniform in [-0.5, 0.5).
          const base = key.includes("layer_norm") && key.endsWith(".weight") ? 1 : 0;
          sd.set(key, { shape, data: Float32Array.from({ length: n }, () => base + rand() - 0.5) });
        }
        const g = new OnnxGraph();
        const mask = causal ? causalMask(g, "mask", seq) : undefined;
        const y = emitTransformerBlock(g, sd, "blk", "x", { hidden: d, heads, intermediate: f, eps: 1e-5, act }, { mask });
        g.node("Identity", [y], "out", {}, "y");
        const bytes = g.toModelBytes({ name: "blk", opset: 17, inputs: [{ name: "x", dims: ["batch", seq, d] }], outputs: [{ name: "y", dims: ["batch", seq, d] }] });
        const x = Float32Array.from({ length: 2 * seq * d }, () => (rand() - 0.5) * 4);
        const out = await (await session(bytes)).run({ x: new ort.Tensor("float32", x, [2, seq, d]) });
        const got = out.y.data as Float32Array;
        for (let b = 0; b < 2; b++) {
          const want = referenceBlock(sd, "blk", Float64Array.from(x.subarray(b * seq * d, (b + 1) * seq * d)), seq, d, heads, f, act, causal);
          expect(maxAbsDiff(got.subarray(b * seq * d, (b + 1) * seq * d), want)).toBeLessThan(1e-4);
        }
      });
    }
  }
});
