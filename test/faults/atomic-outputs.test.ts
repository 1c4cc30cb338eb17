/**
 * Faults: `kill -9` in the middle of a write. `stats --out`, a feature-cache entry and a
 * `jpeg --cache-variants` entry must each be left absent/old or complete, never torn, and the next
 * run must use or replace what is there correctly. The kills are real SIGKILLs of the built CLI:
 * at the exact points a torn file would come from (io/atomic.ts's test-only DIFFEVAL_TEST_CRASH_AT
 * hook: half the bytes written, or all written but not renamed), and at whatever instant a
 * poll first sees the temp file (no hook).
 */
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureModelPath } from "../helpers/model.js";
import {
  cacheEntries,
  cpu,
  entryVerdict,
  killWhen,
  readStats,
  realImages,
  runCliChild,
  spawnCli,
  strayTemps,
  SUBSET,
} from "./child.js";

let weights: string;
let tmp: string;
/** A warm cache (the real images' features), the stats file made without any fault, an "earlier" file, the JPEG results. */
let cache: string;
let wantStats: string;
let oldStats: string;
let wantJpeg: unknown;

const jpegArgs = () => ["jpeg", "--real", realImages, "--qualities", "90", "--json", ...cpu(weights)];

beforeAll(async () => {
  weights = await fixtureModelPath();
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-faults-atomic-"));
  cache = path.join(tmp, "cache");
  wantStats = path.join(tmp, "want.npz");
  oldStats = path.join(tmp, "old.npz");
  writeFileSync(oldStats, "the statistics of an earlier run");
  const stats = await runCliChild(["stats", realImages, "--out", wantStats, ...cpu(weights)], { DIFFEVAL_CACHE: cache });
  expect(stats.code, stats.stderr).toBe(0);
  const jpeg = await runCliChild(jpegArgs(), { DIFFEVAL_CACHE: cache }); // variants not cached
  expect(jpeg.code, jpeg.stderr).toBe(0);
  wantJpeg = JSON.parse(jpeg.stdout).results;
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Asserts `file` is the old stats file byte for byte, or a complete stats file equal to `want`. */
function expectOldOrComplete(file: string): "old" | "new" {
  const bytes = readFileSync(file);
  if (bytes.equals(readFileSync(oldStats))) return "old";
  expectSameStats(file, wantStats);
  return "new";
}

function expectSameStats(file: string, want: string): void {
  const got = readStats(file).gaussian;
  const exp = readStats(want).gaussian;
  expect(got.n).toBe(exp.n);
  expect(Buffer.from(got.mu.buffer).equals(Buffer.from(exp.mu.buffer))).toBe(true);
  expect(Buffer.from(got.sigma.buffer).equals(Buffer.from(exp.sigma.buffer))).toBe(true);
}

describe("kill -9 in the middle of stats --out", () => {
  it("killed with half the file written, then with all of it written but not renamed, it leaves the old file; the next run replaces it", async () => {
    const dir = mkdtempSync(path.join(tmp, "stats-hook-"));
    const out = path.join(dir, "out.npz");
    copyFileSync(oldStats, out);
    const args = ["stats", realImages, "--out", out, ...cpu(weights)];
    const full = statSync(wantStats).size;
    for (const [stage, written] of [["partial", full >> 1], ["written", full]] as const) {
      const killed = await runCliChild(args, { DIFFEVAL_CACHE: cache, DIFFEVAL_TEST_CRASH_AT: `${stage}:out.npz` });
      expect(killed.signal, stage).toBe("SIGKILL");
      // The crash landed inside the write: its temp file holds the bytes written so far.
      const temp = strayTemps(dir).find((t) => t.includes(`.${killed.pid}.`));
      expect(statSync(path.join(dir, temp!)).size, stage).toBe(written);
      expect(expectOldOrComplete(out), stage).toBe("old");
    }
    const rerun = await runCliChild(args, { DIFFEVAL_CACHE: cache });
    expect(rerun.code, rerun.stderr).toBe(0);
    expectSameStats(out, wantStats);
  });

  it("killed the instant a poll sees its temp file (no hook), it leaves the old file or the complete new one", async () => {
    const dir = mkdtempSync(path.join(tmp, "stats-race-"));
    const out = path.join(dir, "out.npz");
    copyFileSync(oldStats, out);
    const child = spawnCli(["stats", realImages, "--out", out, ...cpu(weights)], { DIFFEVAL_CACHE: cache });
    const r = await killWhen(child, () => strayTemps(dir).length > 0);
    expect(r.killed).toBe(true);
    expect(["old", "new"]).toContain(expectOldOrComplete(out));
  });
});

describe("kill -9 in the middle of a feature-cache write", () => {
  it("leaves no entry for the image being written (only a stray temp), and the next run computes it and matches", async () => {
    const own = path.join(tmp, "cache-kill");
    const out = path.join(tmp, "cache-kill.npz");
    const args = ["stats", realImages, "--out", out, ...cpu(weights)];
    const killed = await runCliChild(args, { DIFFEVAL_CACHE: own, DIFFEVAL_TEST_CRASH_AT: "partial:.dfc" });
    expect(killed.signal).toBe("SIGKILL");
    expect(cacheEntries(own)).toEqual([]); // the first entry's write was the one killed
    expect(existsSync(out)).toBe(false);

    const rerun = await runCliChild(args, { DIFFEVAL_CACHE: own });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).not.toMatch(/corrupt/);
    expectSameStats(out, wantStats);
    const entries = cacheEntries(own);
    expect(entries).toHaveLength(SUBSET);
    for (const e of entries) expect(entryVerdict(e), e).toBe("ok");
  });
});

describe("kill -9 in the middle of jpeg --cache-variants", () => {
  it("leaves the JPEG copy's entry absent, and the next run writes whole entries and prints the uncached results", async () => {
    const own = path.join(tmp, "cache-jpeg");
    cpSync(cache, own, { recursive: true }); // the originals' entries, without the copies'
    const before = new Set(cacheEntries(own)); // the originals: the next entry written is a JPEG copy's

    const args = [...jpegArgs(), "--cache-variants"];
    const killed = await runCliChild(args, { DIFFEVAL_CACHE: own, DIFFEVAL_TEST_CRASH_AT: "partial:.dfc" });
    expect(killed.signal).toBe("SIGKILL");
    expect(cacheEntries(own).filter((e) => !before.has(e))).toEqual([]);

    const rerun = await runCliChild(args, { DIFFEVAL_CACHE: own });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).not.toMatch(/corrupt/);
    expect(JSON.parse(rerun.stdout).results).toEqual(wantJpeg);
    const variants = cacheEntries(own).filter((e) => !before.has(e));
    expect(variants).toHaveLength(SUBSET);
    for (const e of variants) expect(entryVerdict(e), e).toBe("ok");
  });
});
