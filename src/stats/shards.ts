/**
 * Sharded statistics: each of N jobs fits the Gaussian accumulator (gaussian.ts) of one slice of
 * a source, and the N partial sums merge exactly into the statistics of the whole source.
 *
 * A shard's state is the accumulator itself: n, the shift c, sum (x - c) and sum (x - c)(x - c)^T,
 * all float64. mergeAccumulators re-centres one part's sums on the other's shift, so the merged
 * mean and covariance equal the single-machine fit up to float64 rounding of the additions
 * (the same order of error as the single-machine fit itself), whatever the shards' sizes.
 *
 * Merging refuses what would silently give a wrong number: parts computed under another protocol
 * or weights, parts of another source (its fingerprint: the sorted item names and their count),
 * parts of a job split another way (N), a shard given twice, and a shard missing.
 */
import { DiffevalError } from "../errors.js";
import type { Gaussian } from "../types.js";
import { createAccumulator, finalizeGaussian, mergeAccumulators, type GaussianAccumulator } from "./gaussian.js";

export interface ShardSpec {
  /** 0-based: 0 .. count - 1, as $SLURM_ARRAY_TASK_ID (with --array=0-(N-1)) and $JOB_COMPLETION_INDEX count. */
  index: number;
  count: number;
}

/** What a shard part records besides its sums: enough to refuse parts that do not belong together. */
export interface ShardMeta {
  kind: "diffeval-stats-shard";
  format: 1;
  /** The feature space; absent means inception (parts written before other encoders existed). */
  encoder?: string;
  protocol: string;
  weights_sha256: string;
  /** The source as given on this shard's command line (paths may differ between machines). */
  source: string;
  /** sha256 of the source's item count and sorted item names (see io/shard-file.ts). */
  source_fingerprint: string;
  source_count: number;
  /** This shard: its index and count, and the item range [start, end) it processed. */
  shard: ShardSpec & { start: number; end: number };
  /** Feature rows in the sums (images that decoded). */
  n: number;
  /** Images skipped as undecodable (--skip-bad). */
  skipped: number;
  d: number;
  tool_version: string;
  date: string;
}

export interface ShardPart {
  /** The part's file name, for error messages. */
  name: string;
  meta: ShardMeta;
  acc: GaussianAccumulator;
}

export interface MergedShards {
  gaussian: Gaussian;
  /** Shared settings of the parts plus the totals, for the merged statistics file's meta. */
  meta: Record<string, unknown>;
}

/** The accumulator with every buffered row added to the scatter matrix (what a part stores). */
export function flushedAccumulator(acc: GaussianAccumulator): GaussianAccumulator {
  // Merging with an empty accumulator flushes and copies (gaussian.ts keeps flushPending private).
  return mergeAccumulators(acc, createAccumulator(acc.d));
}

/** An accumulator rebuilt from stored sums (n = 0: no shift, nothing accumulated). */
export function accumulatorFromSums(d: number, n: number, shift: Float64Array, sum: Float64Array, scatter: Float64Array): GaussianAccumulator {
  return { d, n, shift: n === 0 ? null : shift, sum, scatter, pending: new Float64Array(0), pendingRows: 0 };
}

/** Validates that the parts make up one complete job, then merges them in shard order. */
export function mergeShards(parts: ShardPart[]): MergedShards {
  if (parts.length === 0) throw new DiffevalError("E_USAGE", "merge needs at least one shard part");
  const first = parts[0];
  for (const part of parts.slice(1)) assertSameJob(first, part);
  const ordered = completeShards(parts);
  let acc = ordered[0].acc;
  for (const part of ordered.slice(1)) acc = mergeAccumulators(acc, part.acc);
  if (acc.n < 2) {
    throw new DiffevalError("E_TOO_FEW_SAMPLES", `the ${parts.length} shard part(s) hold ${acc.n} feature row(s) in all; a covariance needs at least 2`);
  }
  const m = first.meta;
  return {
    gaussian: finalizeGaussian(acc),
    meta: {
      ...(m.encoder !== undefined && m.encoder !== "inception" ? { encoder: m.encoder } : {}),
      protocol: m.protocol,
      weights_sha256: m.weights_sha256,
      source: m.source,
      source_fingerprint: m.source_fingerprint,
      source_count: m.source_count,
      shards: m.shard.count,
      skipped: parts.reduce((s, p) => s + p.meta.skipped, 0),
    },
  };
}

const SAME_JOB_KEYS = ["encoder", "protocol", "weights_sha256", "source_fingerprint", "source_count", "d"] as const;

function assertSameJob(a: ShardPart, b: ShardPart): void {
  for (const key of SAME_JOB_KEYS) {
    // A part without an encoder predates the other encoders: inception.
    const [x, y] = key === "encoder" ? [a.meta.encoder ?? "inception", b.meta.encoder ?? "inception"] : [a.meta[key], b.meta[key]];
    if (x !== y) {
      const what = key === "source_fingerprint" || key === "source_count" ? "source (its sorted item names and count)" : key;
      throw new DiffevalError(
        "E_SHARD_MISMATCH",
        `${b.name} was computed with ${key} ${y}, ${a.name} with ${x}: ` +
          `the parts of one job must share encoder, protocol, weights and source (${what} differs). Recompute ${b.name} with the same settings.`,
      );
    }
  }
  if (a.meta.shard.count !== b.meta.shard.count) {
    throw new DiffevalError(
      "E_SHARD_MISMATCH",
      `${b.name} is shard ${b.meta.shard.index}/${b.meta.shard.count}, ${a.name} shard ${a.meta.shard.index}/${a.meta.shard.count}: ` +
        `the parts come from jobs split into different numbers of shards`,
    );
  }
}

/** The parts in shard order, refusing a duplicate or a gap by name. */
function completeShards(parts: ShardPart[]): ShardPart[] {
  const count = parts[0].meta.shard.count;
  const byIndex = new Map<number, ShardPart>();
  for (const part of parts) {
    const i = part.meta.shard.index;
    const other = byIndex.get(i);
    if (other) {
      throw new DiffevalError("E_SHARD_DUPLICATE", `shard ${i}/${count} is given twice: ${other.name} and ${part.name}; pass each shard once`);
    }
    byIndex.set(i, part);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    const have = [...byIndex.keys()].sort((x, y) => x - y).map((i) => `${i} (${byIndex.get(i)!.name})`);
    throw new DiffevalError(
      "E_SHARD_MISSING",
      `missing shard${missing.length > 1 ? "s" : ""} ${firstFew(missing.map((i) => `${i}/${count}`))}; got ${firstFew(have)}. ` +
        `Run 'diffeval stats SOURCE --shard I/${count} --out part-I.npz' for each missing I, then merge all ${count} parts.`,
    );
  }
  return Array.from({ length: count }, (_, i) => byIndex.get(i)!);
}

/** A list for a message: up to 10 items, then how many more (a job may have a million shards). */
function firstFew(items: readonly string[]): string {
  const shown = items.slice(0, 10).join(", ");
  return items.length > 10 ? `${shown} and ${items.length - 10} more` : shown;
}
