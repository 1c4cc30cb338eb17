import { describe, expect, it } from "vitest";
import { parseShardSpec, readShardPart, shardRange, sourceFingerprint, writeShardPart } from "../../src/io/shard-file.js";
import { accumulate, createAccumulator, fitGaussian } from "../../src/stats/gaussian.js";
import { mergeShards, type ShardMeta, type ShardPart } from "../../src/stats/shards.js";
import type { FeatureMatrix } from "../../src/types.js";
import { maxRelativeError } from "../helpers/arrays.js";
import { codeOf } from "../helpers/errors.js";
import { xorshift32 } from "../helpers/xorshift.js";

/** n x d features far from the origin (|mu| >> std), where a naive one-pass covariance loses digits. */
function features(n: number, d: number, seed: number): FeatureMatrix {
  const next = xorshift32(seed);
  return { n, d, data: Float32Array.from({ length: n * d }, (_, i) => 100 + (i % d) + next() / 2 ** 32) };
}

function rows(f: FeatureMatrix, start: number, end: number): FeatureMatrix {
  return { n: end - start, d: f.d, data: f.data.slice(start * f.d, end * f.d) };
}

function meta(index: number, count: number, n: number, d: number, over: Partial<ShardMeta> = {}): ShardMeta {
  return {
    kind: "diffeval-stats-shard",
    format: 1,
    protocol: "clean",
    weights_sha256: "w",
    source: "src",
    source_fingerprint: "f",
    source_count: 100,
    shard: { index, count, start: 0, end: n },
    n,
    skipped: 0,
    d,
    tool_version: "t",
    date: "now",
    ...over,
  };
}

/** Shard `index` of `f` split at `cuts`, written to a part file and read back. */
function part(f: FeatureMatrix, cuts: number[], index: number, over: Partial<ShardMeta> = {}): ShardPart {
  const acc = createAccumulator(f.d);
  accumulate(acc, rows(f, cuts[index], cuts[index + 1]));
  const bytes = writeShardPart(acc, meta(index, cuts.length - 1, acc.n, f.d, over));
  return readShardPart(bytes, `part-${index}.npz`);
}

describe("shards", () => {
  it("slices contiguously with sizes differing by at most one, covering every item once", () => {
    for (const [total, count] of [[32, 3], [10, 4], [2, 5], [0, 2]]) {
      const ranges = Array.from({ length: count }, (_, index) => shardRange(total, { index, count }));
      expect(ranges[0].start).toBe(0);
      expect(ranges.at(-1)!.end).toBe(total);
      for (let i = 1; i < count; i++) expect(ranges[i].start).toBe(ranges[i - 1].end);
      const sizes = ranges.map((r) => r.end - r.start);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    }
    expect(parseShardSpec(" 2/8 ")).toEqual({ index: 2, count: 8 });
    for (const bad of ["8/8", "1", "-1/3", "a/b", "1/0"]) expect(codeOf(() => parseShardSpec(bad))).toBe("E_USAGE");
  });

  it("fingerprints the count and the names in order", () => {
    expect(sourceFingerprint(["a", "b"])).toMatch(/^[0-9a-f]{64}$/);
    expect(sourceFingerprint(["a", "b"])).not.toBe(sourceFingerprint(["b", "a"]));
    expect(sourceFingerprint(["a\nb"])).not.toBe(sourceFingerprint(["a", "b"]));
  });

  it("merges uneven parts (one of them empty) through their files into the single fit within 1e-12", () => {
    const f = features(300, 24, 7);
    const cuts = [0, 1, 1, 130, 300]; // a 1-row shard, an empty shard, then two large ones
    const merged = mergeShards([3, 0, 2, 1].map((i) => part(f, cuts, i)));
    const single = fitGaussian(f);
    expect(merged.gaussian.n).toBe(300);
    expect(maxRelativeError(single.mu, merged.gaussian.mu)).toBeLessThan(1e-12);
    expect(maxRelativeError(single.sigma, merged.gaussian.sigma)).toBeLessThan(1e-12);
    expect(merged.meta).toMatchObject({ protocol: "clean", shards: 4, source_fingerprint: "f" });
  });

  it("refuses other weights, another split count, duplicates and gaps by part name", () => {
    const f = features(40, 4, 3);
    const cuts = [0, 20, 40];
    expect(() => mergeShards([part(f, cuts, 0), part(f, cuts, 1, { weights_sha256: "other" })])).toThrow(/part-1\.npz was computed with weights_sha256 other/);
    expect(codeOf(() => mergeShards([part(f, cuts, 0), part(f, [0, 10, 20, 40], 1)]))).toBe("E_SHARD_MISMATCH");
    expect(() => mergeShards([part(f, cuts, 0), part(f, cuts, 0)])).toThrow(/shard 0\/2 is given twice: part-0\.npz and part-0\.npz/);
    expect(() => mergeShards([part(f, cuts, 1)])).toThrow(/missing shard 0\/2; got 1 \(part-1\.npz\)/);
  });
});
