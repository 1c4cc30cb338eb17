/**
 * Issue 18, hostile features files (io/features-file.ts): NaN/Inf rows, the wrong rank or dtype, a
 * names list of the wrong length, a dimension that disagrees with the meta or the encoder, headers
 * and entries that promise more than the file holds. Each is refused with a named DiffevalError
 * in-process and, for the ones that could allocate, by the real CLI (dist/) under a memory cap.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { FEATURES_FILE_KIND, readFeaturesNpz, readFeaturesSource, writeFeaturesNpz } from "../../src/io/features-file.js";
import { writeNpy } from "../../src/io/npy.js";
import { resolveStatsSource } from "../../src/pipeline/resolve-source.js";
import { rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { npyBytes } from "../helpers/image-bytes.js";
import { expectFidRefusesFile } from "../helpers/named-exit.js";
import { buildZip, type TestZipEntry } from "../helpers/zip-writer.js";

const STATS = fixture("reference", "stats_d64_real_savez.npz");
const META = { encoder: "dinov2", protocol: "dinov2", weights_sha256: "a".repeat(64) };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-untrusted-features-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array | string): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

/** n x d rows of small distinct values. */
function rows(n: number, d: number): Float32Array {
  return Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.3) + i * 0.01);
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `img${i}.png`);
const jsonNpy = (v: unknown) => {
  const bytes = new TextEncoder().encode(JSON.stringify(v));
  return writeNpy({ dtype: "|u1", shape: [bytes.length], data: bytes });
};

/** A features .npz (3 x 4 unless told) with any of its three entries replaced. */
function featuresNpz(over: { features?: Partial<TestZipEntry>; files?: Partial<TestZipEntry>; meta?: Partial<TestZipEntry> } = {}, n = 3, d = 4): Uint8Array {
  return buildZip([
    { name: "features.npy", data: writeNpy({ dtype: "<f4", shape: [n, d], data: rows(n, d) }), ...over.features },
    { name: "files.npy", data: jsonNpy(names(n)), ...over.files },
    { name: "meta.npy", data: jsonNpy({ kind: FEATURES_FILE_KIND, ...META, n, d }), ...over.meta },
  ]);
}

async function refusal(bytes: Uint8Array, name = "hostile.npz"): Promise<{ code?: string; message: string }> {
  return rejectionOf(readFeaturesNpz(bytes, name));
}

const expectCliError = (file: string, code: string) => expectFidRefusesFile(file, STATS, code);

describe("features files: what a valid one round-trips", () => {
  it("reads back the rows, names and meta it was written with", async () => {
    const file = await readFeaturesNpz(writeFeaturesNpz({ n: 3, d: 4, data: rows(3, 4) }, names(3), META), "ok.npz");
    expect(file.features).toEqual({ n: 3, d: 4, data: rows(3, 4) });
    expect(file.names).toEqual(names(3));
    expect(file.meta).toMatchObject({ kind: FEATURES_FILE_KIND, ...META, n: 3, d: 4 });
  });

  it("refuses every truncation of a valid file with a DiffevalError, never anything else", async () => {
    const bytes = featuresNpz();
    for (let cut = 0; cut < bytes.length; cut += 7) {
      const e = await readFeaturesNpz(bytes.subarray(0, cut), "cut.npz").then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isDiffevalError(e), `cut at ${cut}: ${String(e)}`).toBe(true);
    }
  });
});

describe("hostile features files", () => {
  it("NaN or Inf in a row: E_NONFINITE naming the file, the row and its image", async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const data = rows(3, 4);
      data[1 * 4 + 2] = bad;
      const e = await refusal(featuresNpz({ features: { data: writeNpy({ dtype: "<f4", shape: [3, 4], data }) } }), "nan.npz");
      expect(e.code).toBe("E_NONFINITE");
      expect(e.message).toMatch(new RegExp(`^nan\\.npz: row 1 \\(img1\\.png\\) has ${String(bad)} in column 2`));
    }
    const data = rows(3, 4);
    data[9] = NaN;
    await expectCliError(write("nan.npz", featuresNpz({ features: { data: writeNpy({ dtype: "<f4", shape: [3, 4], data }) } })), "E_NONFINITE");
  });

  it("the wrong rank or dtype: E_FEATURES_FORMAT", async () => {
    const cases: Record<string, Uint8Array> = {
      rank1: writeNpy({ dtype: "<f4", shape: [12], data: rows(3, 4) }),
      rank3: writeNpy({ dtype: "<f4", shape: [3, 2, 2], data: rows(3, 4) }),
      float64: writeNpy({ dtype: "<f8", shape: [3, 4], data: Float64Array.from(rows(3, 4)) }),
      uint8: writeNpy({ dtype: "|u1", shape: [3, 4], data: new Uint8Array(12) }),
    };
    for (const [what, data] of Object.entries(cases)) {
      const e = await refusal(featuresNpz({ features: { data } }), `${what}.npz`);
      expect(e.code, what).toBe("E_FEATURES_FORMAT");
      expect(e.message, what).toMatch(new RegExp(`^${what}\\.npz\\[features\\]: features must be`));
    }
    await expectCliError(write("rank3.npz", featuresNpz({ features: { data: cases.rank3 } })), "E_FEATURES_FORMAT");
  });

  it("a names list whose length differs from N, or that is not a list of strings: E_FEATURES_FORMAT", async () => {
    const short = await refusal(featuresNpz({ files: { data: jsonNpy(names(2)) } }), "short.npz");
    expect(short).toMatchObject({ code: "E_FEATURES_FORMAT" });
    expect(short.message).toMatch(/^short\.npz\[files\]: lists 2 image names for 3 feature rows/);
    expect((await refusal(featuresNpz({ files: { data: jsonNpy(["a", 2, "c"]) } }))).message).toMatch(/name 1 is not a string/);
    expect((await refusal(featuresNpz({ files: { data: jsonNpy({ a: 1 }) } }))).code).toBe("E_FEATURES_FORMAT");
    const notUtf8 = writeNpy({ dtype: "|u1", shape: [2], data: Uint8Array.of(0xff, 0xfe) });
    expect(await refusal(featuresNpz({ files: { data: notUtf8 } }))).toMatchObject({ code: "E_FEATURES_FORMAT", message: expect.stringMatching(/not valid UTF-8/) });
    await expectCliError(write("short.npz", featuresNpz({ files: { data: jsonNpy(names(2)) } })), "E_FEATURES_FORMAT");
  });

  it("a D that disagrees with the meta or with the encoder: E_FEATURE_DIM", async () => {
    const e = await refusal(featuresNpz({ meta: { data: jsonNpy({ kind: FEATURES_FILE_KIND, ...META, n: 3, d: 5 }) } }), "d.npz");
    expect(e.code).toBe("E_FEATURE_DIM");
    expect(e.message).toMatch(/'d' says 5 but the features are 4-d/);
    // Inception pool3 is 2048-d: a 4-d "inception" file is damaged, refused when it becomes a side.
    const inception = write("inception4.npz", writeFeaturesNpz({ n: 3, d: 4, data: rows(3, 4) }, names(3), { ...META, encoder: "inception", protocol: "clean" }));
    const side = await rejectionOf(resolveStatsSource(inception));
    expect(side.code).toBe("E_FEATURE_DIM");
    expect(side.message).toMatch(/inception4\.npz: holds 4-d features, but Inception pool3 features are 2048-d/);
    await expectCliError(inception, "E_FEATURE_DIM");
  });

  it("meta without the features kind, without the settings to compare, or naming an unknown encoder: E_FEATURES_FORMAT", async () => {
    const metaOf = (m: unknown) => featuresNpz({ meta: { data: jsonNpy(m) } });
    const { kind: _, ...noKind } = { kind: FEATURES_FILE_KIND, ...META, n: 3, d: 4 };
    expect((await refusal(metaOf(noKind))).message).toMatch(/meta\.kind must be "diffeval-features"/);
    expect((await refusal(metaOf({ kind: FEATURES_FILE_KIND, ...META, weights_sha256: undefined, n: 3, d: 4 }))).message).toMatch(/'weights_sha256' must name/);
    expect((await refusal(metaOf({ kind: FEATURES_FILE_KIND, ...META, n: 7, d: 4 }))).message).toMatch(/'n' says 7 rows but the features have 3/);
    expect((await refusal(metaOf([1, 2]))).code).toBe("E_FEATURES_FORMAT");
    const missing = await refusal(buildZip([{ name: "features.npy", data: writeNpy({ dtype: "<f4", shape: [3, 4], data: rows(3, 4) }) }]), "bare.npz");
    expect(missing.message).toMatch(/^bare\.npz: a features file needs arrays 'features', 'files' and 'meta'.*found 'features'/);
    const vgg = write("vgg.npz", writeFeaturesNpz({ n: 3, d: 4, data: rows(3, 4) }, names(3), { ...META, encoder: "vgg" }));
    expect(await rejectionOf(resolveStatsSource(vgg))).toMatchObject({ code: "E_FEATURES_FORMAT", message: expect.stringMatching(/encoder 'vgg'/) });
  });

  it("fewer than 2 rows: E_TOO_FEW_SAMPLES", async () => {
    const one = write("one.npz", writeFeaturesNpz({ n: 1, d: 4, data: rows(1, 4) }, names(1), META));
    expect((await rejectionOf(resolveStatsSource(one))).code).toBe("E_TOO_FEW_SAMPLES");
  });

  it("a header promising a billion rows in a few bytes: E_NPY_FORMAT before anything is allocated", async () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 2048), }";
    const bytes = featuresNpz({ features: { data: npyBytes(header, new Uint8Array(64)) } });
    expect((await refusal(bytes)).code).toBe("E_NPY_FORMAT");
    await expectCliError(write("billion.npz", bytes), "E_NPY_FORMAT");
  });

  it("a names entry declaring 69 MB for 3 rows: E_FEATURES_FORMAT before it is inflated", async () => {
    // Incompressible bytes, so that zip.ts's deflate-ratio bound (1032:1) lets the declared size through.
    const files = { data: new Uint8Array(randomBytes(70_000)), deflate: true, claimedSize: 69 * 2 ** 20 };
    const e = await refusal(featuresNpz({ files }), "names.npz");
    expect(e.code).toBe("E_FEATURES_FORMAT");
    expect(e.message).toMatch(/^names\.npz\[files\]: 72351744 bytes of names and metadata for 3 feature rows/);
    await expectCliError(write("names.npz", featuresNpz({ files })), "E_FEATURES_FORMAT");
  });
});

describe("hostile .npy + .json pairs", () => {
  const npy = (name: string, n = 3, d = 4) => write(name, writeNpy({ dtype: "<f4", shape: [n, d], data: rows(n, d) }));
  const sidecar = (name: string, v: unknown) => write(name, typeof v === "string" ? v : JSON.stringify(v));

  it("a sidecar listing the wrong number of files, or not JSON: E_FEATURES_FORMAT naming the sidecar", async () => {
    const file = npy("pair.npy");
    sidecar("pair.json", { ...META, n: 3, d: 4, files: names(4) });
    expect(await rejectionOf(readFeaturesSource(file))).toMatchObject({ code: "E_FEATURES_FORMAT", message: expect.stringMatching(/pair\.json \(the file list of .*pair\.npy\): lists 4 image names for 3/) });
    await expectCliError(file, "E_FEATURES_FORMAT");
    sidecar("pair.json", "{ not json");
    expect(await rejectionOf(readFeaturesSource(file))).toMatchObject({ code: "E_FEATURES_FORMAT", message: expect.stringMatching(/pair\.json: not valid JSON/) });
  });

  it("a .npy whose header promises more bytes than the file holds: E_NPY_FORMAT", async () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 4), }";
    const file = write("cut.npy", npyBytes(header, new Uint8Array(48)));
    sidecar("cut.json", { ...META, n: 1_000_000_000, d: 4, files: [] });
    expect((await rejectionOf(readFeaturesSource(file))).code).toBe("E_NPY_FORMAT");
    await expectCliError(file, "E_NPY_FORMAT");
  });

  it("an old sidecar (no kind) is read; a JSON file without 'files' leaves the .npy to other readers", async () => {
    const file = npy("old.npy");
    sidecar("old.json", { source: "x", ...META, n: 3, d: 4, files: names(3), skipped: [], version: "0.1.0" });
    expect((await readFeaturesSource(file))?.names).toEqual(names(3));
    sidecar("old.json", { prompt: "a cat" });
    expect(await readFeaturesSource(file)).toBeUndefined();
  });
});
