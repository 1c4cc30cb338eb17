/**
 * On-disk cache of per-image features, content-addressed: one small file per
 * (weights sha256, protocol, model outputs, image content sha256). A second run over the same
 * images does no inference, renamed or moved files still hit, and an interrupted run keeps every
 * image it finished. Entries are written with io/atomic.ts (temp file + rename), so a killed run
 * leaves an entry whole or absent, and several processes may share one cache folder: they write
 * identical bytes for one image, and the last rename wins.
 *
 * Entry layout, version 2 (`<sha>.dfc`; the headerless `.f32` files of version 1 are never read,
 * so they are misses):
 *   0..8    magic "diffevfc"
 *   8..12   layout version (uint32 LE) = 2
 *   12..16  float count (uint32 LE)
 *   16..48  sha256 over the image's content sha256 (hex, ASCII) followed by the payload
 *   48..    payload: the outputs' little-endian float32 values, one after the other, in `outputs` order
 * The checksum catches a flipped byte, a truncated file (a power loss after a non-fsynced write, a
 * copy cut short) and an entry under another image's name. sha256 (node:crypto, OpenSSL) costs
 * 11-14 us on a 12 KB Inception entry, less than hashing the image file itself (which every
 * lookup already does) and nothing beside a decode or an inference, so no faster, weaker hash is
 * worth its collision argument. A bad entry is reported once, recomputed and overwritten.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../io/atomic.js";

/** One image's model outputs, by name (pool3, logits, and spatial when asked for). */
export type CachedFeatures = Record<string, Float32Array>;

export interface FeatureCache {
  get(contentSha256: string): Promise<CachedFeatures | undefined>;
  put(contentSha256: string, features: CachedFeatures): Promise<void>;
}

export interface FeatureCacheKey {
  root: string;
  weightsSha256: string;
  protocol: string;
  /** The cached outputs and their widths, e.g. [["pool3", 2048], ["logits", 1008]]. */
  outputs: [name: string, dim: number][];
  /** Where the one-line warning about a corrupt entry goes (the CLI: stderr). */
  warn?: (line: string) => void;
}

const MAGIC = Buffer.from("diffevfc", "ascii");
export const FEATURE_CACHE_LAYOUT = 2;
/** The file extension of a layout-2 entry. */
export const FEATURE_CACHE_EXTENSION = ".dfc";
export const FEATURE_CACHE_HEADER_BYTES = 48;
/** Corrupt entries named one by one; beyond this, one closing line (a damaged disk would flood stderr). */
const MAX_NAMED_CORRUPT = 5;

export function openFeatureCache(key: FeatureCacheKey): FeatureCache {
  const names = key.outputs.map(([name]) => name).join("+");
  const dir = path.join(key.root, "features", `${key.weightsSha256.slice(0, 16)}-${key.protocol}-${names}`);
  const entryPath = (sha: string) => path.join(dir, sha.slice(0, 2), `${sha}${FEATURE_CACHE_EXTENSION}`);
  const values = key.outputs.reduce((sum, [, dim]) => sum + dim, 0);
  const reportCorrupt = corruptionReporter(key.warn);
  return {
    async get(sha) {
      const file = entryPath(sha);
      let buf: Buffer;
      try {
        buf = await readFile(file);
      } catch {
        return undefined; // absent (or unreadable): compute it
      }
      const verdict = checkEntry(buf, sha, values);
      if (verdict !== "ok") {
        if (verdict !== "other-layout") reportCorrupt(file, verdict);
        return undefined;
      }
      const all = new Float32Array(buf.buffer.slice(buf.byteOffset + FEATURE_CACHE_HEADER_BYTES, buf.byteOffset + buf.byteLength));
      const out: CachedFeatures = {};
      let offset = 0;
      for (const [name, dim] of key.outputs) {
        out[name] = all.subarray(offset, offset + dim);
        offset += dim;
      }
      return out;
    },
    async put(sha, features) {
      const entry = new Uint8Array(FEATURE_CACHE_HEADER_BYTES + 4 * values);
      const all = new Float32Array(entry.buffer, FEATURE_CACHE_HEADER_BYTES, values);
      let offset = 0;
      for (const [name, dim] of key.outputs) {
        all.set(features[name].subarray(0, dim), offset);
        offset += dim;
      }
      writeHeader(entry, sha, values);
      await writeFileAtomic(entryPath(sha), entry, { durable: false, elsewhere: "point DIFFEVAL_CACHE at another folder (or pass --no-cache)" });
    },
  };
}

/** "ok", "other-layout" (a valid entry of another layout version: a plain miss), or what is wrong. */
export function checkEntry(buf: Uint8Array, sha: string, values: number): string {
  if (buf.byteLength < FEATURE_CACHE_HEADER_BYTES || !MAGIC.equals(buf.subarray(0, MAGIC.length))) {
    return `not a feature-cache entry (${buf.byteLength} bytes, no header)`;
  }
  const view = new DataView(buf.buffer, buf.byteOffset, FEATURE_CACHE_HEADER_BYTES);
  if (view.getUint32(8, true) !== FEATURE_CACHE_LAYOUT) return "other-layout";
  const count = view.getUint32(12, true);
  const payload = buf.byteLength - FEATURE_CACHE_HEADER_BYTES;
  if (count !== values || payload !== 4 * values) {
    return `holds ${payload} payload bytes for ${count} values, expected ${4 * values} bytes for ${values}`;
  }
  const want = entryDigest(sha, buf.subarray(FEATURE_CACHE_HEADER_BYTES));
  return Buffer.from(want).equals(buf.subarray(16, 48)) ? "ok" : "checksum mismatch";
}

function writeHeader(entry: Uint8Array, sha: string, values: number): void {
  entry.set(MAGIC, 0);
  const view = new DataView(entry.buffer, entry.byteOffset, FEATURE_CACHE_HEADER_BYTES);
  view.setUint32(8, FEATURE_CACHE_LAYOUT, true);
  view.setUint32(12, values, true);
  entry.set(entryDigest(sha, entry.subarray(FEATURE_CACHE_HEADER_BYTES)), 16);
}

/** sha256(image content sha256 in hex ‖ payload): binds the values to the entry's name. */
function entryDigest(sha: string, payload: Uint8Array): Uint8Array {
  return createHash("sha256").update(sha, "ascii").update(payload).digest();
}

/** A warning per corrupt entry file, each file once, the first MAX_NAMED_CORRUPT by name. */
function corruptionReporter(warn: ((line: string) => void) | undefined): (file: string, why: string) => void {
  const seen = new Set<string>();
  return (file, why) => {
    if (!warn || seen.has(file)) return;
    seen.add(file);
    if (seen.size <= MAX_NAMED_CORRUPT) {
      warn(`warning: feature cache entry ${file} is corrupt (${why}); recomputing it`);
    } else if (seen.size === MAX_NAMED_CORRUPT + 1) {
      warn(`warning: more corrupt feature cache entries under ${path.dirname(path.dirname(file))}; recomputing them without further warnings`);
    }
  };
}
