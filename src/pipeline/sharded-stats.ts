/**
 * Statistics of a source too large for one machine: `computeStatsShard` fits the partial sums of
 * one deterministic slice (io/shard-file.ts says which), `mergeStatsShardFiles` merges the parts
 * exactly (stats/shards.ts). Used by `diffeval stats SOURCE --shard I/N` and `diffeval stats merge`.
 */
import { readFile } from "node:fs/promises";
import type { ExtractorOptions } from "../features/extractor.js";
import { readShardPart, shardRange, sourceFingerprint } from "../io/shard-file.js";
import { accumulate, createAccumulator, type GaussianAccumulator } from "../stats/gaussian.js";
import { mergeShards, type MergedShards, type ShardMeta, type ShardSpec } from "../stats/shards.js";
import { VERSION } from "../version.js";
import { withExtraction } from "./with-extraction.js";

export interface StatsShardOptions extends ExtractorOptions {
  source: string;
  shard: ShardSpec;
  /** A seeded subset of the source, taken before slicing (every shard must use the same values). */
  limit?: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface StatsShard {
  acc: GaussianAccumulator;
  meta: ShardMeta;
  skipped: { name: string; message: string }[];
}

export async function computeStatsShard(opts: StatsShardOptions): Promise<StatsShard> {
  return withExtraction([opts.source], opts, async ([images], extractor) => {
    const names = images!.items.map((item) => item.name);
    const range = shardRange(names.length, opts.shard);
    const out = await extractor.extract(images!.items.slice(range.start, range.end), opts.onProgress);
    const acc = createAccumulator(out.embedding.d);
    accumulate(acc, out.embedding);
    const meta: ShardMeta = {
      kind: "diffeval-stats-shard",
      format: 1,
      ...(extractor.encoder !== "inception" ? { encoder: extractor.encoder } : {}),
      protocol: extractor.protocol,
      weights_sha256: extractor.model.weightsSha256,
      source: opts.source,
      source_fingerprint: sourceFingerprint(names),
      source_count: names.length,
      shard: { ...opts.shard, ...range },
      n: out.embedding.n,
      skipped: out.skipped.length,
      d: out.embedding.d,
      tool_version: VERSION,
      date: new Date().toISOString(),
    };
    return { acc, meta, skipped: out.skipped };
  });
}

/** Reads the part files and merges them (refusing mismatched, duplicated or missing shards by name). */
export async function mergeStatsShardFiles(files: readonly string[]): Promise<MergedShards> {
  const parts = [];
  for (const file of files) {
    const buf = await readFile(file);
    parts.push(readShardPart(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), file));
  }
  return mergeShards(parts);
}
