import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { zipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { decodeImage } from "../../src/io/decode.js";
import { openImageSource } from "../../src/io/sources.js";
import { mulberry32, seededSubsetIndices } from "../../src/random/mulberry32.js";
import { fixture } from "../helpers/fixtures.js";

let tmp: string;
const png = () => new Uint8Array(readFileSync(fixture("images", "odd", "tiny.png")));

function put(rel: string, data: Uint8Array | string = png()): void {
  const file = path.join(tmp, ...rel.split("/"));
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, data);
}

async function openError(spec: string, opts = {}): Promise<unknown> {
  try {
    const s = await openImageSource(spec, opts);
    await s.close();
  } catch (e) {
    return e;
  }
  throw new Error(`${spec} opened without error`);
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-sources-"));
  for (const rel of ["tree/b.png", "tree/a.JPG", "tree/a-b/z.webp", "tree/a/y.tiff", "tree/sub/deep/x.bmp", "tree/é.png", "tree/Z.png"]) put(rel);
  put("tree/notes.txt", "not an image");
  put("tree/.hidden.png");
  put("tree/.git/obj.png");
  symlinkSync(path.join(tmp, "tree", "sub"), path.join(tmp, "tree", "sub", "loop")); // a cycle
  mkdirSync(path.join(tmp, "empty", "inner"), { recursive: true });
  put("empty/inner/readme.md", "#");
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("folder source", () => {
  it("walks recursively, keeps image extensions (any case), skips hidden files, sorts by code point", async () => {
    const s = await openImageSource(path.join(tmp, "tree"));
    expect(s.kind).toBe("folder");
    // '-' (U+2D) < '/' (U+2F) < 'Z' < 'a' < 'b' < 's' < 'é' (U+E9): Python's sorted() order
    expect(s.items.map((i) => i.name)).toEqual(["Z.png", "a-b/z.webp", "a.JPG", "a/y.tiff", "b.png", "sub/deep/x.bmp", "é.png"]);
    expect(await s.items[0].read()).toEqual(png());
    await s.close();
  });

  it("an empty folder gives E_EMPTY_SOURCE naming the folder and the extensions", async () => {
    const e = await openError(path.join(tmp, "empty"));
    expect(isDiffevalError(e, "E_EMPTY_SOURCE")).toBe(true);
    expect((e as Error).message).toContain(path.join(tmp, "empty"));
    expect((e as Error).message).toContain(".png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff");
  });

  it("a missing path gives E_SOURCE", async () => {
    const e = await openError(path.join(tmp, "nope"));
    expect(isDiffevalError(e, "E_SOURCE")).toBe(true);
    expect((e as Error).message).toContain("nope");
  });
});

describe("list file source", () => {
  it("reads paths relative to the list's folder, in list order, skipping comments and blank lines", async () => {
    put("lists/files.txt", "# my images\n\n../tree/b.png\r\n  ../tree/sub/deep/x.bmp  \n# end\n../tree/a.JPG\n");
    const s = await openImageSource(path.join(tmp, "lists", "files.txt"));
    expect(s.kind).toBe("list");
    expect(s.items.map((i) => i.name)).toEqual(["../tree/b.png", "../tree/sub/deep/x.bmp", "../tree/a.JPG"]);
    expect((await s.items[1].read()).length).toBe(png().length);
  });

  it("a missing entry gives E_SOURCE naming the list file and line number", async () => {
    put("lists/bad.txt", "../tree/b.png\n# comment\n../tree/missing.png\n");
    const e = await openError(path.join(tmp, "lists", "bad.txt"));
    expect(isDiffevalError(e, "E_SOURCE")).toBe(true);
    expect((e as Error).message).toContain("bad.txt:3");
    expect((e as Error).message).toContain("missing.png");
  });

  it("a list with only comments gives E_EMPTY_SOURCE", async () => {
    put("lists/none.txt", "# nothing\n\n");
    expect(isDiffevalError(await openError(path.join(tmp, "lists", "none.txt")), "E_EMPTY_SOURCE")).toBe(true);
  });
});

describe("zip source", () => {
  it("lists image entries in code-point order and inflates each on demand", async () => {
    const real = new Uint8Array(readFileSync(fixture("images", "real", "real_0000.png")));
    const zip = zipSync({
      "imgs/b.png": [png(), { level: 0 }], // stored
      "imgs/a.png": [real, { level: 9 }], // deflated
      "imgs/readme.txt": new TextEncoder().encode("hi"),
      "__MACOSX/imgs/._a.png": new Uint8Array([0, 1, 2]),
      "imgs/": new Uint8Array(0),
    });
    put("arch/set.zip", zip);
    const s = await openImageSource(path.join(tmp, "arch", "set.zip"));
    expect(s.kind).toBe("zip");
    expect(s.items.map((i) => i.name)).toEqual(["imgs/a.png", "imgs/b.png"]);
    expect(await s.items[0].read()).toEqual(real);
    expect(await s.items[1].read()).toEqual(png());
    const img = await decodeImage(await s.items[1].read(), s.items[1].name);
    expect([img.width, img.height]).toEqual([31, 17]);
    await s.close();
  });

  it("is recognised by its signature even without the .zip extension", async () => {
    put("arch/set.bin", zipSync({ "x.png": png() }));
    const s = await openImageSource(path.join(tmp, "arch", "set.bin"));
    expect(s.kind).toBe("zip");
    await s.close();
  });

  it.each(["../evil.png", "/abs/evil.png", "a/../../evil.png", "C:/evil.png"])("refuses entry name %s with E_ZIP_UNSAFE", async (name) => {
    put("arch/evil.zip", zipSync({ "ok.png": png(), [name]: png() }));
    const e = await openError(path.join(tmp, "arch", "evil.zip"));
    expect(isDiffevalError(e, "E_ZIP_UNSAFE")).toBe(true);
    expect((e as Error).message).toContain(name);
  });

  it("a zip without images gives E_EMPTY_SOURCE", async () => {
    put("arch/txt.zip", zipSync({ "a.txt": new Uint8Array([65]) }));
    expect(isDiffevalError(await openError(path.join(tmp, "arch", "txt.zip")), "E_EMPTY_SOURCE")).toBe(true);
  });

  it("a corrupted entry fails its CRC check", async () => {
    const zip = zipSync({ "x.png": [png(), { level: 0 }] });
    const bad = zip.slice();
    bad[30 + "x.png".length + 10] ^= 0xff; // a byte inside the stored data
    put("arch/crc.zip", bad);
    const s = await openImageSource(path.join(tmp, "arch", "crc.zip"));
    await expect(s.items[0].read()).rejects.toThrow(/CRC-32/);
    await s.close();
  });
});

describe("random subsets", () => {
  it("limit + seed picks a reproducible subset, kept in source order", async () => {
    const dir = path.join(tmp, "many");
    for (let i = 0; i < 50; i++) put(`many/img_${String(i).padStart(2, "0")}.png`);
    const names = async (seed: number) => (await openImageSource(dir, { limit: 10, seed })).items.map((i) => i.name);
    const a = await names(7);
    expect(a).toHaveLength(10);
    expect(await names(7)).toEqual(a);
    expect([...a].sort()).toEqual(a);
    expect(await names(8)).not.toEqual(a);
    expect((await openImageSource(dir, { limit: 100 })).items).toHaveLength(50);
  });

  it("the draw is pinned: mulberry32 and the partial Fisher-Yates give fixed indices", () => {
    const r = mulberry32(1);
    expect(Math.floor(r() * 2 ** 32)).toBe(2693262067); // mulberry32(1) first output
    expect(seededSubsetIndices(100, 5, 42)).toEqual([20, 45, 60, 67, 85]); // pinned: changing it changes every subset
    expect(new Set(seededSubsetIndices(10, 10, 3)).size).toBe(10);
  });

  it("rejects a non-positive limit", async () => {
    expect(isDiffevalError(await openError(path.join(tmp, "tree"), { limit: 0 }), "E_USAGE")).toBe(true);
  });
});

