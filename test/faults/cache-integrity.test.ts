/**
 * Faults: a corrupted feature-cache entry (a flipped byte, a torn copy, an entry under another
 * image's name) is detected by its sha256, reported once with its file name, recomputed and
 * overwritten; entries of another layout version are plain misses. The same cache holds the
 * JPEG copies of `jpeg --cache-variants`, checked the same way.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FEATURE_CACHE_HEADER_BYTES, openFeatureCache, type FeatureCache } from "../../src/features/feature-cache.js";
import { fixtureModelPath } from "../helpers/model.js";
import { cacheEntries, cpu, entryVerdict, fakeImages, realImages, runCliChild } from "./child.js";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

/** A cache with two small outputs, its folder, and the warnings it printed. */
function smallCache(): { cache: FeatureCache; root: string; warnings: string[]; entry: (sha: string) => string } {
  const root = mkdtempSync(path.join(os.tmpdir(), "diffeval-faults-entry-"));
  roots.push(root);
  const warnings: string[] = [];
  const key = { root, weightsSha256: "f".repeat(64), protocol: "clean", outputs: [["pool3", 6], ["logits", 3]] as [string, number][] };
  const cache = openFeatureCache({ ...key, warn: (line) => warnings.push(line) });
  const entry = (sha: string) => path.join(root, "features", `${"f".repeat(16)}-clean-pool3+logits`, sha.slice(0, 2), `${sha}.dfc`);
  return { cache, root, warnings, entry };
}

const features = (seed: number) => ({
  pool3: Float32Array.from({ length: 6 }, (_, i) => seed + i / 8),
  logits: Float32Array.from({ length: 3 }, (_, i) => -seed - i),
});

function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file);
  bytes[offset] ^= 0x10;
  writeFileSync(file, bytes);
}

describe("corrupted feature-cache entries (in-process)", () => {
  it("a flipped payload byte is detected, warned about once by file name, and the recomputed entry is used", async () => {
    const { cache, warnings, entry } = smallCache();
    await cache.put(SHA_A, features(1));
    flipByte(entry(SHA_A), FEATURE_CACHE_HEADER_BYTES + 5);
    expect(await cache.get(SHA_A)).toBeUndefined();
    expect(await cache.get(SHA_A)).toBeUndefined();
    expect(warnings).toEqual([`warning: feature cache entry ${entry(SHA_A)} is corrupt (checksum mismatch); recomputing it`]);
    await cache.put(SHA_A, features(1)); // what the extractor does after the miss
    expect(await cache.get(SHA_A)).toEqual(features(1));
    expect(warnings).toHaveLength(1);
  });

  it("a flipped checksum byte, a torn (truncated) entry and a headerless file are corrupt too", async () => {
    const { cache, warnings, entry } = smallCache();
    const shas = ["c", "d", "e"].map((c) => c.repeat(64));
    for (const [i, sha] of shas.entries()) await cache.put(sha, features(i));
    flipByte(entry(shas[0]), 20);
    truncateSync(entry(shas[1]), FEATURE_CACHE_HEADER_BYTES + 10);
    writeFileSync(entry(shas[2]), new Uint8Array(features(2).pool3.buffer));
    for (const sha of shas) expect(await cache.get(sha)).toBeUndefined();
    expect(warnings).toEqual([
      expect.stringContaining(`${entry(shas[0])} is corrupt (checksum mismatch)`),
      expect.stringContaining(`${entry(shas[1])} is corrupt (holds 10 payload bytes for 9 values, expected 36 bytes for 9)`),
      expect.stringContaining(`${entry(shas[2])} is corrupt (not a feature-cache entry (24 bytes, no header))`),
    ]);
  });

  it("an intact entry under another image's name is refused (the checksum covers the name)", async () => {
    const { cache, warnings, entry } = smallCache();
    await cache.put(SHA_A, features(1));
    mkdirSync(path.dirname(entry(SHA_B)), { recursive: true });
    copyFileSync(entry(SHA_A), entry(SHA_B));
    expect(await cache.get(SHA_B)).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining(`${entry(SHA_B)} is corrupt (checksum mismatch)`)]);
    expect(await cache.get(SHA_A)).toEqual(features(1));
  });

  it("entries of another layout are plain misses: version 1's raw .f32 files are not read, another version number is no warning", async () => {
    const { cache, warnings, entry } = smallCache();
    const v1 = entry(SHA_A).replace(/\.dfc$/, ".f32");
    mkdirSync(path.dirname(v1), { recursive: true });
    writeFileSync(v1, new Uint8Array(9 * 4)); // the old layout: 9 raw float32 values
    expect(await cache.get(SHA_A)).toBeUndefined();
    await cache.put(SHA_B, features(3));
    const bytes = readFileSync(entry(SHA_B));
    bytes.writeUInt32LE(3, 8);
    writeFileSync(entry(SHA_B), bytes);
    expect(await cache.get(SHA_B)).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it("many corrupt entries are named up to five, then summed up in one line", async () => {
    const { cache, warnings, entry } = smallCache();
    const shas = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(64));
    for (const sha of shas) {
      await cache.put(sha, features(0));
      flipByte(entry(sha), FEATURE_CACHE_HEADER_BYTES);
      expect(await cache.get(sha)).toBeUndefined();
    }
    expect(warnings).toHaveLength(6);
    expect(warnings[5]).toMatch(/^warning: more corrupt feature cache entries under .*; recomputing them without further warnings$/);
  });
});

describe("corrupted feature-cache entries (the CLI)", () => {
  let weights: string;
  let cache: string;
  beforeAll(async () => {
    weights = await fixtureModelPath();
    cache = path.join(mkdtempSync(path.join(os.tmpdir(), "diffeval-faults-integrity-")), "cache");
  });
  afterAll(() => rmSync(path.dirname(cache), { recursive: true, force: true }));

  /** Runs the command, flips one byte of `pick(entries it added)`, reruns: one warning naming it, the same result, the entry rewritten. */
  async function flipAndRerun(args: string[], pick: (added: string[]) => string, result: (stdout: string) => unknown): Promise<void> {
    const before = new Set(cacheEntries(cache));
    const first = await runCliChild(args, { DIFFEVAL_CACHE: cache });
    expect(first.code, first.stderr).toBe(0);
    const victim = pick(cacheEntries(cache).filter((e) => !before.has(e)));
    const good = readFileSync(victim);
    flipByte(victim, FEATURE_CACHE_HEADER_BYTES + 1000);
    expect(entryVerdict(victim)).toBe("checksum mismatch");

    const second = await runCliChild(args, { DIFFEVAL_CACHE: cache });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr.match(/warning: feature cache entry .* is corrupt/g)).toHaveLength(1);
    expect(second.stderr).toContain(`warning: feature cache entry ${victim} is corrupt (checksum mismatch); recomputing it`);
    expect(result(second.stdout)).toEqual(result(first.stdout));
    expect(readFileSync(victim).equals(good)).toBe(true); // overwritten with the recomputed entry
  }

  it("fid: a flipped byte in an image's entry is reported, recomputed and overwritten; the FID is unchanged", async () => {
    const args = ["fid", "--real", realImages, "--fake", fakeImages, "--json", ...cpu(weights)];
    await flipAndRerun(args, (added) => added[3], (stdout) => JSON.parse(stdout).fid);
  });

  it("jpeg --cache-variants: a flipped byte in a JPEG copy's entry is reported and recomputed; the results are unchanged", async () => {
    // Entries are named by content sha256: a JPEG copy's is no fixture image's.
    const originals = new Set(readdirSync(realImages).map((f) => createHash("sha256").update(readFileSync(path.join(realImages, f))).digest("hex")));
    const args = ["jpeg", "--real", realImages, "--qualities", "90", "--cache-variants", "--json", ...cpu(weights)];
    const copyEntry = (added: string[]) => added.find((e) => !originals.has(path.basename(e, ".dfc")))!;
    await flipAndRerun(args, copyEntry, (stdout) => JSON.parse(stdout).results);
  });
});
