/**
 * sFID's spatial features: the optional `spatial` output of the FID Inception graph must be TF's
 * `mixed_6/conv:0` (torchvision's Mixed_6d.branch1x1 after BN and ReLU), first 7 channels, in the
 * ADM evaluator's NHWC flattening (openai/guided-diffusion evaluations/evaluator.py:
 * `spatial[..., :7]`, then `reshape([n, -1])`). The mapping and its sources are in
 * src/models/inception-onnx.ts (SPATIAL_DIM).
 */
import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildInceptionOnnx, SPATIAL_DIM } from "../../src/models/inception-onnx.js";
import { readStateDict, type StateDict } from "../../src/models/pth.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureModelPath, fixtureSpatialModelPath, fixtureStateDictPath, sha256 } from "../helpers/model.js";

const { onnx } = onnxProto;

/**
 * sha256 of `buildInceptionOnnx(sd)` on the fixture weights, as built before the spatial option
 * existed (converter version 1). The default graph must stay byte-identical so converted-model
 * caches and their tests hold; if the graph changes on purpose, bump INCEPTION_CONVERTER_VERSION
 * and update this value.
 */
const DEFAULT_MODEL_SHA256_V1 = "b17e0406bd97276121a834961ec69ea9ce4989d44fffd0c22902403735945cbb";

/** The TF tensor, stated independently of the builder: torchvision's Mixed_6d.branch1x1. */
const TF_MIXED_6_CONV = "Mixed_6d.branch1x1";
const GRID = 17;
const KEPT = 7;
const BN_EPS = 0.001; // torchvision BasicConv2d; ../shared/fixtures/README.md (weights/)

const sessionOptions: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", executionProviders: ["cpu"] };

/** Two fixture images as one batch, so that the per-image layout of the flattening is tested too. */
function batchOfTwo(): Float32Array {
  const a = loadNpy(fixture("reference", "input_legacy_pytorch_0.npy")).data as Float32Array;
  const b = loadNpy(fixture("reference", "input_legacy_tensorflow_1.npy")).data as Float32Array;
  const x = new Float32Array(a.length * 2);
  x.set(a);
  x.set(b, a.length);
  return x;
}

function dimsOf(v: onnxProto.onnx.IValueInfoProto): (string | number)[] {
  return v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
}

/**
 * The default model with three intermediate tensors exposed as extra outputs: Mixed_6c's output
 * (the input of Mixed_6d.branch1x1's conv), that conv unit's ReLU output, and Mixed_6d's concat.
 */
function probeModel(defaultModel: Uint8Array): { bytes: Uint8Array; mixed6c: string; branch: string; mixed6d: string } {
  const model = onnx.ModelProto.decode(defaultModel);
  const nodes = model.graph!.node!;
  const conv = nodes.find((n) => n.name === `${TF_MIXED_6_CONV}.conv`);
  const relu = nodes.find((n) => n.opType === "Relu" && n.input![0] === conv?.output![0]);
  const concat = nodes.filter((n) => n.opType === "Concat" && n.name!.startsWith("Mixed_6d."));
  if (!conv || !relu || concat.length !== 1) throw new Error("probe: Mixed_6d nodes not found");
  const out = (name: string, c: number): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: c }, { dimValue: GRID }, { dimValue: GRID }] } } },
  });
  const mixed6c = conv.input![0];
  const branch = relu.output![0];
  const mixed6d = concat[0].output![0];
  model.graph!.output!.push(out(mixed6c, 768), out(branch, 192), out(mixed6d, 768));
  return { bytes: onnx.ModelProto.encode(model).finish(), mixed6c, branch, mixed6d };
}

/**
 * TF's mixed_6/conv on Mixed_6c's output, first 7 channels, in float64 from the raw state dict:
 * Conv2D 1x1 (no bias) -> BatchNorm (eps 0.001) -> ReLU; returned NCHW [n, 7, 17, 17] before and
 * after the ReLU. Nothing here comes from the ONNX builder.
 */
function mixed6ConvReference(sd: StateDict, x: Float32Array, n: number): { preRelu: Float64Array; out: Float64Array } {
  const w = sd.get(`${TF_MIXED_6_CONV}.conv.weight`)!;
  expect(w.shape).toEqual([192, 768, 1, 1]);
  const gamma = sd.get(`${TF_MIXED_6_CONV}.bn.weight`)!.data;
  const beta = sd.get(`${TF_MIXED_6_CONV}.bn.bias`)!.data;
  const mean = sd.get(`${TF_MIXED_6_CONV}.bn.running_mean`)!.data;
  const variance = sd.get(`${TF_MIXED_6_CONV}.bn.running_var`)!.data;
  const hw = GRID * GRID;
  const preRelu = new Float64Array(n * KEPT * hw);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < KEPT; c++) {
      const scale = gamma[c] / Math.sqrt(variance[c] + BN_EPS);
      for (let p = 0; p < hw; p++) {
        let acc = 0;
        for (let i = 0; i < 768; i++) acc += w.data[c * 768 + i] * x[(b * 768 + i) * hw + p];
        preRelu[(b * KEPT + c) * hw + p] = (acc - mean[c]) * scale + beta[c];
      }
    }
  }
  return { preRelu, out: preRelu.map((v) => Math.max(0, v)) };
}

/** spatial[n, (h * 17 + w) * 7 + c] -> NCHW [n, 7, 17, 17] (the inverse of ADM's flattening). */
function spatialToNchw(spatial: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * KEPT * GRID * GRID);
  for (let b = 0; b < n; b++)
    for (let h = 0; h < GRID; h++)
      for (let w = 0; w < GRID; w++)
        for (let c = 0; c < KEPT; c++) out[((b * KEPT + c) * GRID + h) * GRID + w] = spatial[b * SPATIAL_DIM + (h * GRID + w) * KEPT + c];
  return out;
}

/** The first 7 channels of an NCHW [n, C, 17, 17] tensor. */
function first7(t: Float32Array, n: number, channels: number): Float32Array {
  const hw = GRID * GRID;
  const out = new Float32Array(n * KEPT * hw);
  for (let b = 0; b < n; b++) out.set(t.subarray(b * channels * hw, (b * channels + KEPT) * hw), b * KEPT * hw);
  return out;
}

describe("FID Inception with sFID's spatial output", () => {
  const n = 2;
  let sd: StateDict;
  let defaultBytes: Uint8Array;
  let spatialBytes: Uint8Array;
  let plain: ort.InferenceSession;
  let spatial: ort.InferenceSession;
  let probe: ort.InferenceSession;
  let probeNames: ReturnType<typeof probeModel>;
  let x: Float32Array;

  beforeAll(async () => {
    const file = await fixtureStateDictPath(false);
    sd = readStateDict(readFileSync(file), file);
    const [plainPath, spatialPath] = [await fixtureModelPath(), await fixtureSpatialModelPath()];
    defaultBytes = new Uint8Array(readFileSync(plainPath));
    spatialBytes = new Uint8Array(readFileSync(spatialPath));
    plain = await ort.InferenceSession.create(plainPath, sessionOptions);
    spatial = await ort.InferenceSession.create(spatialPath, sessionOptions);
    probeNames = probeModel(defaultBytes);
    probe = await ort.InferenceSession.create(probeNames.bytes, sessionOptions);
    x = batchOfTwo();
  });

  afterAll(async () => {
    await Promise.all([plain?.release(), spatial?.release(), probe?.release()]);
  });

  const feed = (): Record<string, ort.Tensor> => ({ images: new ort.Tensor("float32", x, [n, 3, 299, 299]) });

  it("leaves the default graph byte-identical (no option, {}, spatial: false) to converter version 1's", () => {
    const built = buildInceptionOnnx(sd);
    expect(sha256(built)).toBe(DEFAULT_MODEL_SHA256_V1);
    expect(sha256(buildInceptionOnnx(sd, {}))).toBe(DEFAULT_MODEL_SHA256_V1);
    expect(sha256(buildInceptionOnnx(sd, { spatial: false }))).toBe(DEFAULT_MODEL_SHA256_V1);
    expect(sha256(defaultBytes)).toBe(DEFAULT_MODEL_SHA256_V1);
    expect(sha256(buildInceptionOnnx(sd, { spatial: true }))).toBe(sha256(spatialBytes));
  });

  it("declares spatial [batch, 2023] as a third output, read from Mixed_6d.branch1x1 by Slice, Transpose, Reshape", () => {
    expect(SPATIAL_DIM).toBe(GRID * GRID * KEPT);
    const model = onnx.ModelProto.decode(spatialBytes);
    expect(model.graph!.output!.map((v) => [v.name, dimsOf(v)])).toEqual([
      ["pool3", ["batch", 2048]],
      ["logits", ["batch", 1008]],
      ["spatial", ["batch", 2023]],
    ]);
    // Every node of the default graph comes first, unchanged; the spatial nodes follow.
    const base = onnx.ModelProto.decode(defaultBytes).graph!.node!;
    const nodes = model.graph!.node!;
    const encode = (v: onnxProto.onnx.INodeProto): string => Buffer.from(onnx.NodeProto.encode(v).finish()).toString("hex");
    expect(nodes.slice(0, base.length).map(encode)).toEqual(base.map(encode));
    const tail = nodes.slice(base.length);
    expect(tail.filter((t) => t.opType !== "Constant").map((t) => t.opType)).toEqual(["Slice", "Transpose", "Reshape"]);
    expect(tail.find((t) => t.opType === "Slice")!.input![0]).toBe(probeNames.branch);
    expect(model.graph!.initializer!.length).toBe(94 * 2 + 2);
  });

  it("keeps pool3 and logits exactly as the two-output model gives them", async () => {
    const [a, b] = [await plain.run(feed()), await spatial.run(feed())];
    expect(b.spatial.dims).toEqual([n, SPATIAL_DIM]);
    expect(b.pool3.dims).toEqual([n, 2048]);
    // Same nodes and weights; the extra nodes only read a tensor, so the numbers cannot move.
    expect(maxAbsDiff(a.pool3.data as Float32Array, b.pool3.data as Float32Array)).toBe(0);
    expect(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array)).toBe(0);
  });

  it("flattens channel-fastest: spatial[n, (h*17 + w)*7 + c] == branch1x1[n, c, h, w] for c < 7", async () => {
    const s = (await spatial.run(feed())).spatial.data as Float32Array;
    const p = await probe.run(feed());
    expect(p[probeNames.branch].dims).toEqual([n, 192, GRID, GRID]);
    const full = p[probeNames.branch].data as Float32Array;
    let worst = 0;
    for (let b = 0; b < n; b++)
      for (let c = 0; c < KEPT; c++)
        for (let h = 0; h < GRID; h++)
          for (let w = 0; w < GRID; w++) {
            const got = s[b * SPATIAL_DIM + (h * GRID + w) * KEPT + c];
            worst = Math.max(worst, Math.abs(got - full[((b * 192 + c) * GRID + h) * GRID + w]));
          }
    expect(worst).toBe(0);
    // The two images differ, so a batch-order mistake could not pass unnoticed.
    expect(maxAbsDiff(s.subarray(0, SPATIAL_DIM), s.subarray(SPATIAL_DIM))).toBeGreaterThan(1e-3);
  });

  it("equals the first 7 channels of Mixed_6d's output (branch1x1 comes first in the block's concat)", async () => {
    const s = (await spatial.run(feed())).spatial.data as Float32Array;
    const p = await probe.run(feed());
    expect(p[probeNames.mixed6d].dims).toEqual([n, 768, GRID, GRID]);
    expect(maxAbsDiff(spatialToNchw(s, n), first7(p[probeNames.mixed6d].data as Float32Array, n, 768))).toBe(0);
  });

  it("is conv -> BatchNorm -> ReLU of Mixed_6d.branch1x1 on Mixed_6c's output, in float64 from the state dict", async () => {
    const s = spatialToNchw((await spatial.run(feed())).spatial.data as Float32Array, n);
    const mixed6c = (await probe.run(feed()))[probeNames.mixed6c].data as Float32Array;
    const { preRelu, out } = mixed6ConvReference(sd, mixed6c, n);
    const scale = out.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = maxAbsDiff(s, out);
    console.log(`max |spatial - float64 conv+BN+ReLU| = ${worst.toExponential(3)} (values up to ${scale.toFixed(3)})`);
    expect(scale).toBeGreaterThan(0.1);
    expect(worst).toBeLessThan(1e-5 * Math.max(1, scale));
    // Post-ReLU, as TF's `mixed_6/conv:0` is: never negative, and exactly 0 wherever BatchNorm's
    // output is clearly negative (a raw Conv2D or BN tensor would be negative there).
    expect(Math.min(...s)).toBeGreaterThanOrEqual(0);
    const negatives = preRelu.reduce<number[]>((idx, v, i) => (v < -1e-3 ? [...idx, i] : idx), []);
    expect(negatives.length).toBeGreaterThan(50);
    expect(negatives.every((i) => s[i] === 0)).toBe(true);
    expect(s.some((v) => v > 1e-3)).toBe(true);
  });
});
