import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { buildInceptionOnnx, checkInceptionLayout, inceptionLayoutSummary, INCEPTION_CONVERTER_VERSION } from "../../src/models/inception-onnx.js";
import { readStateDict, UnsupportedDtypeTensor, type StateDict, type TensorF32 } from "../../src/models/pth.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureModelPath, fixtureStateDictPath } from "../helpers/model.js";
import { floatStorage, longStorage, stateDictPickle, zipPth, type FakeStorage, type FakeTensor } from "./pth-builder.js";

function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return { code: isDiffevalError(e) ? e.code : undefined, message: (e as Error).message };
  }
  return { message: "no error" };
}

function zeros(shape: number[]): TensorF32 {
  return { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}

const BN_PARAMS = ["weight", "bias", "running_mean", "running_var"];

/** torchvision's ImageNet inception_v3 layout: every BN counter, AuxLogits after Mixed_6e, 1000-class fc. */
function torchvisionLike(sd: StateDict): StateDict {
  const out: StateDict = new Map();
  const aux: [string, number[]][] = [
    ["AuxLogits.conv0.conv.weight", [128, 768, 1, 1]],
    ...BN_PARAMS.map((p): [string, number[]] => [`AuxLogits.conv0.bn.${p}`, [128]]),
    ["AuxLogits.conv1.conv.weight", [768, 128, 5, 5]],
    ...BN_PARAMS.map((p): [string, number[]] => [`AuxLogits.conv1.bn.${p}`, [768]]),
    ["AuxLogits.fc.weight", [1000, 768]],
    ["AuxLogits.fc.bias", [1000]],
  ];
  for (const [key, t] of sd) {
    if (key.startsWith("Mixed_7a.") && !out.has(aux[0][0])) for (const [k, s] of aux) out.set(k, zeros(s));
    if (key === "fc.weight") out.set(key, zeros([1000, 2048]));
    else if (key === "fc.bias") out.set(key, zeros([1000]));
    else out.set(key, t);
    if (key.endsWith(".bn.running_var")) {
      const counter = key.replace(/running_var$/, "num_batches_tracked");
      out.set(counter, new UnsupportedDtypeTensor(counter, [], "int64", "tv.pth"));
    }
  }
  return out;
}

describe("FID Inception layout", () => {
  let sd: StateDict;

  beforeAll(async () => {
    const file = await fixtureStateDictPath(false);
    sd = readStateDict(readFileSync(file), file);
  });

  it("accepts the fixture weights and summarises them", () => {
    expect(() => checkInceptionLayout(sd)).not.toThrow();
    const s = inceptionLayoutSummary(sd);
    expect(s).toMatchObject({ tensors: 472, values: 23_885_392, convLayers: 94, fcClasses: 1008 });
    expect(`${s}`).toBe("472 tensors, 23,885,392 values, 94 conv layers, fc 2048 -> 1008");
  });

  it("refuses torchvision's ImageNet layout, naming its first bad key (AuxLogits) ", () => {
    const err = errorOf(() => checkInceptionLayout(torchvisionLike(sd)));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'AuxLogits.conv0.conv.weight'");
    expect(err.message).toContain("torchvision");
  });

  it("refuses a 1000-class fc, naming fc.weight and both shapes", () => {
    const bad = new Map(sd);
    bad.set("fc.weight", zeros([1000, 2048]));
    const err = errorOf(() => checkInceptionLayout(bad));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'fc.weight' has shape [1000, 2048], expected [1008, 2048]");
  });

  it("names a missing tensor", () => {
    const bad = new Map(sd);
    bad.delete("Mixed_7c.branch_pool.bn.running_var");
    const err = errorOf(() => checkInceptionLayout(bad));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'Mixed_7c.branch_pool.bn.running_var' is missing");
  });

  it("names a mis-shaped conv in the middle of the network", () => {
    const bad = new Map(sd);
    bad.set("Mixed_6c.branch7x7_2.conv.weight", zeros([160, 160, 7, 1])); // 7x1 where 1x7 belongs
    const err = errorOf(() => checkInceptionLayout(bad));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'Mixed_6c.branch7x7_2.conv.weight' has shape [160, 160, 7, 1], expected [160, 160, 1, 7]");
  });

  it("tolerates BatchNorm num_batches_tracked counters (int64) but not an int64 weight", () => {
    const withCounters: StateDict = new Map();
    for (const [k, t] of sd) {
      withCounters.set(k, t);
      const counter = k.replace(/running_var$/, "num_batches_tracked");
      if (k.endsWith(".bn.running_var")) withCounters.set(counter, new UnsupportedDtypeTensor(counter, [], "int64", "c.pth"));
    }
    expect(() => checkInceptionLayout(withCounters)).not.toThrow();
    withCounters.set("Mixed_5b.branch1x1.bn.weight", new UnsupportedDtypeTensor("Mixed_5b.branch1x1.bn.weight", [64], "float64", "c.pth"));
    const err = errorOf(() => checkInceptionLayout(withCounters));
    expect(err.code).toBe("E_WEIGHTS_DTYPE");
    expect(err.message).toContain("Mixed_5b.branch1x1.bn.weight");
  });

  it("refuses a torchvision-style .pth file (with int64 counters) at the layout check, not while reading", () => {
    // The file holds the first three stem convs with int64 counters, then AuxLogits, as torchvision's does.
    const tensors: FakeTensor[] = [];
    const storages: FakeStorage[] = [];
    const add = (key: string, shape: number[], long = false): void => {
      const storageKey = String(storages.length);
      const n = shape.reduce((a, b) => a * b, 1);
      storages.push(long ? longStorage(storageKey, [7]) : floatStorage(storageKey, new Float32Array(n).fill(0.5)));
      tensors.push({ key, storageType: long ? "LongStorage" : "FloatStorage", storageKey, shape });
    };
    for (const key of ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]) {
      add(`${key}.conv.weight`, sd.get(`${key}.conv.weight`)!.shape);
      for (const p of BN_PARAMS) add(`${key}.bn.${p}`, sd.get(`${key}.bn.${p}`)!.shape);
      add(`${key}.bn.num_batches_tracked`, [], true);
    }
    add("AuxLogits.conv0.conv.weight", [128, 768, 1, 1]);
    const file = zipPth(stateDictPickle(tensors, storages, false), storages);
    const read = readStateDict(file, "inception_v3_google.pth");
    expect(read.size).toBe(19);
    const err = errorOf(() => checkInceptionLayout(read));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'AuxLogits.conv0.conv.weight'");
  });
});

describe("FID Inception ONNX graph", () => {
  let session: ort.InferenceSession;
  let zipModel: Uint8Array;
  let sd: StateDict;

  beforeAll(async () => {
    const file = await fixtureStateDictPath(false);
    sd = readStateDict(readFileSync(file), file);
    zipModel = buildInceptionOnnx(sd);
    session = await ort.InferenceSession.create(await fixtureModelPath(), { graphOptimizationLevel: "all", executionProviders: ["cpu"] });
  });

  afterAll(async () => {
    await session?.release();
  });

  async function run(s: ort.InferenceSession, x: Float32Array, n = 1): Promise<{ pool3: Float32Array; logits: Float32Array }> {
    const out = await s.run({ images: new ort.Tensor("float32", x, [n, 3, 299, 299]) });
    return { pool3: out.pool3.data as Float32Array, logits: out.logits.data as Float32Array };
  }

  function input(protocol: string, i: number): Float32Array {
    return loadNpy(fixture("reference", `input_${protocol}_${i}.npy`)).data as Float32Array;
  }

  it("declares images [batch,3,299,299] -> pool3 [batch,2048], logits [batch,1008] at opset 17", () => {
    const model = onnxProto.onnx.ModelProto.decode(zipModel);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([["", 17]]);
    const dims = (v: onnxProto.onnx.IValueInfoProto): (string | number)[] =>
      v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    expect(model.graph!.input!.map((v) => [v.name, dims(v)])).toEqual([["images", ["batch", 3, 299, 299]]]);
    expect(model.graph!.output!.map((v) => [v.name, dims(v)])).toEqual([
      ["pool3", ["batch", 2048]],
      ["logits", ["batch", 1008]],
    ]);
    // 94 folded convs (weight + bias each) and the fc.
    expect(model.graph!.initializer!.length).toBe(94 * 2 + 2);
    expect(model.graph!.initializer!.map((t) => t.name)).toContain("Mixed_7c.branch3x3dbl_3b.conv.weight");
    const ops = model.graph!.node!.map((n) => n.opType);
    expect(ops.filter((o) => o === "AveragePool").length).toBe(8); // 5b-5d, 6b-6e, 7b
    expect(ops.filter((o) => o === "MaxPool").length).toBe(5); // stem x2, 6a, 7a, 7c
    expect(typeof INCEPTION_CONVERTER_VERSION === "number" || typeof INCEPTION_CONVERTER_VERSION === "string").toBe(true);
  });

  it("gives pytorch-fid's pool3 features on the legacy-pytorch inputs (within 1e-4)", async () => {
    const feats = loadNpy(fixture("reference", "feats_legacy_pytorch_real.npy")).data as Float32Array;
    let worst = 0;
    for (let i = 0; i < 3; i++) {
      const { pool3 } = await run(session, input("legacy_pytorch", i));
      worst = Math.max(worst, maxAbsDiff(pool3, feats.subarray(i * 2048, (i + 1) * 2048)));
    }
    console.log(`max |pool3 - pytorch-fid| over rows 0-2: ${worst.toExponential(3)}`);
    expect(worst).toBeLessThan(1e-4);
  });

  it("gives torch-fidelity's bias-free logits and pool3 on the legacy-tensorflow inputs", async () => {
    const logitsRef = loadNpy(fixture("reference", "logits_unbiased_legacy_tensorflow_real.npy")).data as Float32Array;
    const featsRef = loadNpy(fixture("reference", "feats_legacy_tensorflow_real.npy")).data as Float32Array;
    const bias = sd.get("fc.bias")!.data;
    const { pool3, logits } = await run(session, input("legacy_tensorflow", 0));
    expect(maxAbsDiff(pool3, featsRef.subarray(0, 2048))).toBeLessThan(1e-4);
    expect(maxAbsDiff(logits.map((v, j) => v - bias[j]), logitsRef.subarray(0, 1008))).toBeLessThan(1e-4);
  });

  it("runs a dynamic batch: row i of a batch of 2 equals the single-image result", async () => {
    const a = input("legacy_pytorch", 0);
    const b = input("legacy_pytorch", 1);
    const both = new Float32Array(a.length * 2);
    both.set(a);
    both.set(b, a.length);
    const batch = await run(session, both, 2);
    const single = await run(session, b);
    expect(batch.pool3.length).toBe(2 * 2048);
    expect(maxAbsDiff(batch.pool3.subarray(2048), single.pool3)).toBeLessThan(1e-5);
  });

  it("builds byte-identical models from the zip and the legacy file, with identical outputs", async () => {
    const legacyFile = await fixtureStateDictPath(true);
    const legacyModel = buildInceptionOnnx(readStateDict(readFileSync(legacyFile), legacyFile));
    expect(Buffer.compare(Buffer.from(legacyModel), Buffer.from(zipModel))).toBe(0);
    const legacySession = await ort.InferenceSession.create(legacyModel, { graphOptimizationLevel: "all", executionProviders: ["cpu"] });
    const x = input("legacy_pytorch", 2);
    const [p, q] = [await run(session, x), await run(legacySession, x)];
    await legacySession.release();
    expect(maxAbsDiff(p.pool3, q.pool3)).toBe(0);
    expect(maxAbsDiff(p.logits, q.logits)).toBe(0);
  });

  it("refuses to build from a wrong layout", () => {
    const bad = new Map(sd);
    bad.set("fc.bias", zeros([1000]));
    expect(errorOf(() => buildInceptionOnnx(bad)).code).toBe("E_WEIGHTS_LAYOUT");
  });
});
