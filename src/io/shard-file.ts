/**
 * Shards of a source and the files their partial sums live in.
 *
 * Slicing: shard I of N takes the contiguous run of items [floor(I * total / N), floor((I + 1) *
 * total / N)) of the source's stable order (sources.ts: sorted by path, after any --limit/--seed
 * subset). Contiguous rather than I % N so that a shard reads neighbouring files (one directory at
 * a time on a network filesystem) and the parts, concatenated, are the source's order; the sizes
 * differ by at most one item either way.
 *
 * Source fingerprint: sha256 of "<count>\n" followed by each item name and "\n", in source order.
 * Names are relative to the source (folder paths, list entries, zip entry names), so the same
 * dataset mounted at different paths on different machines has the same fingerprint, and a
 * different folder, subset or file list does not. It does not hash image contents (that would
 * make every shard read every image).
 *
 * Part file: an .npz with `shift` (d,), `sum` (d,), `scatter` (d, d) in float64 (the accumulator's
 * state; scatter mirrored to a full symmetric matrix) and `meta` (UTF-8 JSON, kind
 * "diffeval-stats-shard"). It has no `mu`/`sigma`, so no tool mistakes it for statistics.
 */
import { createHash } from "node:crypto";
import { DiffevalError } from "../errors.js";
import type { GaussianAccumulator } from "../stats/gaussian.js";
import { accumulatorFromSums, flushedAccumulator, type ShardMeta, type ShardPart, type ShardSpec } from "../stats/shards.js";
import type { NpyArray } from "./npy.js";
import { readNpz, writeNpz } from "./npz.js";
import { parseJsonText } from "./read-json.js";

/** Parses "I/N" (0 <= I < N), as given to --shard. */
export function parseShardSpec(text: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count || count > MAX_SHARDS) {
    throw new DiffevalError(
      "E_USAGE",
      `--shard must be I/N with 0 <= I < N <= ${MAX_SHARDS} (0-based, e.g. --shard $SLURM_ARRAY_TASK_ID/8), got '${text}'`,
    );
  }
  return { index, count };
}

/**
 * The most shards one job may be split into. A merge lists the shards it expects, so a part
 * claiming 10^12 of them must be refused before that list is made; a million is far beyond any
 * cluster array (Slurm's MaxArraySize defaults to 1001).
 */
export const MAX_SHARDS = 1_000_000;

/** Item range [start, end) of shard `spec` in a source of `total` items. */
export function shardRange(total: number, spec: ShardSpec): { start: number; end: number } {
  return {
    start: Math.floor((spec.index * total) / spec.count),
    end: Math.floor(((spec.index + 1) * total) / spec.count),
  };
}

/** sha256 (hex) of the item count and names in source order (see the file comment). */
export function sourceFingerprint(names: readonly string[]): string {
  const hash = createHash("sha256").update(`${names.length}\n`);
  for (const name of names) hash.update(`${name}\n`);
  return hash.digest("hex");
}

/** The part file's bytes: the flushed accumulator's sums and `meta`. */
export function writeShardPart(acc: GaussianAccumulator, meta: ShardMeta): Uint8Array {
  const flushed = flushedAccumulator(acc);
  const { d } = flushed;
  const scatter = Float64Array.from(flushed.scatter);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) scatter[j * d + i] = scatter[i * d + j];
  const json = new TextEncoder().encode(JSON.stringify({ ...meta, n: flushed.n, d }));
  return writeNpz({
    shift: { dtype: "<f8", shape: [d], data: flushed.shift ?? new Float64Array(d) },
    sum: { dtype: "<f8", shape: [d], data: flushed.sum },
    scatter: { dtype: "<f8", shape: [d, d], data: scatter },
    meta: { dtype: "|u1", shape: [json.length], data: json },
  });
}

/** Parses a part file written by writeShardPart; `name` (its path) is used in errors. */
export function readShardPart(buf: Uint8Array, name: string): ShardPart {
  const arrays = readNpz(buf, name);
  const meta = partMeta(arrays.get("meta"), name, arrays.has("mu"));
  const d = meta.d;
  const shift = float64(arrays.get("shift"), [d], `${name}[shift]`);
  const sum = float64(arrays.get("sum"), [d], `${name}[sum]`);
  const scatter = float64(arrays.get("scatter"), [d, d], `${name}[scatter]`);
  return { name, meta, acc: accumulatorFromSums(d, meta.n, shift, sum, scatter) };
}

function partMeta(arr: NpyArray | undefined, name: string, isStats: boolean): ShardMeta {
  let meta: Partial<ShardMeta> | undefined;
  try {
    if (arr?.dtype === "|u1") meta = parseJsonText(new TextDecoder().decode(arr.data as Uint8Array), "meta", "E_SHARD_FORMAT", "a JSON object") as Partial<ShardMeta>;
  } catch {
    meta = undefined;
  }
  if (meta?.kind !== "diffeval-stats-shard") {
    const what = isStats ? "a statistics file, not a shard part" : "not a shard part";
    throw new DiffevalError(
      "E_SHARD_FORMAT",
      `${name} is ${what} (parts are written by 'diffeval stats SOURCE --shard I/N --out part-I.npz')`,
    );
  }
  const count = meta.shard?.count;
  const index = meta.shard?.index;
  const ok =
    meta.format === 1 &&
    Number.isSafeInteger(meta.d) && meta.d! > 0 &&
    Number.isSafeInteger(meta.n) && meta.n! >= 0 &&
    Number.isSafeInteger(meta.skipped) && meta.skipped! >= 0 &&
    Number.isSafeInteger(count) && count! >= 1 && count! <= MAX_SHARDS &&
    Number.isSafeInteger(index) && index! >= 0 && index! < count!;
  if (!ok) throw new DiffevalError("E_SHARD_FORMAT", `${name}: the shard part's meta is incomplete or from an unknown format version`);
  return meta as ShardMeta;
}

/** The array, which must be float64 of `shape` with finite values (NaN or Inf would poison the merged sums). */
function float64(arr: NpyArray | undefined, shape: number[], name: string): Float64Array {
  if (!arr || arr.dtype !== "<f8" || arr.shape.join(",") !== shape.join(",")) {
    throw new DiffevalError("E_SHARD_FORMAT", `${name}: expected float64 of shape (${shape.join(", ")})`);
  }
  const data = arr.data as Float64Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new DiffevalError("E_NONFINITE", `${name}: value ${i} is ${data[i]}; recompute this shard part`);
    }
  }
  return data;
}
