import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { globSegmentRegExp, isGlobPattern } from "../../src/io/glob.js";
import { openImageSource } from "../../src/io/sources.js";
import { rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { buildTar } from "../helpers/tar-writer.js";

let tmp: string;
const png = () => new Uint8Array(readFileSync(fixture("images", "odd", "tiny.png")));

/** A shard holding `names` (given out of order: names inside a shard are sorted). */
function shard(rel: string, names: string[]): string {
  const file = path.join(tmp, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, buildTar(names.map((name) => ({ name, data: png() }))));
  return file;
}

async function names(spec: string): Promise<string[]> {
  const s = await openImageSource(spec);
  try {
    for (const item of s.items) expect((await item.read()).length).toBe(png().length);
    expect(s.kind).toBe("tar");
    return s.items.map((i) => i.name);
  } finally {
    await s.close();
  }
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-tar-shards-"));
  shard("data/shard-001.tar", ["b.png", "a.png"]);
  shard("data/shard-000.tar", ["z.png", "y/x.png"]);
  shard("data/shard-002.tar", ["a.png", "notes.txt"]);
  shard("data/other-000.tar", ["o.png"]);
  shard("data/.shard-hidden.tar", ["h.png"]);
  writeFileSync(path.join(tmp, "data", "shard-readme.txt"), "about the shards");
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("tar shards by pattern", () => {
  it("a pattern reads every matching shard in code-point order, images named <shard>/<path inside>", async () => {
    expect(await names(path.join(tmp, "data", "shard-*.tar"))).toEqual([
      "shard-000.tar/y/x.png",
      "shard-000.tar/z.png",
      "shard-001.tar/a.png",
      "shard-001.tar/b.png",
      "shard-002.tar/a.png",
    ]);
    expect(await names(path.join(tmp, "data", "shard-00[!0].tar"))).toEqual(["shard-001.tar/a.png", "shard-001.tar/b.png", "shard-002.tar/a.png"]);
    // one match is still a shard set: names do not change when shards are added
    expect(await names(path.join(tmp, "data", "other-00?.tar"))).toEqual(["other-000.tar/o.png"]);
    // hidden files are matched only by a pattern that starts with '.'
    expect((await rejectionOf(openImageSource(path.join(tmp, "data", "*shard-hidden.tar")))).code).toBe("E_SOURCE");
    expect(await names(path.join(tmp, "data", ".shard-*.tar"))).toEqual([".shard-hidden.tar/h.png"]);
  });

  it("refuses a pattern that matches nothing, matches a file that is not a tar, or has wildcards before its last segment", async () => {
    const none = await rejectionOf(openImageSource(path.join(tmp, "data", "nope-*.tar")));
    expect(none.code).toBe("E_SOURCE");
    expect(none.message).toMatch(/nope-\*\.tar: no file matches this pattern/);
    const mixed = await rejectionOf(openImageSource(path.join(tmp, "data", "shard-*")));
    expect(mixed.code).toBe("E_SOURCE");
    expect(mixed.message).toMatch(/matches .*shard-readme\.txt, which is not a tar archive/);
    const deep = await rejectionOf(openImageSource(path.join(tmp, "da*", "shard-*.tar")));
    expect(deep.code).toBe("E_SOURCE");
    expect(deep.message).toMatch(/only the last path segment may hold wildcards/);
  });

  it("an existing path with wildcard characters is that file, not a pattern", async () => {
    shard("odd/[x].tar", ["q.png"]);
    expect(await names(path.join(tmp, "odd", "[x].tar"))).toEqual(["q.png"]);
  });
});

describe("tar shards by list file", () => {
  it("a list of .tar files is read shard by shard in list order, names prefixed by the line as written", async () => {
    const list = path.join(tmp, "lists", "shards.txt");
    mkdirSync(path.dirname(list), { recursive: true });
    writeFileSync(list, "# shards\n../data/shard-002.tar\n\n../data/shard-000.tar\r\n");
    expect(await names(list)).toEqual(["../data/shard-002.tar/a.png", "../data/shard-000.tar/y/x.png", "../data/shard-000.tar/z.png"]);
  });

  it("refuses a list mixing shards and images, and a shard named twice", async () => {
    const mixed = path.join(tmp, "lists", "mixed.txt");
    writeFileSync(mixed, "../data/shard-000.tar\n../data/shard-readme.txt\n");
    const e = await rejectionOf(openImageSource(mixed));
    expect(e.code).toBe("E_SOURCE");
    expect(e.message).toMatch(/mixed\.txt:2: '..\/data\/shard-readme\.txt' is not a \.tar file/);
    const twice = path.join(tmp, "lists", "twice.txt");
    writeFileSync(twice, "../data/shard-000.tar\n../data/./shard-000.tar\n");
    const t = await rejectionOf(openImageSource(twice));
    expect(t.code).toBe("E_SOURCE");
    expect(t.message).toMatch(/the same tar shard is named twice/);
  });

  it("a missing shard is an error naming the list line", async () => {
    const list = path.join(tmp, "lists", "missing.txt");
    writeFileSync(list, "../data/shard-000.tar\n../data/shard-009.tar\n");
    const e = await rejectionOf(openImageSource(list));
    expect(e.code).toBe("E_SOURCE");
    expect(e.message).toMatch(/missing\.txt:2: no such file: '..\/data\/shard-009\.tar'/);
  });

  it("shards without images give E_EMPTY_SOURCE; a shard without images among others is fine", async () => {
    const empty = shard("data2/empty-0.tar", ["readme.txt"]);
    shard("data2/empty-1.tar", ["notes.md"]);
    expect((await rejectionOf(openImageSource(path.join(tmp, "data2", "empty-*.tar")))).code).toBe("E_EMPTY_SOURCE");
    shard("data2/full-0.tar", ["a.png"]);
    const list = path.join(tmp, "data2", "list.txt");
    writeFileSync(list, `${empty}\nfull-0.tar\n`);
    expect(await names(list)).toEqual(["full-0.tar/a.png"]);
  });
});

describe("shard patterns", () => {
  const matches = (pattern: string, name: string) => globSegmentRegExp(pattern).test(name);

  it("*, ? and [...] match as in the shell, the whole name, one segment", () => {
    expect(matches("shard-*.tar", "shard-000.tar")).toBe(true);
    expect(matches("shard-*.tar", "shard-000.tar.gz")).toBe(false);
    expect(matches("shard-*.tar", "xshard-000.tar")).toBe(false);
    expect(matches("shard-???.tar", "shard-01.tar")).toBe(false);
    expect(matches("shard-???.tar", "shard-é01.tar")).toBe(true); // one code point, not one UTF-16 unit
    expect(matches("shard-[0-4][0-9].tar", "shard-49.tar")).toBe(true);
    expect(matches("shard-[0-4][0-9].tar", "shard-50.tar")).toBe(false);
    expect(matches("shard-[!0].tar", "shard-0.tar")).toBe(false);
    expect(matches("shard-[^0].tar", "shard-1.tar")).toBe(true);
    expect(matches("[]a].tar", "].tar")).toBe(true);
    expect(matches("[a-].tar", "-.tar")).toBe(true);
    expect(matches("a[b.tar", "a[b.tar")).toBe(true); // an unclosed '[' is itself
  });

  it("other characters are literal, and a leading '.' is matched only explicitly", () => {
    expect(matches("a.b+(c)|{d}$^.tar", "a.b+(c)|{d}$^.tar")).toBe(true);
    expect(matches("a.tar", "aXtar")).toBe(false);
    expect(matches("*.tar", ".hidden.tar")).toBe(false);
    expect(matches(".*.tar", ".hidden.tar")).toBe(true);
    expect(isGlobPattern("data/shard-*.tar")).toBe(true);
    expect(isGlobPattern("da*ta/shard.tar")).toBe(false);
  });

  it("a range out of order is E_SOURCE, not a SyntaxError", () => {
    let code: string | undefined;
    try {
      globSegmentRegExp("shard-[9-0].tar");
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe("E_SOURCE");
  });
});
