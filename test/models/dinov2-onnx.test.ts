import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import {
  bicubicTaps,
  buildDinov2Onnx,
  checkDinov2Layout,
  DINOV2_CONVERTER_VERSION,
  DINOV2_VITL14_CONFIG,
  parseDinov2Config,
  resamplePositionGrid,
  type Dinov2Config,
} from "../../src/models/dinov2-onnx.js";
import { readStateDict, UnsupportedDtypeTensor, type StateDict } from "../../src/models/pth.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { errorOf } from "../helpers/errors.js";
import { cpuSession } from "../helpers/model.js";

const TOL = 1e-4;

const session = cpuSession;

describe("DINOv2 (dinov2-tiny fixture)", () => {
  let sd: StateDict;
  let config: Dinov2Config;

  beforeAll(() => {
    const file = fixture("encoders", "dinov2-tiny", "dinov2-tiny.pth");
    sd = readStateDict(new Uint8Array(readFileSync(file)), file);
    config = parseDinov2Config(JSON.parse(readFileSync(fixture("encoders", "dinov2-tiny", "config.json"), "utf8")));
  });

  it("reads the config; defaults are dinov2_vitl14's", () => {
    expect(config).toEqual({
      imgSize: 518,
      patchSize: 14,
      inChans: 3,
      embedDim: 64,
      depth: 2,
      numHeads: 4,
      mlpRatio: 4,
      initValues: 1,
      numRegisterTokens: 0,
      interpolateOffset: 0.1,
    });
    expect(parseDinov2Config({})).toEqual(DINOV2_VITL14_CONFIG);
    expect(parseDinov2Config({ init_values: null }).initValues).toBe(0);
    expect(errorOf(() => parseDinov2Config({ ffn_layer: "swiglufused" })).code).toBe("E_WEIGHTS_LAYOUT");
    expect(errorOf(() => parseDinov2Config({ interpolate_antialias: true })).code).toBe("E_WEIGHTS_LAYOUT");
    expect(errorOf(() => parseDinov2Config([])).code).toBe("E_WEIGHTS_LAYOUT");
    expect(DINOV2_CONVERTER_VERSION).toBeGreaterThanOrEqual(1);
  });

  it("accepts the fixture layout (mask_token included)", () => {
    expect(sd.has("mask_token")).toBe(true);
    expect(() => checkDinov2Layout(sd, config)).not.toThrow();
  });

  it("reproduces dinov2_feats_real rows 0..2 (single images and a batch)", async () => {
    const s = await session(buildDinov2Onnx(sd, config));
    const want = loadNpy(fixture("encoders", "reference", "dinov2_feats_real.npy"));
    expect(want.shape).toEqual([32, 64]);
    const inputs = [0, 1, 2].map((i) => {
      const a = loadNpy(fixture("encoders", "reference", `dinov2_input_${i}.npy`));
      expect(a.shape).toEqual([1, 3, 224, 224]);
      return a.data as Float32Array;
    });
    let worst = 0;
    for (let i = 0; i < 3; i++) {
      const out = await s.run({ pixel_values: new ort.Tensor("float32", inputs[i], [1, 3, 224, 224]) });
      expect(out.features.dims).toEqual([1, 64]);
      worst = Math.max(worst, maxAbsDiff(out.features.data as Float32Array, want.data.subarray(i * 64, (i + 1) * 64)));
    }
    const batch = new Float32Array(3 * inputs[0].length);
    inputs.forEach((x, i) => batch.set(x, i * x.length));
    const out = await s.run({ pixel_values: new ort.Tensor("float32", batch, [3, 3, 224, 224]) });
    expect(out.features.dims).toEqual([3, 64]);
    const batchDiff = maxAbsDiff(out.features.data as Float32Array, want.data.subarray(0, 3 * 64));
    console.log(`DINOv2 max |diff|: single ${worst.toExponential(2)}, batch ${batchDiff.toExponential(2)}`);
    expect(worst).toBeLessThan(TOL);
    expect(batchDiff).toBeLessThan(TOL);
  });

  it("the fixture tells the scale-factor mapping from the size-ratio one", async () => {
    // offset 0 makes the resampler use the plain size ratio 37/16: a visibly different model.
    const s = await session(buildDinov2Onnx(sd, { ...config, interpolateOffset: 0 }));
    const want = loadNpy(fixture("encoders", "reference", "dinov2_feats_real.npy"));
    const x = loadNpy(fixture("encoders", "reference", "dinov2_input_0.npy")).data as Float32Array;
    const out = await s.run({ pixel_values: new ort.Tensor("float32", x, [1, 3, 224, 224]) });
    expect(maxAbsDiff(out.features.data as Float32Array, want.data.subarray(0, 64))).toBeGreaterThan(1e-3);
  });

  it("builds for another input size (518: the grid is used as is)", async () => {
    const s = await session(buildDinov2Onnx(sd, config, { inputSize: 518 }));
    const out = await s.run({ pixel_values: new ort.Tensor("float32", new Float32Array(3 * 518 * 518), [1, 3, 518, 518]) });
    expect(out.features.dims).toEqual([1, 64]);
    expect(errorOf(() => buildDinov2Onnx(sd, config, { inputSize: 225 })).code).toBe("E_USAGE");
  });

  it("refuses a missing key, naming it", () => {
    const bad = new Map(sd);
    bad.delete("blocks.1.ls2.gamma");
    const err = errorOf(() => buildDinov2Onnx(bad, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'blocks.1.ls2.gamma' is missing");
  });

  it("refuses a wrong shape and an unexpected key, naming them; a non-float32 weight with E_WEIGHTS_DTYPE", () => {
    const bad = new Map(sd);
    bad.set("pos_embed", { shape: [1, 257, 64], data: new Float32Array(257 * 64) });
    let err = errorOf(() => checkDinov2Layout(bad, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'pos_embed' has shape [1, 257, 64], expected [1, 1370, 64]");
    const extra = new Map(sd);
    extra.set("blocks.2.norm1.weight", { shape: [64], data: new Float32Array(64) });
    err = errorOf(() => checkDinov2Layout(extra, config));
    expect(err.code).toBe("E_WEIGHTS_LAYOUT");
    expect(err.message).toContain("'blocks.2.norm1.weight'");
    // Without LayerScale the gamma keys are unexpected.
    err = errorOf(() => checkDinov2Layout(sd, { ...config, initValues: 0 }));
    expect(err.message).toContain("'blocks.0.ls1.gamma'");
    const f16 = new Map(sd);
    f16.set("norm.weight", new UnsupportedDtypeTensor("norm.weight", [64], "float16", "d.pth"));
    expect(errorOf(() => checkDinov2Layout(f16, config)).code).toBe("E_WEIGHTS_DTYPE");
  });
});

describe("position-grid resampling", () => {
  it("uses torch's bicubic weights (a = -0.75) and the 1/scale_factor source mapping", () => {
    // 37 -> 16 with scale_factor 16.1/37: source x = (i + 0.5) * 37/16.1 - 0.5.
    const { index, weight } = bicubicTaps(37, 16, 37 / 16.1);
    const x0 = 0.5 * (37 / 16.1) - 0.5;
    const t = x0 - Math.floor(x0);
    expect(Array.from(index.subarray(0, 4))).toEqual([0, 0, 1, 2]);
    const a = -0.75;
    const k = (s: number): number => {
      const u = Math.abs(s);
      return u <= 1 ? (a + 2) * u ** 3 - (a + 3) * u ** 2 + 1 : a * u ** 3 - 5 * a * u ** 2 + 8 * a * u - 4 * a;
    };
    const want = [k(1 + t), k(t), k(1 - t), k(2 - t)];
    for (let j = 0; j < 4; j++) expect(weight[j]).toBeCloseTo(want[j], 14);
    for (let i = 0; i < 16; i++) expect(weight.subarray(i * 4, i * 4 + 4).reduce((p, q) => p + q, 0)).toBeCloseTo(1, 14);
    // The last output's taps are clamped at the border.
    expect(index[15 * 4 + 3]).toBeLessThanOrEqual(36);
  });

  it("keeps constants, equals the direct 4x4 bicubic sum, and is the identity at the source size", () => {
    const M = 37;
    const d = 2;
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const grid = new Float32Array(M * M * d);
    for (let y = 0; y < M; y++) for (let x = 0; x < M; x++) grid.set([5, rand()], (y * M + x) * d);
    const out = resamplePositionGrid(grid, M, d, 16, 0.1);
    const s = 37 / 16.1;
    const a = -0.75;
    const k = (v: number): number => {
      const u = Math.abs(v);
      return u <= 1 ? (a + 2) * u ** 3 - (a + 3) * u ** 2 + 1 : u < 2 ? a * u ** 3 - 5 * a * u ** 2 + 8 * a * u - 4 * a : 0;
    };
    const clamp = (i: number): number => Math.max(0, Math.min(M - 1, i));
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) {
        expect(out[(y * 16 + x) * d]).toBeCloseTo(5, 5);
        const sy = (y + 0.5) * s - 0.5;
        const sx = (x + 0.5) * s - 0.5;
        let want = 0;
        for (let j = Math.floor(sy) - 1; j <= Math.floor(sy) + 2; j++)
          for (let i = Math.floor(sx) - 1; i <= Math.floor(sx) + 2; i++) want += k(sy - j) * k(sx - i) * grid[(clamp(j) * M + clamp(i)) * d + 1];
        expect(out[(y * 16 + x) * d + 1]).toBeCloseTo(want, 6);
      }
    expect(resamplePositionGrid(grid, M, d, 37, 0.1)).toEqual(grid);
  });
});
