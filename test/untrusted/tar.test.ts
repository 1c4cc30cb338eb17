/**
 * Issue 18, tar sources: hostile archives, named by the class of defect they would cause in a
 * reader that trusted the header (issue 17's classes). Each builds its bytes here with the test
 * tar writer, expects the named DiffevalError in-process (from the file reader and the buffer
 * reader), and for blowups and hangs the real CLI (dist/, under a heap cap and an RSS watchdog)
 * ending with exit 2 and that code before any model is loaded.
 */
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openImageSource } from "../../src/io/sources.js";
import { listTar, listTarBytes, MAX_PAX_HEADER_BYTES, MAX_TAR_NAME_BYTES } from "../../src/io/tar.js";
import { runCliCapped } from "../helpers/capped-run.js";
import { errorOf, rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { expectNamedExit } from "../helpers/named-exit.js";
import { concatBytes as concat } from "../helpers/image-bytes.js";
import { buildTar, header, type TestTarEntry } from "../helpers/tar-writer.js";

const STATS = fixture("reference", "stats_d64_real_savez.npz");
const png = () => new Uint8Array(readFileSync(fixture("images", "odd", "tiny.png")));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-untrusted-tar-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

/** The same bytes through both readers and the image source: one code, and the buffer reader's message. */
async function expectRefused(name: string, bytes: Uint8Array, code: string, message: RegExp): Promise<string> {
  const b = errorOf(() => listTarBytes(bytes, name));
  expect(b.code, b.message).toBe("E_SOURCE");
  expect(b.message).toMatch(message);
  const file = write(name, bytes);
  const f = await rejectionOf(listTar(file));
  expect(f.code).toBe("E_SOURCE");
  expect(f.message).toContain(file);
  const s = await rejectionOf(openImageSource(file));
  expect(s.code).toBe(code);
  return file;
}

/** The CLI with a hostile tar as the real side ends with exit 2 and `error[code]`, quickly and in bounded memory. */
async function expectCliError(file: string, code: string): Promise<void> {
  const r = await runCliCapped(["fid", "--real", file, "--fake", STATS], { maxRssMb: 400, timeoutMs: 15_000 });
  expectNamedExit(r, code, { maxMs: 15_000, maxRssMb: 400 });
}

/** A tar of one entry whose header fields are then patched, its checksum made right again. */
function patchedHeader(entry: TestTarEntry, edit: (h: Uint8Array) => void): Uint8Array {
  const bytes = buildTar([entry]);
  const h = bytes.subarray(0, 512);
  edit(h);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  return bytes;
}

describe("issue 18: tar sources", () => {
  it("memory blowup: tar header declaring a 10^12-byte entry (base-256, pax size, octal)", async () => {
    const cases: Record<string, Uint8Array> = {
      base256: buildTar([{ name: "a.png", data: png(), declaredSize: 10n ** 12n, base256: true }]),
      paxSize: buildTar([{ name: "a.png", data: png(), pax: { size: String(10 ** 12) } }]),
      octal: buildTar([{ name: "a.png", data: png(), declaredSize: 8 ** 11 - 1 }]),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      await expectRefused(`huge-${what}.tar`, bytes, "E_SOURCE", /entry 'a\.png' declares \d+ bytes at byte \d+, past the end of the file/);
    }
    await expectCliError(path.join(dir, "huge-base256.tar"), "E_SOURCE");
  });

  it("memory blowup: pax header and GNU long name of hundreds of MB, in a (sparse) file that holds them", async () => {
    // The declared sizes fit the file, so only the caps stop the reader from allocating them.
    const big = 400 * 1024 * 1024;
    for (const [type, name, cap] of [["x", "pax-bomb.tar", MAX_PAX_HEADER_BYTES], ["L", "long-bomb.tar", MAX_TAR_NAME_BYTES]] as const) {
      const file = path.join(dir, name);
      writeFileSync(file, header({ name: type === "L" ? "././@LongLink" : "PaxHeaders/a", type, size: big, magic: type === "L" ? "gnu" : "posix" }));
      truncateSync(file, 512 + big + 1024); // a hole: no disk used
      const e = await rejectionOf(listTar(file));
      expect(e.code).toBe("E_SOURCE");
      expect(e.message).toContain(`${big} bytes, more than ${cap}`);
    }
    await expectCliError(path.join(dir, "pax-bomb.tar"), "E_SOURCE");
  });

  it("native abort: base-256 sizes beyond 2^53, negative ones, and a size field that is not octal", async () => {
    await expectRefused(
      "b256-2e95.tar",
      patchedHeader({ name: "a.png", data: png() }, (h) => h.fill(0xff, 125, 136).fill(0x80, 124, 125)),
      "E_SOURCE",
      /entry 'a\.png' has a size field beyond 2\^53/,
    );
    await expectRefused("b256-negative.tar", patchedHeader({ name: "a.png", data: png() }, (h) => h.fill(0xff, 124, 136)), "E_SOURCE", /negative or malformed base-256 size/);
    await expectRefused(
      "size-text.tar",
      patchedHeader({ name: "a.png", data: png() }, (h) => h.set(new TextEncoder().encode("12x45"), 124)),
      "E_SOURCE",
      /entry 'a\.png' has a size field that is not an octal number/,
    );
  });

  it("generic exception: a header cut short, a bad checksum, a truncated entry (each naming the tar and the entry)", async () => {
    const good = buildTar([{ name: "a.png", data: png() }, { name: "b.png", data: png() }]);
    const second = 512 + Math.ceil(png().length / 512) * 512; // b.png's header
    await expectRefused("cut-header.tar", good.subarray(0, second + 300), "E_SOURCE", new RegExp(`the header at byte ${second} is cut short`));
    const badSum = good.slice();
    badSum[second + 4] ^= 0x01; // 'b.png' becomes 'b.pnf'
    await expectRefused("bad-sum.tar", badSum, "E_SOURCE", new RegExp(`entry 'b\\.pnf' has a bad header checksum at byte ${second}`));
    const cut = good.subarray(0, second + 512 + 10);
    const file = await expectRefused(
      "cut-data.tar",
      cut,
      "E_SOURCE",
      new RegExp(`entry 'b\\.png' declares ${png().length} bytes at byte ${second + 512}, past the end of the file \\(${second + 522} bytes\\)`),
    );
    await expectCliError(file, "E_SOURCE");
  });

  it("generic exception: an entry cut off after the archive was opened is E_SOURCE when read", async () => {
    const file = write("shrinks.tar", buildTar([{ name: "a.png", data: png() }]));
    const source = await openImageSource(file);
    truncateSync(file, 600);
    const e = await rejectionOf(source.items[0].read());
    expect(e.code).toBe("E_SOURCE");
    expect(e.message).toMatch(/shrinks\.tar: .*entry 'a\.png' ends early/);
    await source.close();
  });

  it("hang: pax records whose length is 0, shorter than their own digits, or runs past the header", async () => {
    for (const [what, body] of Object.entries({ zero: "0 path=a\n", short: "3 path=a.png\n", long: "999 path=a.png\n", noEquals: "9 pathab\n" })) {
      const bytes = buildTar([{ name: "a.png", data: png() }]);
      const raw = new TextEncoder().encode(body);
      const h = header({ name: "PaxHeaders/a", type: "x", size: raw.length, magic: "posix" });
      const data = new Uint8Array(512);
      data.set(raw);
      await expectRefused(`pax-${what}.tar`, concat(h, data, bytes), "E_SOURCE", /has a malformed pax record at byte 0/);
    }
    await expectCliError(path.join(dir, "pax-zero.tar"), "E_SOURCE");
  });

  it("hang: 20,000 empty entries are listed in well under a second; the header cap refuses more", async () => {
    const h = header({ name: "a.txt", type: "0", size: 0, magic: "posix" });
    const bytes = new Uint8Array(20_000 * 512 + 1024);
    for (let i = 0; i < 20_000; i++) bytes.set(h, i * 512);
    const file = write("many.tar", bytes);
    const t = Date.now();
    expect(await listTar(file)).toHaveLength(20_000);
    expect(Date.now() - t).toBeLessThan(1000);
    const e = await rejectionOf(listTar(file, { maxHeaders: 10_000 }));
    expect(e.code).toBe("E_SOURCE");
    expect(e.message).toMatch(/more than 10000 headers/);
    expect((await rejectionOf(openImageSource(file))).code).toBe("E_EMPTY_SOURCE"); // no images: not an error of the format
  });

  it("path traversal: '..' and absolute names in pax paths and GNU long names refuse the archive", async () => {
    const viaPax = buildTar([{ name: "safe.png", data: png(), pax: { path: "../../etc/evil.png" } }]);
    const e = await rejectionOf(openImageSource(write("traversal-pax.tar", viaPax)));
    expect(e.code).toBe("E_ZIP_UNSAFE");
    expect(e.message).toContain("../../etc/evil.png");
    const viaGnu = buildTar([{ name: `/abs/${"n".repeat(120)}.png`, data: png(), longName: "gnu" }]);
    expect((await rejectionOf(openImageSource(write("traversal-gnu.tar", viaGnu)))).code).toBe("E_ZIP_UNSAFE");
    const nul = buildTar([{ name: "safe.png", data: png(), pax: { path: "a\0b.png" } }]);
    expect((await rejectionOf(openImageSource(write("nul.tar", nul)))).code).toBe("E_ZIP_UNSAFE");
  });

  it("accepted but inconsistent: sparse entries are refused by name, not read as wrong bytes", async () => {
    await expectRefused("sparse-gnu.tar", buildTar([{ name: "a.png", data: png(), type: "S", magic: "gnu" }]), "E_SOURCE", /entry 'a\.png' is a sparse file/);
    const pax = buildTar([{ name: "GNUSparseFile.0/a.png", data: png(), pax: { "GNU.sparse.major": "1", "GNU.sparse.name": "a.png" } }]);
    await expectRefused("sparse-pax.tar", pax, "E_SOURCE", /is a sparse file/);
  });

  it("accepted but inconsistent: a gzip-compressed tar named .tar is named as such", async () => {
    const gz = new Uint8Array(2048);
    gz.set([0x1f, 0x8b, 8, 0]);
    await expectRefused("compressed.tar", gz, "E_SOURCE", /is gzip-compressed; .*decompress it first/);
  });

  it("accepted but inconsistent: names longer than the cap, in pax paths", async () => {
    const long = buildTar([{ name: "a.png", data: png(), pax: { path: `${"d/".repeat(MAX_TAR_NAME_BYTES / 2)}a.png` } }]);
    await expectRefused("long-path.tar", long, "E_SOURCE", /has a pax path longer than 4096 bytes/);
  });
});
