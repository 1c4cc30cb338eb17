import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readNpz, readStatsNpz } from "../../src/io/npz.js";
import { maxRelativeError } from "../helpers/arrays.js";
import { runCli } from "../helpers/cli.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

let weights: string;
let tmp: string;
const real = fixture("images", "real");
const savedCache = process.env.DIFFEVAL_CACHE;

const common = () => ["--weights", weights, "--device", "cpu", "--threads", "0"];
const out = (name: string) => path.join(tmp, name);
const part = (i: number) => out(`part-${i}.npz`);
const stats = (file: string) => readStatsNpz(new Uint8Array(readFileSync(file)), file);

beforeAll(async () => {
  weights = await fixtureStateDictPath(false);
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-shards-"));
  process.env.DIFFEVAL_CACHE = path.join(tmp, "cache");
  expect((await runCli(["stats", real, "--out", out("full.npz"), ...common()])).code).toBe(0);
  for (let i = 0; i < 3; i++) {
    const r = await runCli(["stats", real, "--shard", `${i}/3`, "--out", part(i), ...common()]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
  }
});

afterAll(() => {
  if (savedCache === undefined) delete process.env.DIFFEVAL_CACHE;
  else process.env.DIFFEVAL_CACHE = savedCache;
  rmSync(tmp, { recursive: true, force: true });
});

describe("diffeval stats --shard I/N and stats merge", () => {
  it("splits the 32 fixture images into contiguous slices 0..9, 10..20, 21..31 with their partial sums", () => {
    const sizes = [0, 1, 2].map((i) => {
      const arrays = readNpz(new Uint8Array(readFileSync(part(i))), part(i));
      expect([...arrays.keys()].sort()).toEqual(["meta", "scatter", "shift", "sum"]);
      expect(arrays.get("scatter")!.shape).toEqual([2048, 2048]);
      const meta = JSON.parse(new TextDecoder().decode(arrays.get("meta")!.data as Uint8Array));
      expect(meta).toMatchObject({ kind: "diffeval-stats-shard", protocol: "clean", source_count: 32, shard: { index: i, count: 3 } });
      expect(meta.source_fingerprint).toMatch(/^[0-9a-f]{64}$/);
      return [meta.shard.start, meta.shard.end, meta.n];
    });
    expect(sizes).toEqual([
      [0, 10, 10],
      [10, 21, 11],
      [21, 32, 11],
    ]);
  });

  it("merges the 3 parts into the unsharded mu and sigma within 1e-12 relative, in any argument order", async () => {
    const r = await runCli(["stats", "merge", part(2), part(0), part(1), "--out", out("merged.npz")]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const full = stats(out("full.npz"));
    const merged = stats(out("merged.npz"));
    expect(merged.gaussian.n).toBe(32);
    expect(maxRelativeError(full.gaussian.mu, merged.gaussian.mu)).toBeLessThan(1e-12);
    expect(maxRelativeError(full.gaussian.sigma, merged.gaussian.sigma)).toBeLessThan(1e-12);
    expect(merged.meta).toMatchObject({ protocol: "clean", weights_sha256: full.meta!.weights_sha256, n: 32, shards: 3, source: real });
  });

  it("gives a merged file that diffeval fid uses like the unsharded one (pytorch-fid's value for clean)", async () => {
    const r = await runCli(["fid", "--real", out("merged.npz"), "--fake", fixture("images", "fake"), "--json", ...common()]);
    expect(r.code).toBe(0);
    expect(Math.abs(JSON.parse(r.stdout).fid - expectedJson().fid_clean_pytorch_fid_formula)).toBeLessThan(1e-4);
  });

  it("names the missing shard", async () => {
    const r = await runCli(["stats", "merge", part(0), part(2), "--out", out("x.npz")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_SHARD_MISSING\]: missing shard 1\/3; got 0 \(.*part-0\.npz\), 2 \(.*part-2\.npz\)/);
  });

  it("names the part computed under another protocol", async () => {
    const other = out("part-1-legacy.npz");
    expect((await runCli(["stats", real, "--shard", "1/3", "--protocol", "legacy-pytorch", "--out", other, ...common()])).code).toBe(0);
    const r = await runCli(["stats", "merge", part(0), other, part(2), "--out", out("x.npz")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_SHARD_MISMATCH\]: .*part-1-legacy\.npz was computed with protocol legacy-pytorch, .*part-0\.npz with clean/);
  });

  it("refuses a duplicated shard, a part of another source and a plain stats file", async () => {
    const dup = await runCli(["stats", "merge", part(0), part(1), part(1), part(2), "--out", out("x.npz")]);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/error\[E_SHARD_DUPLICATE\]: shard 1\/3 is given twice/);

    const fewer = path.join(tmp, "fewer");
    mkdirSync(fewer);
    for (const f of ["real_0000.png", "real_0001.png", "real_0002.png"]) writeFileSync(path.join(fewer, f), readFileSync(path.join(real, f)));
    expect((await runCli(["stats", fewer, "--shard", "1/3", "--out", out("other-source.npz"), ...common()])).code).toBe(0);
    const src = await runCli(["stats", "merge", part(0), out("other-source.npz"), part(2), "--out", out("x.npz")]);
    expect(src.code).toBe(2);
    expect(src.stderr).toMatch(/error\[E_SHARD_MISMATCH\]: .*other-source\.npz was computed with source_fingerprint/);

    const plain = await runCli(["stats", "merge", part(0), out("full.npz"), "--out", out("x.npz")]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/error\[E_SHARD_FORMAT\]: .*full\.npz is a statistics file, not a shard part/);
  });

  it("refuses a shard spec out of range and merge without --out", async () => {
    const r = await runCli(["stats", real, "--shard", "3/3", "--out", out("x.npz"), ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_USAGE\]: --shard must be I\/N with 0 <= I < N/);
    const m = await runCli(["stats", "merge", part(0), part(1), part(2)]);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/error\[E_USAGE\]: --out <file.npz> is required/);
  });

  it("still reads a folder spelled like a subcommand when given as ./list", async () => {
    const cwd = process.cwd();
    const dir = path.join(tmp, "cwd");
    mkdirSync(path.join(dir, "list"), { recursive: true });
    for (const f of ["real_0000.png", "real_0001.png"]) writeFileSync(path.join(dir, "list", f), readFileSync(path.join(real, f)));
    process.chdir(dir);
    try {
      const r = await runCli(["stats", "./list", "--out", "list.npz", ...common()]);
      expect(r.code).toBe(0);
      expect(stats(path.join(dir, "list.npz")).gaussian.n).toBe(2);
    } finally {
      process.chdir(cwd);
    }
  });
});
