/**
 * Issue 18, hostile image arrays: an .npy/.npz image source (io/array-source.ts) refuses a wrong
 * rank or dtype, pickled arrays, a truncated npy inside an npz, a shape promising more bytes than
 * the file holds, absurd shapes, rows past the decoder's pixel limit, damaged deflate streams and
 * NaN pixels, each with a named error that names the file (and the row, where one is at fault),
 * before allocating anything the header asks for. The open-time refusals also go through the real
 * CLI under a heap cap and an RSS watchdog.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { arrayImagesFromBytes, MAX_ARRAY_IMAGES } from "../../src/io/array-source.js";
import { writeNpy } from "../../src/io/npy.js";
import { writeNpz } from "../../src/io/npz.js";
import { openImageSource } from "../../src/io/sources.js";
import { rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { npyBytes } from "../helpers/image-bytes.js";
import { expectFidRefusesFile } from "../helpers/named-exit.js";
import { xorshift32 } from "../helpers/xorshift.js";
import { buildZip } from "../helpers/zip-writer.js";

const STATS = fixture("reference", "stats_d64_real_savez.npz");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-untrusted-image-arrays-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

const header = (descr: string, shape: string, fortran = false) => `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': ${shape}, }`;

/** The code and message opening `bytes` as an image array (and reading every row) ends with. */
async function failure(bytes: Uint8Array, name: string, opts: Parameters<typeof arrayImagesFromBytes>[2] = {}) {
  return rejectionOf(
    (async () => {
      const images = await arrayImagesFromBytes(bytes, name, opts);
      for (const item of images.items) await item.read();
    })(),
  );
}

const expectCliError = (file: string, code: string) => expectFidRefusesFile(file, STATS, code);

describe("issue 18: hostile image arrays", () => {
  it("a wrong rank, an unreadable dtype and a pickled array are refused by name", async () => {
    const rank3 = await failure(npyBytes(header("|u1", "(2, 4, 4)"), new Uint8Array(32)), "rank3.npy");
    expect(rank3).toMatchObject({ code: "E_NPY_FORMAT" });
    expect(rank3.message).toMatch(/rank3\.npy: shape \(2, 4, 4\) is not an image array: expected N x H x W x C/);
    expect((await failure(npyBytes(header("|u1", "(2, 5, 6, 5)"), new Uint8Array(300)), "c5.npy")).code).toBe("E_NPY_FORMAT");
    for (const descr of ["<i4", ">f4", "<f2"]) {
      expect((await failure(npyBytes(header(descr, "(1, 2, 2, 3)"), new Uint8Array(48)), `${descr}.npy`)).code, descr).toBe("E_NPY_DTYPE");
    }
    const pickled = npyBytes(header("|O", "(1, 2, 2, 3)"), new Uint8Array(96));
    expect((await failure(pickled, "objects.npy")).code).toBe("E_NPZ_PICKLE");
    const inNpz = await failure(buildZip([{ name: "arr_0.npy", data: pickled }]), "objects.npz");
    expect(inNpz.code).toBe("E_NPZ_PICKLE");
    expect(inNpz.message).toMatch(/objects\.npz#arr_0/);
    await expectCliError(write("rank3.npy", npyBytes(header("|u1", "(2, 4, 4)"), new Uint8Array(32))), "E_NPY_FORMAT");
  });

  it("a truncated npy inside an npz, and an .npy whose shape promises more bytes than the file holds", async () => {
    const full = writeNpy({ dtype: "|u1", shape: [4, 8, 8, 3], data: new Uint8Array(768) });
    for (const deflate of [false, true]) {
      const cut = await failure(buildZip([{ name: "arr_0.npy", data: full.subarray(0, full.length - 100), deflate }]), "cut.npz");
      expect(cut.code).toBe("E_NPY_FORMAT");
      expect(cut.message).toMatch(/cut\.npz#arr_0: the \.npz entry holds \d+ bytes but its \.npy header promises \d+/);
    }
    const short = full.subarray(0, full.length - 1);
    const npy = await failure(short, "short.npy");
    expect(npy.code).toBe("E_NPY_FORMAT");
    expect(npy.message).toMatch(/short\.npy: truncated \.npy file: shape \(4, 8, 8, 3\) of \|u1 needs 768 data bytes, the file holds 767/);
    await expectCliError(write("short.npy", short), "E_NPY_FORMAT");
  });

  it("absurd shapes are refused from the header alone, before anything is allocated", async () => {
    const cases: Record<string, [string, string]> = {
      "beyond the bytes": ["(1000000000000, 64, 64, 3)", "E_NPY_FORMAT"],
      "beyond 2^53 bytes": ["(9007199254740991, 4096, 4096, 3)", "E_NPY_FORMAT"],
      "a row past the pixel limit": ["(1, 20000, 20000, 3)", "E_IMAGE_TOO_LARGE"],
      "no images": ["(0, 64, 64, 3)", "E_EMPTY_SOURCE"],
      "empty images": ["(5, 0, 64, 3)", "E_NPY_FORMAT"],
    };
    for (const [what, [shape, code]] of Object.entries(cases)) {
      const bytes = npyBytes(header("|u1", shape), new Uint8Array(64));
      const e = await failure(bytes, "absurd.npy");
      expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(/^absurd\.npy: /);
    }
    await expectCliError(write("huge-row.npy", npyBytes(header("|u1", "(1, 20000, 20000, 3)"))), "E_IMAGE_TOO_LARGE");
    await expectCliError(write("absurd.npy", npyBytes(header("|u1", "(1000000000000, 64, 64, 3)"))), "E_NPY_FORMAT");
    // A deflated entry cannot claim more than deflate's ratio allows from its compressed bytes.
    const bomb = buildZip([{ name: "arr_0.npy", data: npyBytes(header("|u1", "(1, 14000, 14000, 1)")), deflate: true, claimedSize: 196_000_128 }]);
    expect((await failure(bomb, "bomb.npz")).code).toBe("E_NPZ_FORMAT");
    await expectCliError(write("bomb.npz", bomb), "E_NPZ_FORMAT");
  });

  it("more images than one source reads are refused (E_SOURCE), however few bytes each", async () => {
    const n = MAX_ARRAY_IMAGES + 1;
    const e = await failure(npyBytes(header("|u1", `(${n}, 1, 1, 1)`), new Uint8Array(n)), "many.npy");
    expect(e.code).toBe("E_SOURCE");
    expect(e.message).toMatch(/many\.npy: 2097153 images in one array, more than the 2097152/);
  });

  it("a damaged deflate stream is named with the row being read", async () => {
    // Incompressible rows (xorshift bytes), 48 KB each, so the entry spans several inflate chunks and deflate blocks.
    const n = 6;
    const next = xorshift32(18);
    const pixels = Uint8Array.from({ length: n * 128 * 128 * 3 }, () => next() >>> 24);
    const full = writeNpy({ dtype: "|u1", shape: [n, 128, 128, 3], data: pixels });
    // The stream ends after half the entry while the directory declares all of it.
    const half = buildZip([{ name: "arr_0.npy", data: full.subarray(0, full.length / 2), deflate: true, claimedSize: full.length }]);
    const cut = await failure(half, "half.npz");
    expect(cut.code).toBe("E_NPZ_FORMAT");
    expect(cut.message).toMatch(/half\.npz#arr_0\[[23]\]: the deflated entry/);
    const corrupt = await failure(buildZip([{ name: "arr_0.npy", data: full, deflate: true, corrupt: true }]), "corrupt.npz");
    expect(corrupt.code).toBe("E_NPZ_FORMAT");
    // the header itself cannot be inflated: named with the entry
    expect(corrupt.message).toMatch(/corrupt\.npz/);
    // A stream that inflates fine but not to the bytes its CRC promises.
    const badCrc = Buffer.from(buildZip([{ name: "arr_0.npy", data: full, deflate: true }]));
    const cd = badCrc.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    badCrc.writeUInt32LE((badCrc.readUInt32LE(cd + 16) ^ 1) >>> 0, cd + 16);
    const crc = await failure(new Uint8Array(badCrc), "crc.npz");
    expect(crc.code).toBe("E_NPZ_FORMAT");
    expect(crc.message).toMatch(/crc\.npz#arr_0\[5\]: the deflated entry fails its CRC-32 check/);
  });

  it("NaN pixels, a Fortran-order deflated entry and a range on a uint8 array are refused by name", async () => {
    const data = new Float32Array(2 * 2 * 2 * 3).fill(0.5);
    data[15] = NaN;
    const nan = await failure(writeNpy({ dtype: "<f4", shape: [2, 2, 2, 3], data }), "nan.npy", { arrayRange: [0, 1] });
    expect(nan).toMatchObject({ code: "E_NONFINITE" });
    expect(nan.message).toMatch(/^nan\.npy\[1\]: the image holds a NaN pixel value/);
    const fortran = buildZip([{ name: "arr_0.npy", data: npyBytes(header("|u1", "(2, 2, 2, 3)", true), new Uint8Array(24)), deflate: true }]);
    const f = await failure(fortran, "fortran.npz");
    expect(f.code).toBe("E_NPY_FORMAT");
    expect(f.message).toMatch(/fortran\.npz#arr_0: a Fortran-order array in a deflated \.npz entry/);
    const ranged = await failure(writeNpz({ arr_0: { dtype: "|u1", shape: [1, 2, 2, 3], data: new Uint8Array(12) } }), "u8.npz", { arrayRange: [-1, 1] });
    expect(ranged.code).toBe("E_USAGE");
  });

  it("an image source named .npy that is not an array is refused as an array, not read as a list", async () => {
    const e = await rejectionOf(openImageSource(write("text.npy", new TextEncoder().encode("a.png\nb.png\n"))));
    expect(e.code).toBe("E_NPY_FORMAT");
    expect(e.message).toMatch(/text\.npy: not a \.npy array/);
  });
});
