/**
 * Issue 17, arrays and archives: regression tests for the defect classes the fuzz audit found in
 * the .npy/.npz readers (buffer and file), the zip reader under npz files and zip image sources,
 * statistics files, shard parts, BMP and JPEG headers. Each builds its hostile bytes here (a few
 * hundred bytes each), expects the named DiffevalError in-process and, for crashes and blowups,
 * the real CLI (dist/, under a heap cap and an RSS watchdog) ending with exit 2 and that code.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { readNpy, writeNpy, type NpyArray } from "../../src/io/npy.js";
import { readNpzArrays, readStatsFile } from "../../src/io/npz-file.js";
import { readNpz, readStatsNpz, writeNpz } from "../../src/io/npz.js";
import { readShardPart } from "../../src/io/shard-file.js";
import { openImageSource } from "../../src/io/sources.js";
import { openZip, zipFromBytes } from "../../src/io/zip.js";
import { readJpegHeader } from "../../src/robustness/jpeg-header.js";
import { runCliCapped } from "../helpers/capped-run.js";
import { codeOf, errorOf, rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { npyBytes } from "../helpers/image-bytes.js";
import { expectNamedExit } from "../helpers/named-exit.js";
import { buildZip, type TestZipEntry } from "../helpers/zip-writer.js";

const STATS = fixture("reference", "stats_d64_real_savez.npz");
const STATS_DEFLATED = fixture("reference", "stats_d64_real_savez_compressed.npz");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-untrusted-arrays-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}


const f4Header = (shape: string, fortran = false) => `{'descr': '<f4', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': ${shape}, }`;

/** A stats-like npz: `mu.npy` as given plus a valid 1x1 sigma, so that only `mu` is hostile. */
function npzWithMu(mu: Partial<TestZipEntry>, opts: Parameters<typeof buildZip>[1] = {}): Uint8Array {
  return buildZip(
    [
      { name: "mu.npy", data: npyBytes(f4Header("(1,)"), new Uint8Array(4)), ...mu },
      { name: "sigma.npy", data: writeNpy({ dtype: "<f8", shape: [1, 1], data: Float64Array.of(1) }) },
    ],
    opts,
  );
}

/** Offsets of the records buildZip writes, for patching single fields. */
function centralHeaderAt(zip: Uint8Array, index = 0): number {
  const b = Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
  let found = -1;
  for (let p = 0, i = 0; p + 4 <= b.length; p++) {
    if (b.readUInt32LE(p) === 0x02014b50 && i++ === index) {
      found = p;
      break;
    }
  }
  if (found < 0) throw new Error("no central header");
  return found;
}

function patched(zip: Uint8Array, edit: (b: Buffer) => void): Uint8Array {
  const copy = Buffer.from(zip);
  edit(copy);
  return new Uint8Array(copy);
}

const eocdAt = (b: Buffer) => b.length - 22;

/** The CLI on `args` ends with exit 2 and `error[code]`, quickly and in bounded memory. */
async function expectCliError(args: string[], code: string): Promise<void> {
  expectNamedExit(await runCliCapped(args, { maxRssMb: 400, timeoutMs: 15_000 }), code, { maxMs: 15_000, maxRssMb: 400 });
}

/** `diffeval fid` with a hostile file as the real side and the fixture statistics as the fake side. */
const fidOn = (file: string) => ["fid", "--real", file, "--fake", STATS];

describe("issue 17: arrays and archives", () => {
  it("generic exception: RangeError (DataView) from readNpy on a truncated or odd .npy header", async () => {
    const v2 = npyBytes(f4Header("(1,)"), new Uint8Array(4), 2);
    expect(codeOf(() => readNpy(v2.subarray(0, 10), "cut.npy"))).toBe("E_NPY_FORMAT"); // v2 length field cut off
    expect(codeOf(() => readNpy(v2.subarray(0, 11), "cut.npy"))).toBe("E_NPY_FORMAT");
    const v1 = npyBytes(f4Header("(1,)"), new Uint8Array(4));
    expect(errorOf(() => readNpy(v1.subarray(0, 40), "cut.npy")).message).toMatch(/cut\.npy: truncated .npy file: the header is cut short/);
    const longHeader = npyBytes(f4Header("(1,)") + " ".repeat(20_000), new Uint8Array(4), 2);
    expect(errorOf(() => readNpy(longHeader, "long.npy")).message).toMatch(/longer than numpy's own limit of 10000/);
    const hostile = write("cut-header.npz", npzWithMu({ data: v2.subarray(0, 11) }));
    expect((await rejectionOf(readStatsFile(hostile))).code).toBe("E_NPY_FORMAT");
    await expectCliError(fidOn(hostile), "E_NPY_FORMAT");
  });

  it("generic exception: ERR_OUT_OF_RANGE in the zip reader (short zip64 extra, records past the file)", async () => {
    const zip64 = npzWithMu({}, { zip64: true });
    const cd = centralHeaderAt(zip64);
    const nameLen = Buffer.from(zip64).readUInt16LE(cd + 28);
    const cases: Record<string, Uint8Array> = {
      // the extra field's own length says 8 bytes, but size, compressed size and offset all overflowed
      shortExtra: patched(zip64, (b) => b.writeUInt16LE(8, cd + 46 + nameLen + 2)),
      // the entry's extra data is shorter than the zip64 field it holds
      cutExtra: patched(zip64, (b) => b.writeUInt16LE(12, cd + 30)),
      // the zip64 locator points past the end of the file
      locatorPastEnd: patched(zip64, (b) => b.writeBigUInt64LE(1n << 40n, eocdAt(b) - 20 + 8)),
      // the central directory offset lies past the file
      directoryPastEnd: patched(npzWithMu({}), (b) => b.writeUInt32LE(0x7ffffff0, eocdAt(b) + 16)),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      expect(codeOf(() => readNpz(bytes, `${what}.npz`)), what).toBe("E_NPZ_FORMAT");
      expect((await rejectionOf(readStatsFile(write(`${what}.npz`, bytes)))).code, what).toBe("E_NPZ_FORMAT");
    }
    await expectCliError(fidOn(path.join(dir, "shortExtra.npz")), "E_NPZ_FORMAT");
  });

  it("native abort: a zip length field allocated before it is checked (directory size, entry count, entry sizes)", async () => {
    const plain = npzWithMu({});
    const zip64 = npzWithMu({}, { zip64: true });
    const cases: Record<string, Uint8Array> = {
      hugeDirectory: patched(plain, (b) => b.writeUInt32LE(0xfffffff0, eocdAt(b) + 12)),
      hugeZip64Directory: patched(zip64, (b) => b.writeBigUInt64LE(1n << 52n, eocdAt(b) - 20 - 56 + 40)),
      hugeZip64Count: patched(zip64, (b) => b.writeBigUInt64LE(1n << 50n, eocdAt(b) - 20 - 56 + 32)),
      countBeyondDirectory: patched(plain, (b) => b.writeUInt16LE(0xfffe, eocdAt(b) + 10)),
      hugeCompressedSize: patched(plain, (b) => b.writeUInt32LE(0xfffffff0, centralHeaderAt(b) + 20)),
      hugeOffset: patched(plain, (b) => b.writeUInt32LE(0xfffffff0, centralHeaderAt(b) + 42)),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      expect(codeOf(() => readNpz(bytes, `${what}.npz`)), what).toBe("E_NPZ_FORMAT");
      expect((await rejectionOf(openZip(write(`${what}.npz`, bytes)))).code, what).toBe("E_NPZ_FORMAT");
    }
    expect(errorOf(() => zipFromBytes(cases.countBeyondDirectory, "x.zip")).message).toMatch(/65534 entries cannot fit/);
    await expectCliError(fidOn(path.join(dir, "hugeDirectory.npz")), "E_NPZ_FORMAT");
    // the same archive as an image source: refused when the source is opened, before any model loads
    const images = buildZip([{ name: "a.png", data: new Uint8Array(64) }]);
    const hostileImages = write("huge-directory.zip", patched(images, (b) => b.writeUInt32LE(0xfffffff0, eocdAt(b) + 12)));
    expect((await rejectionOf(openImageSource(hostileImages))).code).toBe("E_SOURCE");
    await expectCliError(fidOn(hostileImages), "E_SOURCE");
  });

  it("memory blowup: npz entry declaring 10^12 elements", async () => {
    const huge = npyBytes(f4Header("(1000000, 1000000)"));
    for (const deflate of [false, true]) {
      const bytes = npzWithMu({ data: huge, deflate });
      expect(errorOf(() => readNpz(bytes, "huge.npz")).code).toBe("E_NPY_FORMAT");
      const file = write(`huge-${deflate}.npz`, bytes);
      const e = await rejectionOf(readStatsFile(file));
      expect(e.code).toBe("E_NPY_FORMAT");
      expect(e.message).toContain(`huge-${deflate}.npz[mu]`); // names the file and the entry
    }
    // a header promising 10^8 elements, and an entry declaring exactly those 400 MB from a few
    // hundred compressed bytes: refused on the ratio before the 400 MB are allocated
    const promising = npyBytes(f4Header("(100000000,)"));
    const declared = promising.length + 400_000_000;
    const e = errorOf(() => readNpz(npzWithMu({ data: promising, deflate: true, claimedSize: declared }), "promise.npz"));
    expect(e.code).toBe("E_NPZ_FORMAT");
    expect(e.message).toMatch(new RegExp(`entry 'mu\\.npy' declares ${declared} bytes from \\d+ compressed, beyond deflate's maximum ratio`));
    await expectCliError(fidOn(path.join(dir, "huge-true.npz")), "E_NPY_FORMAT");
  });

  it("memory blowup: npz entry whose declared size exceeds deflate's 1032:1 ratio (a deflate bomb), buffer and file", async () => {
    const bomb = npzWithMu({ deflate: true, claimedSize: 4_000_000_000 });
    const e = errorOf(() => readNpz(bomb, "bomb.npz"));
    expect(e.code).toBe("E_NPZ_FORMAT");
    expect(e.message).toMatch(/bomb\.npz: not a readable \.npz \(zip\) archive: entry 'mu\.npy' declares 4000000000 bytes .*1032:1/);
    const file = write("bomb.npz", bomb);
    expect((await rejectionOf(readStatsFile(file))).code).toBe("E_NPZ_FORMAT");
    await expectCliError(fidOn(file), "E_NPZ_FORMAT");
    // the in-memory reader behind `stats merge`
    expect(codeOf(() => readShardPart(bomb, "bomb.npz"))).toBe("E_NPZ_FORMAT");
    await expectCliError(["stats", "merge", file, "--out", path.join(dir, "merged.npz")], "E_NPZ_FORMAT");
  });

  it("memory blowup: npz entry inflating far past what its .npy header promises (refused before inflating)", async () => {
    // 8 MB of zeros deflate to ~8 KB (within the ratio), behind a header that promises 4 bytes
    const padded = new Uint8Array(8_000_000);
    padded.set(npyBytes(f4Header("(1,)"), new Uint8Array(4)));
    const bytes = npzWithMu({ data: padded, deflate: true });
    expect(bytes.length).toBeLessThan(20_000);
    const e = errorOf(() => readNpz(bytes, "padded.npz"));
    expect(e.code).toBe("E_NPY_FORMAT");
    expect(e.message).toMatch(/padded\.npz\[mu\]: the \.npz entry holds 8000000 bytes but its \.npy header promises 132/);
    const file = write("padded.npz", bytes);
    expect((await rejectionOf(readNpzArrays(file, ["mu"]))).code).toBe("E_NPY_FORMAT");
    // an entry whose stream goes on past its declared size, read directly
    const data = new Uint8Array(5000).fill(3);
    const liar = zipFromBytes(buildZip([{ name: "x.npy", data, deflate: true, claimedSize: 4000 }]), "liar.zip");
    expect(errorOf(() => liar.read(liar.entries[0])).message).toMatch(/inflates to more than the 4000 bytes it declares/);
    const short = zipFromBytes(buildZip([{ name: "x.npy", data, deflate: true, claimedSize: 6000 }]), "short.zip");
    expect(errorOf(() => short.read(short.entries[0])).message).toMatch(/inflates to 5000 bytes, not the 6000 bytes it declares/);
  });

  it("memory blowup: zip image source entry declaring gigabytes", async () => {
    const file = write("bomb-images.zip", buildZip([{ name: "a.png", data: new Uint8Array(100), deflate: true, claimedSize: 3_000_000_000 }]));
    const source = await openImageSource(file);
    try {
      const e = await rejectionOf(source.items[0].read());
      expect(e.code).toBe("E_SOURCE");
      expect(e.message).toMatch(/bomb-images\.zip: .*entry 'a\.png' declares 3000000000 bytes/);
    } finally {
      await source.close();
    }
    const stored = write("stored-lie.zip", buildZip([{ name: "a.png", data: new Uint8Array(100), claimedSize: 3_000_000_000 }]));
    const s2 = await openImageSource(stored);
    try {
      expect((await rejectionOf(s2.items[0].read())).message).toMatch(/stored entry 'a\.png' declares 3000000000 bytes but holds 100/);
    } finally {
      await s2.close();
    }
  });

  it("accepted but inconsistent: npy shape whose element count is NaN", async () => {
    for (const shape of ["(1e308, 1e308, 0)", `(${"9".repeat(400)}, 0)`, "(0x10,)", "(2.0,)", "(-1,)"]) {
      expect(codeOf(() => readNpy(npyBytes(f4Header(shape)), "nan.npy")), shape).toBe("E_NPY_FORMAT");
    }
    // too big for any array even with a zero dimension (numpy: "array is too big")
    expect(codeOf(() => readNpy(npyBytes(f4Header("(4000000000, 4000000000, 0)")), "big.npy"))).toBe("E_NPY_FORMAT");
    const empty = readNpy(npyBytes(f4Header("(3, 0)")), "empty.npy");
    expect(empty.shape).toEqual([3, 0]);
    expect(empty.data.length).toBe(0);
    const file = write("nan-shape.npz", npzWithMu({ data: npyBytes(f4Header("(1e308, 1e308, 0)")) }));
    await expectCliError(fidOn(file), "E_NPY_FORMAT");
  });

  it("accepted but inconsistent: npy header with more than 64 dimensions", () => {
    const dims = (n: number) => `(${Array(n).fill("1").join(", ")},)`;
    expect(readNpy(npyBytes(f4Header(dims(64)), new Uint8Array(4)), "ok.npy").shape.length).toBe(64);
    expect(errorOf(() => readNpy(npyBytes(f4Header(dims(65)), new Uint8Array(4)), "deep.npy")).message).toMatch(
      /deep\.npy: .npy shape has 65 dimensions; numpy allows at most 64/,
    );
  });

  it("accepted but inconsistent: Fortran-order npy with 20,000 dimensions (refused at once; the reorder is O(numel))", () => {
    const started = performance.now();
    const header = f4Header(`(${Array(20_000).fill("1").join(",")},)`, true);
    expect(codeOf(() => readNpy(npyBytes(header, new Uint8Array(4), 2), "deep.npy"))).toBe("E_NPY_FORMAT");
    expect(performance.now() - started).toBeLessThan(500);
    // the reorder itself: a 2x3x4 array stored column-major comes back row-major
    const shape = [2, 3, 4];
    const fOrder = new Float32Array(24);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) fOrder[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
    const arr = readNpy(npyBytes(f4Header("(2, 3, 4)", true), new Uint8Array(fOrder.buffer)), "f.npy");
    expect(arr.shape).toEqual(shape);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expected.push(100 * i + 10 * j + k);
    expect(Array.from(arr.data)).toEqual(expected);
  });

  it("accepted but inconsistent: stats file whose sigma is not symmetric", async () => {
    const stats = (sigma: number[], mu = [0, 0]): Uint8Array =>
      writeNpz({
        mu: { dtype: "<f8", shape: [2], data: Float64Array.from(mu) },
        sigma: { dtype: "<f8", shape: [2, 2], data: Float64Array.from(sigma) },
      });
    const e = errorOf(() => readStatsNpz(stats([2, 0.5, 0.4, 1]), "skew.npz"));
    expect(e.code).toBe("E_STATS_FORMAT");
    expect(e.message).toMatch(/skew\.npz\[sigma\]: sigma is not symmetric \(entries \[0, 1\] and \[1, 0\] differ by 0\.100/);
    // within the tolerance (1e-6 of the largest entry): accepted, as are float32 round trips
    expect(readStatsNpz(stats([2, 0.5, 0.5 + 1e-7, 1]), "near.npz").gaussian.sigma[2]).toBeCloseTo(0.5, 6);
    const f32: Record<string, NpyArray> = {
      mu: { dtype: "<f4", shape: [2], data: Float32Array.of(0, 0) },
      sigma: { dtype: "<f4", shape: [2, 2], data: Float32Array.of(2, 0.1, 0.1, 1) },
    };
    expect(readStatsNpz(writeNpz(f32), "f32.npz").gaussian.sigma[1]).toBe(Math.fround(0.1));
    // NaN/Inf in mu or sigma
    expect(codeOf(() => readStatsNpz(stats([2, 0, 0, 1], [0, Infinity]), "inf.npz"))).toBe("E_NONFINITE");
    expect(codeOf(() => readStatsNpz(stats([2, NaN, NaN, 1]), "nan.npz"))).toBe("E_NONFINITE");
    // numpy's own files (np.cov, stored and deflated) still load
    for (const file of [STATS, STATS_DEFLATED]) expect((await readStatsFile(file)).gaussian.mu.length).toBe(64);
    const skew = write("skew.npz", stats([2, 0.5, 0.4, 1]));
    const sym = write("sym.npz", stats([2, 0.5, 0.5, 1]));
    await expectCliError(["fid", "--real", skew, "--fake", sym], "E_STATS_FORMAT");
  });

  it("memory blowup: shard part claiming 10^12 shards (and parts with out-of-range or non-finite values)", async () => {
    const part = (meta: Record<string, unknown>, scatter = Float64Array.of(1)): Uint8Array => {
      const json = new TextEncoder().encode(JSON.stringify(meta));
      return writeNpz({
        shift: { dtype: "<f8", shape: [1], data: Float64Array.of(0) },
        sum: { dtype: "<f8", shape: [1], data: Float64Array.of(0) },
        scatter: { dtype: "<f8", shape: [1, 1], data: scatter },
        meta: { dtype: "|u1", shape: [json.length], data: json },
      });
    };
    const meta = { kind: "diffeval-stats-shard", format: 1, d: 1, n: 3, skipped: 0, shard: { index: 0, count: 1e12 } };
    expect(codeOf(() => readShardPart(part(meta), "many.npz"))).toBe("E_SHARD_FORMAT");
    expect(codeOf(() => readShardPart(part({ ...meta, shard: { index: 5, count: 2 } }), "index.npz"))).toBe("E_SHARD_FORMAT");
    expect(codeOf(() => readShardPart(part({ ...meta, skipped: "x" }), "skipped.npz"))).toBe("E_SHARD_FORMAT");
    expect(codeOf(() => readShardPart(part({ ...meta, shard: { index: 0, count: 1 } }, Float64Array.of(NaN)), "nan.npz"))).toBe("E_NONFINITE");
    const file = write("many-shards.npz", part(meta));
    await expectCliError(["stats", "merge", file, "--out", path.join(dir, "merged.npz")], "E_SHARD_FORMAT");
  });

  it("memory blowup: BMP whose header declares more pixels than the limit (refused before the pixels are allocated)", async () => {
    const bmp = Buffer.alloc(54 + 2 * 8);
    bmp.write("BM", 0, "latin1");
    bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(2, 18); // 2 x 2, 24-bit: 2 rows of 8 bytes (6 + padding)
    bmp.writeInt32LE(2, 22);
    bmp.writeUInt16LE(24, 28);
    expect((await decodeImage(new Uint8Array(bmp), "ok.bmp")).width).toBe(2);
    expect((await rejectionOf(decodeImage(new Uint8Array(bmp), "big.bmp", { maxPixels: 3 }))).code).toBe("E_IMAGE_TOO_LARGE");
    const huge = Buffer.from(bmp);
    huge.writeInt32LE(2_000_000_000, 18);
    huge.writeInt32LE(-2_000_000_000, 22);
    expect((await rejectionOf(decodeImage(new Uint8Array(huge), "huge.bmp"))).code).toBe("E_IMAGE_TOO_LARGE");
    for (let cut = 0; cut < bmp.length; cut += 7) {
      const e = await rejectionOf(decodeImage(new Uint8Array(bmp.subarray(0, cut)), "cut.bmp"));
      expect(e.code, `cut at ${cut}`).toBe("E_IMAGE_DECODE");
    }
  });

  it("generic exception: JPEG header whose DQT/SOF lengths run past the bytes", () => {
    const jpeg = new Uint8Array(readFileSync(fixture("images", "real", "real_0003.jpg")));
    const header = readJpegHeader(jpeg);
    expect(header?.quantTables.size).toBeGreaterThan(0);
    // every cut through the header parses to a header or to undefined, never an exception
    for (let cut = 0; cut < 700; cut++) expect(() => readJpegHeader(jpeg.subarray(0, cut))).not.toThrow();
    const dqt = Uint8Array.of(0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, ...new Array(64).fill(1), 0xff, 0xda);
    expect(readJpegHeader(dqt)?.quantTables.get(0)?.length).toBe(64);
    const longDqt = dqt.slice();
    longDqt[5] = 0xff; // segment length past the bytes
    expect(readJpegHeader(longDqt)).toBeUndefined();
    const badId = dqt.slice();
    badId[6] = 0x07; // table slot 7: T.81 has four
    expect(readJpegHeader(badId)).toBeUndefined();
    const sof = Uint8Array.of(0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 8, 0, 16, 0, 16, 200, 1, 0x11, 0, 0xff, 0xda);
    expect(readJpegHeader(sof)).toBeUndefined(); // 200 components announced, 1 present
  });
});
