/**
 * Image arrays (.npy / .npz) as an image source (issue 18, item 1): the fixture images resized to
 * 64 x 64 and saved as PNGs, and the same pixels as arrays in every layout and container the
 * field writes, must give the PNG folder's numbers; the row reader must give the same pixels
 * whatever the container (stored, deflated, zip64, npy v1-v3, Fortran order).
 */
import { readdirSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { arrayImagesFromBytes, openArrayImages, roundHalfEven, type ArrayImages } from "../../src/io/array-source.js";
import { decodeImage } from "../../src/io/decode.js";
import { writeNpy, type NpyArray } from "../../src/io/npy.js";
import { writeNpz } from "../../src/io/npz.js";
import { openImageSource } from "../../src/io/sources.js";
import { isStatsFile } from "../../src/pipeline/resolve-source.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { npyBytes } from "../helpers/image-bytes.js";
import { buildZip } from "../helpers/zip-writer.js";

const SIZE = 64;
const PIXELS = SIZE * SIZE * 3;

let weights: string;
let tmp: string;
/** Per side: the PNG folder, and the images' pixels (N x 64 x 64 x 3, the folder's sorted order). */
const sides: Record<"real" | "fake", { folder: string; pixels: Uint8Array; n: number }> = {} as never;

/** Writes `bytes` under the temp folder and returns the path. */
function put(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, name);
  writeFileSync(file, bytes);
  return file;
}

const u8 = (shape: number[], data: Uint8Array): NpyArray => ({ dtype: "|u1", shape, data });

/** N x H x W x C -> N x C x H x W. */
function toNchw(pixels: Uint8Array, n: number, h: number, w: number, c: number): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((i * c + k) * h + y) * w + x] = pixels[((i * h + y) * w + x) * c + k];
  return out;
}

/** The data of a C-order array in Fortran (column-major) order, as numpy writes `fortran_order: True`. */
function toFortran(data: Uint8Array, shape: number[]): Uint8Array {
  const out = new Uint8Array(data.length);
  const rank = shape.length;
  const idx = new Array(rank).fill(0);
  for (let c = 0; c < data.length; c++) {
    let f = 0;
    for (let k = rank - 1; k >= 0; k--) f = f * shape[k] + idx[k];
    out[f] = data[c];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

const header = (descr: string, shape: number[], fortran = false) =>
  `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;

/** Byte equality of two large arrays (vitest's element-wise toEqual takes a second on 400 KB). */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what?: string): void {
  expect(actual.length, what).toBe(expected.length);
  expect(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)), what).toBe(true);
}

/** Every row decoded (through the BMP the source hands out) into 8-bit RGB, concatenated. */
async function decodedRows(images: ArrayImages): Promise<Uint8Array> {
  const rows = await Promise.all(images.items.map(async (it) => (await decodeImage(await it.read(), it.location)).data));
  await images.close();
  const out = new Uint8Array(rows.reduce((sum, r) => sum + r.length, 0));
  rows.reduce((at, r) => (out.set(r, at), at + r.length), 0);
  return out;
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-array-source-"));
  for (const side of ["real", "fake"] as const) {
    const src = fixture("images", side);
    const names = readdirSync(src).sort();
    const folder = path.join(tmp, "png", side);
    mkdirSync(folder, { recursive: true });
    const pixels = new Uint8Array(names.length * PIXELS);
    for (let i = 0; i < names.length; i++) {
      const raw = await sharp(path.join(src, names[i])).removeAlpha().resize(SIZE, SIZE, { fit: "fill" }).raw().toBuffer();
      pixels.set(raw, i * PIXELS);
      // Same base name as the fixture, so the folder's sorted order is the array's row order.
      await sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(path.join(folder, `${path.parse(names[i]).name}.png`));
    }
    sides[side] = { folder, pixels, n: names.length };
  }
}, 120_000);

describe("array sources: the same pixels as the PNG folder", () => {
  it("rows of every container and layout decode to the PNG pixels", async () => {
    const { pixels, n } = sides.real;
    const shape = [n, SIZE, SIZE, 3];
    const npy = writeNpy(u8(shape, pixels));
    const variants: Record<string, Uint8Array> = {
      "stored npz": writeNpz({ arr_0: u8(shape, pixels) }),
      "deflated npz": writeNpz({ arr_0: u8(shape, pixels) }, { compress: true }),
      "zip64 npz (numpy's force_zip64 local extras)": buildZip([{ name: "arr_0.npy", data: npy }], { localZip64: true }),
      "zip64 npz (zip64 directory)": buildZip([{ name: "arr_0.npy", data: npy, deflate: true }], { zip64: true }),
      "npy v1": npy,
      "npy v2": npyBytes(header("|u1", shape), pixels, 2),
      "npy v3": npyBytes(header("|u1", shape), pixels, 3),
      "NCHW npy": writeNpy(u8([n, 3, SIZE, SIZE], toNchw(pixels, n, SIZE, SIZE, 3))),
      "Fortran-order npy": npyBytes(header("|u1", shape, true), toFortran(pixels, shape)),
      "Fortran-order stored npz": buildZip([{ name: "arr_0.npy", data: npyBytes(header("|u1", shape, true), toFortran(pixels, shape)) }]),
    };
    for (const [what, bytes] of Object.entries(variants)) {
      expectSameBytes(await decodedRows(await arrayImagesFromBytes(bytes, `${what}.npz`)), pixels, what);
    }
    // The same through a file on disk.
    expectSameBytes(await decodedRows(await openArrayImages(put("rows.npz", variants["deflated npz"]))), pixels);
    expectSameBytes(await decodedRows(await openArrayImages(put("rows-f.npy", variants["Fortran-order npy"]))), pixels);
  });

  it("replicates a grey channel to RGB and drops alpha, as PIL's convert('RGB') does", async () => {
    const n = 2;
    const grey = Uint8Array.from({ length: n * 4 * 5 }, (_, i) => (i * 37) % 256);
    const rows = await decodedRows(await arrayImagesFromBytes(writeNpy(u8([n, 4, 5, 1], grey)), "grey.npy"));
    expect(rows).toEqual(Uint8Array.from([...grey].flatMap((v) => [v, v, v])));
    const rgba = Uint8Array.from({ length: n * 4 * 5 * 4 }, (_, i) => (i * 11) % 256);
    const rgb = Uint8Array.from({ length: n * 4 * 5 * 3 }, (_, i) => rgba[Math.floor(i / 3) * 4 + (i % 3)]);
    expect(await decodedRows(await arrayImagesFromBytes(writeNpy(u8([n, 4, 5, 4], rgba)), "rgba.npy"))).toEqual(rgb);
    // An ambiguous shape ([N, 3, 3, 3]) is N x H x W x C, as ADM writes.
    const cube = Uint8Array.from({ length: 27 }, (_, i) => i);
    const images = await arrayImagesFromBytes(writeNpy(u8([1, 3, 3, 3], cube)), "cube.npy");
    expect(images.layout.channelsFirst).toBe(false);
    expect(await decodedRows(images)).toEqual(cube);
  });

  it("reads a deflated entry in order with one inflater, and again from the start when asked to go back", async () => {
    const { pixels, n } = sides.fake;
    const images = await arrayImagesFromBytes(writeNpz({ arr_0: u8([n, SIZE, SIZE, 3], pixels) }, { compress: true }), "fake.npz");
    const row = async (i: number) => (await decodeImage(await images.items[i].read(), "")).data;
    const expected = (i: number) => pixels.subarray(i * PIXELS, (i + 1) * PIXELS);
    for (const i of [5, 6, 2, n - 1, 0]) expectSameBytes(await row(i), expected(i), `row ${i}`);
  });

  it("names every image file.npz#key[i], and --limit keeps a subset of those names", async () => {
    const file = put("named.npz", writeNpz({ arr_0: u8([sides.real.n, SIZE, SIZE, 3], sides.real.pixels) }));
    const source = await openImageSource(file);
    expect(source.kind).toBe("array");
    expect(source.items.map((it) => it.name).slice(0, 2)).toEqual(["named.npz#arr_0[0]", "named.npz#arr_0[1]"]);
    expect(source.items[3].location).toBe(`${file}#arr_0[3]`);
    await source.close();
    const subset = await openImageSource(file, { limit: 5, seed: 1 });
    expect(subset.items).toHaveLength(5);
    for (const it of subset.items) expect(it.name).toMatch(/^named\.npz#arr_0\[\d+\]$/);
    await subset.close();
    const npy = await openImageSource(put("named.npy", writeNpy(u8([2, 2, 2, 3], new Uint8Array(24)))));
    expect(npy.items.map((it) => it.name)).toEqual(["named.npy[0]", "named.npy[1]"]);
    await npy.close();
  });

  it("picks --array-key, else arr_0, else the only image-shaped array; otherwise lists keys and shapes", async () => {
    const img = u8([2, 4, 4, 3], Uint8Array.from({ length: 96 }, (_, i) => i));
    const other = u8([2, 4, 4, 3], new Uint8Array(96).fill(200));
    const labels: NpyArray = { dtype: "<f8", shape: [2], data: Float64Array.of(1, 2) };
    const first = async (bytes: Uint8Array, arrayKey?: string) => (await decodedRows(await arrayImagesFromBytes(bytes, "k.npz", { arrayKey })))[0];
    expect(await first(writeNpz({ samples: img, labels }))).toBe(0); // the only image-shaped array
    expect(await first(writeNpz({ other, arr_0: img }))).toBe(0); // arr_0 first
    expect(await first(writeNpz({ other, arr_0: img }), "other")).toBe(200);
    const several = await rejectionOf(arrayImagesFromBytes(writeNpz({ a: img, b: other, labels }), "several.npz"));
    expect(several.code).toBe("E_USAGE");
    expect(several.message).toMatch(/several\.npz: several arrays .* --array-key: 'a' \(2 x 4 x 4 x 3, \|u1\), 'b' \(2 x 4 x 4 x 3, \|u1\), 'labels' \(2, <f8\)/);
    const missing = await rejectionOf(arrayImagesFromBytes(writeNpz({ arr_0: img }), "m.npz", { arrayKey: "x" }));
    expect(missing.code).toBe("E_USAGE");
    expect(missing.message).toMatch(/m\.npz: --array-key 'x' names no array .* 'arr_0' \(2 x 4 x 4 x 3, \|u1\)/);
    const none = await rejectionOf(arrayImagesFromBytes(writeNpz({ labels }), "none.npz"));
    expect(none.code).toBe("E_NPY_FORMAT");
    expect(none.message).toMatch(/none\.npz: no image array .* 'labels' \(2, <f8\)/);
  });

  it("converts floats by clamping and rounding half to even; uint8 -> [-1, 1] -> uint8 round-trips exactly", async () => {
    expect([0.5, 1.5, 2.5, 2.4999, 2.5001, 254.5].map(roundHalfEven)).toEqual([0, 2, 2, 2, 3, 254]);
    const grey = async (data: Float32Array, lo: number, hi: number) => {
      const bytes = writeNpy({ dtype: "<f4", shape: [1, 3, 3, 1], data });
      return [...(await decodedRows(await arrayImagesFromBytes(bytes, "f.npy", { arrayRange: [lo, hi] })))].filter((_, i) => i % 3 === 0);
    };
    expect(await grey(Float32Array.of(-3, 0.5, 1.5, 2.5, 254.5, 255.5, 300, 7.49, 7.51), 0, 255)).toEqual([0, 0, 2, 2, 254, 255, 255, 7, 8]);
    expect(await grey(Float32Array.of(-1, 0, 0.5, 1, 2, -Infinity, Infinity, 0.25, 0.75), 0, 1)).toEqual([0, 0, 128, 255, 255, 0, 255, 64, 191]);
    const all = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
    const asFloat = Float32Array.from(all, (v) => v / 127.5 - 1);
    const f64 = Float64Array.from(all, (v) => v / 127.5 - 1);
    for (const data of [asFloat, f64]) {
      const arr: NpyArray = { dtype: data instanceof Float32Array ? "<f4" : "<f8", shape: [1, 16, 16, 3], data };
      expect(await decodedRows(await arrayImagesFromBytes(writeNpy(arr), "m.npy", { arrayRange: [-1, 1] }))).toEqual(all);
    }
  });

  it("tells an ADM reference batch (mu, sigma and arr_0) as statistics by default, images with --array-key arr_0", async () => {
    const mu: NpyArray = { dtype: "<f8", shape: [2], data: Float64Array.of(0, 1) };
    const sigma: NpyArray = { dtype: "<f8", shape: [2, 2], data: Float64Array.of(1, 0, 0, 1) };
    const arr_0 = u8([2, 4, 4, 3], new Uint8Array(96));
    const adm = put("VIRTUAL_ref.npz", writeNpz({ arr_0, mu, sigma }));
    const samples = put("samples.npz", writeNpz({ arr_0 }));
    const stats = put("stats.npz", writeNpz({ mu, sigma }));
    expect(await isStatsFile(adm)).toBe(true);
    expect(await isStatsFile(adm, "arr_0")).toBe(false);
    expect(await isStatsFile(samples)).toBe(false);
    // --array-key names an array the stats file lacks: that side stays statistics.
    expect(await isStatsFile(stats, "arr_0")).toBe(true);
  });
});

describe("array sources through the CLI", () => {
  const flags = () => cpuFlags(weights);
  const fidJson = async (real: string, fake: string, extra: string[] = []) => {
    const r = await runCli(["fid", "--real", real, "--fake", fake, "--json", ...extra, ...flags()]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { fid: number; n_real: number; n_fake: number };
  };
  const arrays = (side: "real" | "fake") => {
    const { pixels, n } = sides[side];
    const shape = [n, SIZE, SIZE, 3];
    return {
      stored: put(`${side}.npz`, writeNpz({ arr_0: u8(shape, pixels) })),
      deflated: put(`${side}-deflated.npz`, writeNpz({ arr_0: u8(shape, pixels) }, { compress: true })),
      nchw: put(`${side}-nchw.npz`, writeNpz({ arr_0: u8([n, 3, SIZE, SIZE], toNchw(pixels, n, SIZE, SIZE, 3)) })),
      npy: put(`${side}.npy`, writeNpy(u8(shape, pixels))),
      float: put(`${side}-float.npz`, writeNpz({ arr_0: { dtype: "<f4", shape, data: Float32Array.from(pixels, (v) => v / 127.5 - 1) } })),
    };
  };
  let real: ReturnType<typeof arrays>;
  let fake: ReturnType<typeof arrays>;
  let folderFid: number;
  beforeAll(async () => {
    real = arrays("real");
    fake = arrays("fake");
    folderFid = (await fidJson(sides.real.folder, sides.fake.folder)).fid;
  });

  const close = (a: number, b: number, rel: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.abs(b));

  it("FID of uint8 NHWC (stored, deflated), NCHW and .npy arrays equals the PNG folder's within 1e-9", async () => {
    for (const kind of ["stored", "deflated", "nchw", "npy"] as const) {
      const json = await fidJson(real[kind], fake[kind]);
      close(json.fid, folderFid, 1e-9);
      expect(json).toMatchObject({ n_real: sides.real.n, n_fake: sides.fake.n });
    }
  });

  it("metrics --json (fid, kid, is, pr, dc) from the arrays equal the PNG folder's within 1e-9", async () => {
    const metrics = async (r: string, f: string) => {
      const out = await runCli(["metrics", "--real", r, "--fake", f, "--metrics", "fid,kid,is,pr,dc", "--json", ...flags()]);
      expect(out.code, out.stderr).toBe(0);
      return JSON.parse(out.stdout);
    };
    const folder = await metrics(sides.real.folder, sides.fake.folder);
    const array = await metrics(real.stored, fake.deflated);
    for (const key of ["fid", "precision", "recall", "density", "coverage"]) close(array[key], folder[key], 1e-9);
    close(array.kid.mean, folder.kid.mean, 1e-9);
    close(array.kid.std, folder.kid.std, 1e-9);
    close(array.is.mean, folder.is.mean, 1e-9);
    close(array.is.std, folder.is.std, 1e-9);
  });

  it("a float32 [-1, 1] copy with --array-range -1,1 gives the same FID within 1e-6; without it, it is refused", async () => {
    close((await fidJson(real.float, fake.float, ["--array-range", "-1,1"])).fid, folderFid, 1e-6);
    const r = await runCli(["fid", "--real", real.float, "--fake", fake.stored, ...flags()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_USAGE\]: .*real-float\.npz#arr_0: a float32 image array needs --array-range 0,1 \| -1,1 \| 0,255/m);
    const bad = await runCli(["fid", "--real", real.float, "--fake", fake.stored, "--array-range", "0,2", ...flags()]);
    expect(bad.stderr).toMatch(/^error\[E_USAGE\]: --array-range must be one of/m);
  });

  it("an ADM reference batch is read as images with --array-key arr_0", async () => {
    const mu: NpyArray = { dtype: "<f8", shape: [2], data: Float64Array.of(0, 1) };
    const sigma: NpyArray = { dtype: "<f8", shape: [2, 2], data: Float64Array.of(1, 0, 0, 1) };
    const adm = put("adm-ref.npz", writeNpz({ arr_0: u8([sides.real.n, SIZE, SIZE, 3], sides.real.pixels), mu, sigma }));
    close((await fidJson(adm, fake.stored, ["--array-key", "arr_0"])).fid, folderFid, 1e-9);
    // Without the key it is statistics (2-d here, so the dimensions disagree with the images' 2048).
    const r = await runCli(["fid", "--real", adm, "--fake", fake.stored, ...flags()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_FEATURE_DIM\]/);
  });
});
