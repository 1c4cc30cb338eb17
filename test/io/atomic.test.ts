import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256File, tempPathFor, writeFileAtomic } from "../../src/io/atomic.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-atomic-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  it("creates parent folders, writes the bytes and leaves no temp file", async () => {
    const target = path.join(dir, "a", "b", "out.bin");
    const data = randomBytes(70_000);
    await writeFileAtomic(target, data);
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(readdirSync(path.dirname(target))).toEqual(["out.bin"]);
  });

  it("replaces an existing file", async () => {
    const target = path.join(dir, "out.txt");
    writeFileSync(target, "old contents that are longer");
    await writeFileAtomic(target, "new");
    expect(readFileSync(target, "utf8")).toBe("new");
    expect(readdirSync(dir)).toEqual(["out.txt"]);
  });

  it("removes its temp file when the rename fails", async () => {
    const target = path.join(dir, "busy");
    mkdirSync(path.join(target, "child"), { recursive: true }); // a non-empty folder cannot be replaced
    await expect(writeFileAtomic(target, "x")).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(["busy"]);
  });
});

describe("tempPathFor", () => {
  it("is a hidden, unique name in the target's folder", () => {
    const a = tempPathFor("/some/dir/file.pth");
    const b = tempPathFor("/some/dir/file.pth");
    expect(path.dirname(a)).toBe("/some/dir");
    expect(path.basename(a)).toMatch(new RegExp(`^\\.file\\.pth\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
    expect(a).not.toBe(b);
  });
});

describe("sha256File", () => {
  it("matches a one-shot hash of a multi-chunk file", async () => {
    const data = randomBytes(1_000_003);
    const file = path.join(dir, "big.bin");
    writeFileSync(file, data);
    expect(await sha256File(file)).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("gives the well-known hash of the empty file", async () => {
    const file = path.join(dir, "empty");
    writeFileSync(file, "");
    expect(await sha256File(file)).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});
