import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { openImageSource, type ImageSource } from "../../src/io/sources.js";
import { listTar } from "../../src/io/tar.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { buildTar, paxHeader, type TestTarEntry } from "../helpers/tar-writer.js";

let weights: string;
let tmp: string;
const png = () => new Uint8Array(readFileSync(fixture("images", "odd", "tiny.png")));
const real0 = () => new Uint8Array(readFileSync(fixture("images", "real", "real_0000.png")));

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-tar-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeTar(name: string, entries: readonly TestTarEntry[], opts: Parameters<typeof buildTar>[1] = {}): string {
  const file = path.join(tmp, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, buildTar(entries, opts));
  return file;
}

async function opened<T>(spec: string, use: (s: ImageSource) => Promise<T>): Promise<T> {
  const s = await openImageSource(spec);
  try {
    return await use(s);
  } finally {
    await s.close();
  }
}

const names = (spec: string) => opened(spec, async (s) => s.items.map((i) => i.name));

describe("tar source", () => {
  it("keeps image entries like a folder walk: extensions in any case, no directories, hidden files or __MACOSX, code-point order", async () => {
    const file = writeTar("set.tar", [
      { name: "./", type: "5" },
      { name: "./imgs/", type: "5" },
      { name: "./imgs/b.png", data: png() },
      { name: "./imgs/a.JPG", data: real0() },
      { name: "./imgs/a-b/z.webp", data: png() },
      { name: "./imgs/é.png", data: png() },
      { name: "./imgs/Z.png", data: png() },
      { name: "./imgs/notes.txt", data: "not an image" },
      { name: "./imgs/.hidden.png", data: png() },
      { name: "./imgs/.git/obj.png", data: png() },
      { name: "./imgs/._b.png", data: new Uint8Array([0, 5, 22, 7]) }, // AppleDouble, as macOS tar writes
      { name: "__MACOSX/imgs/._a.png", data: new Uint8Array([0, 1, 2]) },
      { name: "imgs//odd-slashes.bmp", data: png() },
    ]);
    await opened(file, async (s) => {
      expect(s.kind).toBe("tar");
      // same order as the folder test in sources.test.ts: '-' < '/' < 'Z' < 'a' < 'b' < 'o' < 'é'
      expect(s.items.map((i) => i.name)).toEqual(["imgs/Z.png", "imgs/a-b/z.webp", "imgs/a.JPG", "imgs/b.png", "imgs/odd-slashes.bmp", "imgs/é.png"]);
      expect(await s.items[2].read()).toEqual(real0());
      expect(await s.items[3].read()).toEqual(png());
      expect(s.items[2].location).toBe(`${file}:imgs/a.JPG`);
      const img = await decodeImage(await s.items[3].read(), s.items[3].location);
      expect([img.width, img.height]).toEqual([31, 17]);
    });
  });

  it("takes long names from pax path records, GNU ././@LongLink headers and the ustar prefix", async () => {
    const long = (tag: string) => `${"d".repeat(60)}/${tag}-${"n".repeat(90)}.png`;
    const file = writeTar("long.tar", [
      { name: long("pax"), data: png(), longName: "pax" },
      { name: long("gnu"), data: real0(), longName: "gnu", magic: "gnu" },
      { name: long("ustar"), data: png(), longName: "ustar" },
      { name: "short.png", data: png() },
    ]);
    await opened(file, async (s) => {
      expect(s.items.map((i) => i.name)).toEqual([long("gnu"), long("pax"), long("ustar"), "short.png"]);
      expect(await s.items[0].read()).toEqual(real0());
      expect(await s.items[1].read()).toEqual(png());
    });
  });

  it("uses the prefix field only in POSIX headers: GNU headers keep other data there", async () => {
    const bytes = buildTar([{ name: "g.png", data: png(), magic: "gnu" }]);
    bytes.set(new TextEncoder().encode("atime-and-ctime"), 345); // GNU's atime/ctime area, not a prefix
    const h = bytes.subarray(0, 512);
    h.fill(0x20, 148, 156);
    const sum = h.reduce((a, b) => a + b, 0);
    h.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
    const file = path.join(tmp, "gnu-prefix.tar");
    writeFileSync(file, bytes);
    expect(await names(file)).toEqual(["g.png"]);
  });

  it("reads sizes from a pax size record and from GNU base-256 fields", async () => {
    const file = writeTar("sizes.tar", [
      { name: "pax-size.png", data: real0(), declaredSize: 0, pax: { size: String(real0().length) } }, // as for entries of 8 GiB and more
      { name: "b256.png", data: png(), base256: true },
      { name: "z.png", data: png() },
    ]);
    await opened(file, async (s) => {
      expect(s.items.map((i) => i.name)).toEqual(["b256.png", "pax-size.png", "z.png"]);
      expect(await s.items[1].read()).toEqual(real0());
      expect(await s.items[0].read()).toEqual(png());
      expect(await s.items[2].read()).toEqual(png());
    });
  });

  it("skips links to images without following them, and devices, FIFOs and vendor entries", async () => {
    const file = writeTar("links.tar", [
      { name: "a.png", data: png() },
      { name: "hard.png", type: "1", linkname: "a.png" },
      { name: "soft.png", type: "2", linkname: "a.png" },
      { name: "outside.png", type: "2", linkname: "/etc/passwd" },
      { name: "dev.png", type: "3" },
      { name: "fifo.png", type: "6" },
      { name: "volume.png", type: "V", data: "label" },
      { name: "b.png", data: png() },
    ]);
    const entries = await listTar(file);
    expect(entries.map((e) => `${e.name}:${e.kind}`)).toEqual([
      "a.png:file", "hard.png:link", "soft.png:link", "outside.png:link", "dev.png:other", "fifo.png:other", "volume.png:other", "b.png:file",
    ]);
    expect(await names(file)).toEqual(["a.png", "b.png"]);
  });

  it("a name stored twice is read from its later entry, as extracting the archive would leave it", async () => {
    const file = writeTar("twice.tar", [
      { name: "x.png", data: png() },
      { name: "./x.png", data: real0() },
    ]);
    await opened(file, async (s) => {
      expect(s.items.map((i) => i.name)).toEqual(["x.png"]);
      expect(await s.items[0].read()).toEqual(real0());
    });
  });

  it("ends at a lone zero block, or at the end of the file when the end blocks are missing; data after the end is ignored", async () => {
    const lone = buildTar([{ name: "a.png", data: png() }], { endBlocks: 1 });
    const trailing = new Uint8Array([...lone, ...buildTar([{ name: "after.png", data: png() }])]);
    writeFileSync(path.join(tmp, "lone.tar"), trailing);
    expect(await names(path.join(tmp, "lone.tar"))).toEqual(["a.png"]);
    expect(await names(writeTar("noend.tar", [{ name: "a.png", data: png() }, { name: "b.png", data: png() }], { endBlocks: 0 }))).toEqual(["a.png", "b.png"]);
  });

  it("does not apply a global pax header's path to the entries after it", async () => {
    const g = buildTar([], { endBlocks: 0 });
    const bytes = new Uint8Array([...g, ...paxHeader("g", "pax_global_header", { comment: "v1", path: "global.png" }).flatMap((b) => [...b]), ...buildTar([{ name: "a.png", data: png() }])]);
    writeFileSync(path.join(tmp, "global.tar"), bytes);
    expect(await names(path.join(tmp, "global.tar"))).toEqual(["a.png"]);
  });

  it("is recognised by its ustar magic without the .tar extension; v7 headers are read by the extension", async () => {
    writeFileSync(path.join(tmp, "set.bin"), buildTar([{ name: "a.png", data: png() }]));
    await opened(path.join(tmp, "set.bin"), async (s) => expect(s.kind).toBe("tar"));
    expect(await names(writeTar("v7.tar", [{ name: "dir/", magic: "v7" }, { name: "dir/a.png", data: png(), magic: "v7" }]))).toEqual(["dir/a.png"]);
  });

  it.each(["../evil.png", "/abs/evil.png", "a/../../evil.png", "C:/evil.png"])("refuses entry name %s with E_ZIP_UNSAFE, from any name field", async (name) => {
    const cases: Record<string, TestTarEntry> = {
      header: { name, data: png() },
      pax: { name: "safe.png", data: png(), pax: { path: name } },
      gnu: { name: `${name}/${"p".repeat(100)}.png`, data: png(), longName: "gnu" },
    };
    for (const [field, entry] of Object.entries(cases)) {
      const e = await rejectionOf(openImageSource(writeTar(`evil-${field}.tar`, [{ name: "ok.png", data: png() }, entry])));
      expect(e.code, field).toBe("E_ZIP_UNSAFE");
      expect(e.message).toContain(name);
    }
  });

  it("a tar without images gives E_EMPTY_SOURCE naming a tar archive", async () => {
    const e = await rejectionOf(openImageSource(writeTar("txt.tar", [{ name: "a.txt", data: "hi" }, { name: "d/", type: "5" }])));
    expect(e.code).toBe("E_EMPTY_SOURCE");
    expect(e.message).toMatch(/txt\.tar: no images in this tar archive/);
  });

  it("an entry that is not an image fails to decode as E_IMAGE_DECODE naming file.tar:entry", async () => {
    const file = writeTar("bad.tar", [{ name: "imgs/bad.png", data: readFileSync(fixture("images", "odd", "not-an-image.png")) }]);
    await opened(file, async (s) => {
      const e = await rejectionOf(decodeImage(await s.items[0].read(), s.items[0].location));
      expect(e.code).toBe("E_IMAGE_DECODE");
      expect(e.message).toContain(`${file}:imgs/bad.png`);
    });
  });

  it.skipIf(!hasGnuTar())("reads what GNU tar writes in its gnu, pax and ustar formats, as the folder it was made from", async () => {
    const dir = path.join(tmp, "gnutar-src");
    const longDir = "l".repeat(70);
    for (const rel of ["a.png", "sub/b.JPG", `${longDir}/${"x".repeat(80)}.png`, ".hidden.png", "notes.txt"]) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), rel.endsWith(".JPG") ? real0() : png());
    }
    symlinkSync("a.png", path.join(dir, "link.png"));
    const folder = await names(dir);
    expect(folder).toEqual(["a.png", "link.png", `${longDir}/${"x".repeat(80)}.png`, "sub/b.JPG"]); // a folder walk follows the link
    for (const format of ["gnu", "pax", "ustar"]) {
      const file = path.join(tmp, `gnutar-${format}.tar`);
      execFileSync("tar", [`--format=${format}`, "-cf", file, "-C", dir, "."]);
      // the tar keeps the link as a link: skipped, not followed
      expect(await names(file), format).toEqual(folder.filter((n) => n !== "link.png"));
      await opened(file, async (s) => expect(await s.items.find((i) => i.name === "sub/b.JPG")!.read()).toEqual(real0()));
    }
    // and GNU tar reads what the test writer writes, so the writer's archives are real ones
    const long = `${"w".repeat(120)}.png`;
    const mine = writeTar("writer-check.tar", [
      { name: long, data: png(), longName: "pax" },
      { name: `g/${long}`, data: png(), longName: "gnu", magic: "gnu" },
      { name: `${"u".repeat(60)}/${long.slice(0, 90)}`, data: png(), longName: "ustar" },
      { name: "b256.png", data: png(), base256: true },
    ]);
    expect(execFileSync("tar", ["-tf", mine], { encoding: "utf8" }).trim().split("\n")).toEqual([long, `g/${long}`, `${"u".repeat(60)}/${long.slice(0, 90)}`, "b256.png"]);
  });
});

describe("fid on tar sources", () => {
  it("the fixture folders as .tar files: FID equal to the folders'", async () => {
    const asTar = (side: "real" | "fake") => {
      const dir = fixture("images", side);
      const files = readdirSync(dir).reverse(); // archive order is not the source order: names are sorted
      return writeTar(`${side}.tar`, [{ name: `${side}/`, type: "5" }, ...files.map((f) => ({ name: `${side}/${f}`, data: new Uint8Array(readFileSync(path.join(dir, f))) }))]);
    };
    const fid = async (real: string, fake: string) => {
      const r = await runCli(["fid", "--real", real, "--fake", fake, "--json", ...cpuFlags(weights)]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const folder = await fid(fixture("images", "real"), fixture("images", "fake"));
    const tar = await fid(asTar("real"), asTar("fake"));
    expect(tar.fid).toBe(folder.fid);
    expect([tar.n_real, tar.n_fake]).toEqual([32, 32]);
    expect(tar.protocol).toBe(folder.protocol);
  });

  it("--skip-bad skips a tar entry that is not an image, naming it", async () => {
    const real = fixture("images", "real");
    const entries = readdirSync(real).map((f) => ({ name: f, data: new Uint8Array(readFileSync(path.join(real, f))) }));
    const file = writeTar("with-bad.tar", [...entries, { name: "zz-bad.png", data: readFileSync(fixture("images", "odd", "not-an-image.png")) }]);
    const strict = await runCli(["fid", "--real", file, "--fake", fixture("images", "fake"), "--json", ...cpuFlags(weights)]);
    expect(strict.code).toBe(2);
    expect(strict.stderr).toMatch(/error\[E_IMAGE_DECODE\]: .*with-bad\.tar:zz-bad\.png/);
    const skip = await runCli(["fid", "--real", file, "--fake", fixture("images", "fake"), "--json", "--skip-bad", ...cpuFlags(weights)]);
    expect(skip.code, skip.stderr).toBe(0);
    expect(JSON.parse(skip.stdout)).toMatchObject({ n_real: 32, skipped_real: 1 });
    expect(skip.stderr).toContain("zz-bad.png");
  });
});

function hasGnuTar(): boolean {
  try {
    return /GNU tar/.test(execFileSync("tar", ["--version"], { encoding: "utf8" }));
  } catch {
    return false;
  }
}
