/**
 * Faults: a full disk. A write that runs out of room stops with E_OUTPUT, whose message names
 * the file and says to free space or write elsewhere, and leaves no partial file: the old target
 * stays as it was, the temp file is removed.
 *
 * Without root a test cannot mount a tiny tmpfs, so the disk fills two other ways:
 * - enospc-shim.mjs (test-only) makes node:fs/promises writes to matching paths write half their
 *   bytes and fail with ENOSPC, in this process or, through NODE_OPTIONS=--import, in a CLI child;
 * - the kernel's own limit: `ulimit -f` (RLIMIT_FSIZE) on the child. Past it write(2) fails with
 *   EFBIG instead of ENOSPC (Node ignores the SIGXFSZ that would otherwise kill the process), which
 *   diffeval reports as the same kind of "no room" error.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { openFeatureCache } from "../../src/features/feature-cache.js";
import { writeFileAtomic } from "../../src/io/atomic.js";
import { fixtureModelPath } from "../helpers/model.js";
import { cacheEntries, cpu, filesUnder, realImages, runCliChild, strayTemps } from "./child.js";
import { failWritesWithEnospc } from "./enospc-shim.mjs";

const SHIM = path.join(import.meta.dirname, "enospc-shim.mjs");

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-faults-full-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs `fn` with writes to paths containing `match` failing with ENOSPC; returns what it threw. */
async function thrownWithFullDisk(match: string, fn: () => Promise<unknown>): Promise<unknown> {
  const restore = failWritesWithEnospc(match);
  try {
    await fn();
  } catch (e) {
    return e;
  } finally {
    restore();
  }
  throw new Error("expected the write to fail");
}

describe("a full disk (in-process)", () => {
  it("writeFileAtomic: ENOSPC is E_OUTPUT naming the file, and the old file stays whole with no temp beside it", async () => {
    const dir = mkdtempSync(path.join(tmp, "unit-"));
    const target = path.join(dir, "stats.npz");
    writeFileSync(target, "the previous statistics");
    const e = await thrownWithFullDisk("stats.npz", () => writeFileAtomic(target, new Uint8Array(100_000)));
    expect(isDiffevalError(e, "E_OUTPUT")).toBe(true);
    expect((e as Error).message).toBe(
      `${target}: cannot write (ENOSPC: no space left on the device); the file is left as it was; free space or choose another --out`,
    );
    expect(readFileSync(target, "utf8")).toBe("the previous statistics");
    expect(readdirSync(dir)).toEqual(["stats.npz"]);

    const fresh = path.join(dir, "new.npz");
    expect(isDiffevalError(await thrownWithFullDisk("new.npz", () => writeFileAtomic(fresh, "x".repeat(1000))), "E_OUTPUT")).toBe(true);
    expect(readdirSync(dir)).toEqual(["stats.npz"]);
  });

  it("other write failures (a folder in the way) are E_OUTPUT too, with the errno in words, and leave no temp", async () => {
    const dir = mkdtempSync(path.join(tmp, "in-the-way-"));
    const target = path.join(dir, "out.npz");
    mkdirSync(path.join(target, "child"), { recursive: true }); // rename(2) cannot replace a non-empty folder
    const e = await writeFileAtomic(target, "x").catch((err: unknown) => err);
    expect(isDiffevalError(e, "E_OUTPUT")).toBe(true);
    expect((e as Error).message).toMatch(new RegExp(`^${dir}/out\\.npz: cannot write \\((EISDIR|ENOTEMPTY|EEXIST)[^)]*\\); the file is left as it was; check the folder and its permissions, or choose another --out$`));
    expect(readdirSync(dir)).toEqual(["out.npz"]);
  });

  it("a feature-cache entry: ENOSPC is E_OUTPUT naming the entry and pointing at DIFFEVAL_CACHE, with no entry left", async () => {
    const root = mkdtempSync(path.join(tmp, "cache-"));
    const cache = openFeatureCache({ root, weightsSha256: "f".repeat(64), protocol: "clean", outputs: [["pool3", 4]] });
    const e = await thrownWithFullDisk(".dfc", () => cache.put("a".repeat(64), { pool3: new Float32Array(4) }));
    expect(isDiffevalError(e, "E_OUTPUT")).toBe(true);
    expect((e as Error).message).toMatch(/\/a{64}\.dfc: cannot write \(ENOSPC: .*\); .*free space or point DIFFEVAL_CACHE at another folder/);
    expect(filesUnder(root)).toEqual([]);
    expect(await cache.get("a".repeat(64))).toBeUndefined();
  });
});

describe("a full disk (the CLI)", () => {
  let weights: string;
  beforeAll(async () => {
    weights = await fixtureModelPath(); // already converted: the child writes only its outputs and cache entries
  });

  /** A folder holding an old out.npz, and the stats command that would replace it (its cache, cache-stats, is shared: the first run fills it). */
  function statsJob(name: string): { dir: string; out: string; args: string[]; old: Buffer } {
    const dir = mkdtempSync(path.join(tmp, `${name}-`));
    const out = path.join(dir, "out.npz");
    writeFileSync(out, "old statistics");
    return { dir, out, args: ["stats", realImages, "--out", out, ...cpu(weights)], old: readFileSync(out) };
  }

  function expectNoRoomError(stderr: string, file: string, errno: "ENOSPC" | "EFBIG", elsewhere: string): void {
    const line = stderr.split("\n").find((l) => l.startsWith("error["));
    expect(line).toMatch(new RegExp(`^error\\[E_OUTPUT\\]: .*: cannot write \\(${errno}: [^)]*\\); the file is left as it was; free space or ${elsewhere}$`));
    expect(line).toContain(`${file}: cannot write`);
  }

  it("stats --out on a full disk (ENOSPC): exit 2, E_OUTPUT naming the file, the old file untouched, no partial file", async () => {
    const job = statsJob("enospc");
    const r = await runCliChild(job.args, { DIFFEVAL_CACHE: path.join(tmp, "cache-stats"), DIFFEVAL_TEST_ENOSPC: "out.npz", NODE_OPTIONS: `--import=${SHIM}` });
    expect(r.code).toBe(2);
    expectNoRoomError(r.stderr, job.out, "ENOSPC", "choose another --out");
    expect(readFileSync(job.out).equals(job.old)).toBe(true);
    expect(strayTemps(job.dir)).toEqual([]);
  });

  it("stats --out past the file-size limit (ulimit -f: EFBIG): exit 2, E_OUTPUT naming the file, no partial file", async () => {
    const job = statsJob("efbig");
    // 2 MiB: room for the 12 KB cache entries, not for the 33 MB statistics.
    const r = await runCliChild(job.args, { DIFFEVAL_CACHE: path.join(tmp, "cache-stats") }, ["bash", "-c", 'ulimit -f 2048 && exec "$@"', "_"]);
    expect(r.code, r.stderr).toBe(2);
    expectNoRoomError(r.stderr, job.out, "EFBIG", "choose another --out");
    expect(readFileSync(job.out).equals(job.old)).toBe(true);
    expect(strayTemps(job.dir)).toEqual([]);
  });

  it("a feature-cache write on a full disk: exit 2, E_OUTPUT naming the entry, no entry or temp left, no output written", async () => {
    const job = statsJob("cache-full");
    const cache = path.join(tmp, "cache-full");
    const r = await runCliChild(job.args, { DIFFEVAL_CACHE: cache, DIFFEVAL_TEST_ENOSPC: ".dfc", NODE_OPTIONS: `--import=${SHIM}` });
    expect(r.code).toBe(2);
    const entry = /error\[E_OUTPUT\]: (\S+\.dfc): /.exec(r.stderr)?.[1];
    expect(entry, r.stderr).toBeDefined();
    expectNoRoomError(r.stderr, entry!, "ENOSPC", "point DIFFEVAL_CACHE at another folder \\(or pass --no-cache\\)");
    expect(existsSync(entry!)).toBe(false);
    expect(cacheEntries(cache)).toEqual([]);
    expect(filesUnder(path.join(cache, "features")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(readFileSync(job.out).equals(job.old)).toBe(true);
  });
});
