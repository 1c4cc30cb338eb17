import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { writeNpy, type NpyArray } from "../../src/io/npy.js";
import { readNpzArrays, readStatsFile } from "../../src/io/npz-file.js";
import { readNpz } from "../../src/io/npz.js";
import { loadStatsFile } from "../../src/pipeline/resolve-source.js";
import { openZip } from "../../src/io/zip.js";
import { fixture } from "../helpers/fixtures.js";
import { xorshift32 } from "../helpers/xorshift.js";
import { buildZip, type TestZipEntry } from "../helpers/zip-writer.js";

/** The shape guided-diffusion's VIRTUAL_imagenet256_labeled.npz declares for arr_0: 10,000 x 256 x 256 x 3 uint8. */
const ARR0_BYTES = 10_000 * 256 * 256 * 3;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-adm-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function f64(shape: number[], seed: number): NpyArray {
  const next = xorshift32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: "<f8", shape, data: Float64Array.from({ length: n }, () => next() / 2 ** 32 - 0.5) };
}

/** A symmetric positive definite d x d matrix (A A^T / d + I). */
function spd(d: number, seed: number): NpyArray {
  const a = f64([d, d], seed).data as Float64Array;
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[i * d + k] * a[j * d + k];
      out[i * d + j] = s / d + (i === j ? 1 : 0);
    }
  }
  return { dtype: "<f8", shape: [d, d], data: out };
}

const STATS = { mu: f64([8], 1), sigma: spd(8, 2), mu_s: f64([5], 3), sigma_s: spd(5, 4) };

/** A guided-diffusion-style reference batch: arr_0 first (as np.savez(arr_0, mu=..., ...) orders it), then the statistics. */
function admEntries(arr0: Partial<TestZipEntry>): TestZipEntry[] {
  const images: NpyArray = { dtype: "|u1", shape: [2, 4, 4, 3], data: new Uint8Array(96).fill(7) };
  return [
    { name: "arr_0.npy", data: writeNpy(images), deflate: true, ...arr0 },
    ...Object.entries(STATS).map(([k, v]) => ({ name: `${k}.npy`, data: writeNpy(v), deflate: k === "sigma" })),
  ];
}

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

describe("guided-diffusion reference batches (arr_0 images + mu, sigma, mu_s, sigma_s)", () => {
  it("arr_0 of the test file really is undecodable: reading every entry fails on it", () => {
    const bytes = buildZip(admEntries({ corrupt: true }));
    let error: unknown;
    try {
      readNpz(bytes, "corrupt-arr0.npz");
    } catch (e) {
      error = e;
    }
    expect(isDiffevalError(error, "E_NPZ_FORMAT")).toBe(true);
  });

  it("gives its statistics without reading arr_0 (corrupt data, 1.97 GB claimed)", async () => {
    const file = write("VIRTUAL_test256.npz", buildZip(admEntries({ corrupt: true, claimedSize: ARR0_BYTES })));
    const zip = await openZip(file);
    expect(zip.entries.find((e) => e.name === "arr_0.npy")?.size).toBe(ARR0_BYTES);
    await zip.close();

    const stats = await readStatsFile(file);
    expect(Array.from(stats.gaussian.mu)).toEqual(Array.from(STATS.mu.data));
    expect(Array.from(stats.gaussian.sigma)).toEqual(Array.from(STATS.sigma.data));
    expect(stats.meta).toBeUndefined();

    const spatial = await readStatsFile(file, { mu: "mu_s", sigma: "sigma_s" });
    expect(Array.from(spatial.gaussian.mu)).toEqual(Array.from(STATS.mu_s.data));
    expect(spatial.gaussian.sigma.length).toBe(25);

    const read = await readNpzArrays(file, ["mu", "sigma", "mu_s", "sigma_s"]);
    expect(read.keys).toEqual(["arr_0", "mu", "sigma", "mu_s", "sigma_s"]);
    expect([...read.arrays.keys()].sort()).toEqual(["mu", "mu_s", "sigma", "sigma_s"]);
  });

  it("is a valid FID source by path too (loadStatsFile reads mu/sigma only)", async () => {
    const file = write("VIRTUAL_path.npz", buildZip(admEntries({ corrupt: true, claimedSize: ARR0_BYTES })));
    const resolved = await loadStatsFile(file);
    expect(resolved.kind).toBe("stats");
    expect(resolved.gaussian.mu.length).toBe(8);
  });

  it("reads zip64 archives (end records and extras, as for a >4 GiB arr_0) and numpy's zip64 local extras", async () => {
    // VIRTUAL_imagenet512.npz's arr_0 (10,000 x 512 x 512 x 3) is 7.9 GB: only zip64 can declare it.
    const cases = [
      { opts: { zip64: true }, claimedSize: 10_000 * 512 * 512 * 3 },
      { opts: { localZip64: true }, claimedSize: ARR0_BYTES },
    ];
    for (const { opts, claimedSize } of cases) {
      const file = write(`zip64-${Object.keys(opts)[0]}.npz`, buildZip(admEntries({ corrupt: true, claimedSize }), opts));
      const stats = await readStatsFile(file);
      expect(Array.from(stats.gaussian.mu)).toEqual(Array.from(STATS.mu.data));
    }
  });

  it("still names the keys it found when the statistics are missing, and refuses a non-zip", async () => {
    const file = write("images-only.npz", buildZip(admEntries({ corrupt: true }).slice(0, 1)));
    await expect(readStatsFile(file)).rejects.toThrow(/needs arrays 'mu' and 'sigma'.*found 'arr_0'/);
    const notZip = write("not-a-zip.npz", new TextEncoder().encode("mu,sigma\n1,2\n"));
    await expect(readStatsFile(notZip)).rejects.toMatchObject({ code: "E_NPZ_FORMAT" });
  });

  it("reads numpy's own savez and savez_compressed files", async () => {
    for (const name of ["stats_d64_real_savez.npz", "stats_d64_real_savez_compressed.npz"]) {
      const stats = await readStatsFile(fixture("reference", name));
      expect(stats.gaussian.mu.length).toBe(64);
      expect(stats.gaussian.sigma.length).toBe(64 * 64);
    }
  });
});
