import { readFileSync } from "node:fs";
import { zipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { readNpy, writeNpy } from "../../src/io/npy.js";
import { readNpz, readStatsNpz, writeNpz, writeStatsNpz } from "../../src/io/npz.js";
import { fitGaussian } from "../../src/stats/gaussian.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";
import { npyBytes } from "../helpers/image-bytes.js";
import { codeOf } from "../helpers/errors.js";

const STORED = "stats_d64_real_savez.npz";
const DEFLATED = "stats_d64_real_savez_compressed.npz";

function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fixture("reference", name)));
}



describe("readNpz", () => {
  it("reads np.savez (stored) and np.savez_compressed (deflated) statistics to the same arrays", () => {
    const stored = readNpz(fixtureBytes(STORED), STORED);
    const deflated = readNpz(fixtureBytes(DEFLATED), DEFLATED);
    expect([...stored.keys()].sort()).toEqual(["mu", "sigma"]);
    expect(stored.get("mu")!.shape).toEqual([64]);
    expect(stored.get("sigma")!.shape).toEqual([64, 64]);
    expect(stored.get("sigma")!.dtype).toBe("<f8");
    expect(maxAbsDiff(stored.get("mu")!.data, deflated.get("mu")!.data)).toBe(0);
    expect(maxAbsDiff(stored.get("sigma")!.data, deflated.get("sigma")!.data)).toBe(0);
  });

  it("statistics files equal fitGaussian of the features they came from (1e-12 relative)", () => {
    const feats = loadNpy(fixture("reference", "feats_d64_real.npy"));
    const g = fitGaussian({ n: feats.shape[0], d: feats.shape[1], data: feats.data as Float32Array });
    for (const name of [STORED, DEFLATED]) {
      const { gaussian } = readStatsNpz(fixtureBytes(name), name);
      const scaleMu = Math.max(...gaussian.mu.map(Math.abs));
      const scaleSigma = Math.max(...gaussian.sigma.map(Math.abs));
      expect(maxAbsDiff(g.mu, gaussian.mu) / scaleMu).toBeLessThan(1e-12);
      expect(maxAbsDiff(g.sigma, gaussian.sigma) / scaleSigma).toBeLessThan(1e-12);
      expect(gaussian.n).toBe(0); // pytorch-fid files do not record it
    }
  });

  it("refuses object arrays, plain or inside a structured dtype, with E_NPZ_PICKLE", () => {
    const pickled = npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(16));
    expect(codeOf(() => readNpz(zipSync({ "x.npy": pickled }), "objects.npz"))).toBe("E_NPZ_PICKLE");
    const structured = npyBytes("{'descr': [('a', '<f8'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(16));
    expect(codeOf(() => readNpz(zipSync({ "x.npy": structured }), "objects.npz"))).toBe("E_NPZ_PICKLE");
    const plainStruct = npyBytes("{'descr': [('a', '<f8'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(12));
    expect(codeOf(() => readNpz(zipSync({ "x.npy": plainStruct }), "struct.npz"))).toBe("E_NPY_DTYPE");
  });

  it("says E_NPZ_FORMAT for bytes that are not a zip archive", () => {
    expect(codeOf(() => readNpz(new TextEncoder().encode("not a zip file at all"), "bad.npz"))).toBe("E_NPZ_FORMAT");
  });
});

describe("readNpy header variants", () => {
  const cOrder = Float32Array.of(1, 2, 3, 4, 5, 6); // [[1, 2, 3], [4, 5, 6]]
  const fOrder = Float32Array.of(1, 4, 2, 5, 3, 6); // the same matrix, column-major

  it("transposes Fortran-order arrays into C order", () => {
    const bytes = npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", new Uint8Array(fOrder.buffer));
    const arr = readNpy(bytes, "fortran.npy");
    expect(arr.shape).toEqual([2, 3]);
    expect(Array.from(arr.data)).toEqual(Array.from(cOrder));
  });

  it("reads version 2.0 (u32 header length) and 3.0 (UTF-8 header) files", () => {
    for (const version of [2, 3]) {
      const bytes = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", new Uint8Array(cOrder.buffer), version);
      const arr = readNpy(bytes, `v${version}.npy`);
      expect(arr.shape).toEqual([2, 3]);
      expect(Array.from(arr.data)).toEqual(Array.from(cOrder));
    }
  });
});

describe("writeNpz", () => {
  const arrays = {
    a: { dtype: "<f4" as const, shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
    b: { dtype: "|u1" as const, shape: [3], data: Uint8Array.of(7, 8, 9) },
  };

  it("writes a standard zip of <key>.npy entries, stored by default and deflated on request", () => {
    for (const compress of [false, true]) {
      const bytes = writeNpz(arrays, { compress });
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      expect(view.getUint32(0, true)).toBe(0x04034b50); // local file header signature
      expect(view.getUint16(8, true)).toBe(compress ? 8 : 0); // compression method: deflate / stored
      const back = readNpz(bytes, "out.npz");
      expect([...back.keys()].sort()).toEqual(["a", "b"]);
      expect(back.get("a")).toEqual({ ...arrays.a, data: arrays.a.data });
      expect(Array.from(back.get("b")!.data)).toEqual([7, 8, 9]);
    }
  });

  it("is deterministic: the same arrays give the same bytes", () => {
    expect(writeNpz(arrays)).toEqual(writeNpz(arrays));
  });
});

describe("statistics files", () => {
  const g = { n: 5, mu: Float64Array.of(0.5, -1.25, 3), sigma: Float64Array.of(2, 0.5, 0, 0.5, 1, 0.25, 0, 0.25, 3) };

  it("writeStatsNpz round-trips mu, sigma (float64) and meta", () => {
    const meta = { protocol: "clean", weights_sha256: "6726825d", note: "naïve ✓" };
    const read = readStatsNpz(writeStatsNpz(g, meta), "stats.npz");
    expect(Array.from(read.gaussian.mu)).toEqual(Array.from(g.mu));
    expect(Array.from(read.gaussian.sigma)).toEqual(Array.from(g.sigma));
    expect(read.gaussian.n).toBe(5);
    expect(read.meta).toEqual({ n: 5, ...meta });
    const entries = readNpz(writeStatsNpz(g, meta), "stats.npz");
    expect(entries.get("mu")!.dtype).toBe("<f8");
    expect(entries.get("meta")!.dtype).toBe("|u1");
  });

  it("accepts float32 statistics and converts them to float64", () => {
    const bytes = writeNpz({
      mu: { dtype: "<f4", shape: [2], data: Float32Array.of(1.5, 2) },
      sigma: { dtype: "<f4", shape: [2, 2], data: Float32Array.of(1, 0.25, 0.25, 1) },
    });
    const { gaussian } = readStatsNpz(bytes, "f32.npz");
    expect(gaussian.mu).toBeInstanceOf(Float64Array);
    expect(Array.from(gaussian.sigma)).toEqual([1, 0.25, 0.25, 1]);
  });

  it("names the keys it found when mu or sigma is missing (E_STATS_FORMAT)", () => {
    const bytes = writeNpz({ mean: { dtype: "<f8", shape: [2], data: Float64Array.of(1, 2) } });
    expect(() => readStatsNpz(bytes, "odd.npz")).toThrow(/odd\.npz.*found 'mean'/);
    expect(codeOf(() => readStatsNpz(bytes, "odd.npz"))).toBe("E_STATS_FORMAT");
  });

  it("names the file and the shapes when mu and sigma do not fit (E_FEATURE_DIM)", () => {
    const bytes = writeNpz({
      mu: { dtype: "<f8", shape: [3], data: new Float64Array(3) },
      sigma: { dtype: "<f8", shape: [2, 2], data: new Float64Array(4) },
    });
    expect(() => readStatsNpz(bytes, "bad.npz")).toThrow(/bad\.npz: mu has shape \(3\) and sigma \(2, 2\)/);
    expect(codeOf(() => readStatsNpz(bytes, "bad.npz"))).toBe("E_FEATURE_DIM");
  });

  it("refuses NaN statistics (E_NONFINITE) and a meta entry that is not JSON (E_STATS_FORMAT)", () => {
    const nan = writeStatsNpz({ ...g, sigma: g.sigma.map((v, i) => (i === 4 ? NaN : v)) }, {});
    expect(codeOf(() => readStatsNpz(nan, "nan.npz"))).toBe("E_NONFINITE");
    const badMeta = writeNpz({
      mu: { dtype: "<f8", shape: [1], data: Float64Array.of(0) },
      sigma: { dtype: "<f8", shape: [1, 1], data: Float64Array.of(1) },
      meta: { dtype: "|u1", shape: [3], data: Uint8Array.of(0x7b, 0x7b, 0x7d) },
    });
    expect(codeOf(() => readStatsNpz(badMeta, "meta.npz"))).toBe("E_STATS_FORMAT");
  });

  it("writeNpy output reads back unchanged", () => {
    const arr = { dtype: "<f8" as const, shape: [2, 2], data: Float64Array.of(1, 2, 3, 4) };
    expect(readNpy(writeNpy(arr), "x.npy")).toEqual(arr);
  });
});
