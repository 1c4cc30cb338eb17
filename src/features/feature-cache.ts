/**
 * On-disk cache of per-image features, content-addressed: one small file per
 * (weights sha256, protocol, model outputs, image content sha256). A second run over the same
 * images does no inference, renamed or moved files still hit, and an interrupted run keeps every
 * image it finished (each entry is written to a temp file and renamed into place).
 *
 * Entry layout: the outputs' little-endian float32 values, one after the other, in `outputs` order.
 */
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

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
}

export function openFeatureCache(key: FeatureCacheKey): FeatureCache {
  const names = key.outputs.map(([name]) => name).join("+");
  const dir = path.join(key.root, "features", `${key.weightsSha256.slice(0, 16)}-${key.protocol}-${names}`);
  const entryPath = (sha: string) => path.join(dir, sha.slice(0, 2), `${sha}.f32`);
  const values = key.outputs.reduce((sum, [, dim]) => sum + dim, 0);
  return {
    async get(sha) {
      let buf: Buffer;
      try {
        buf = await readFile(entryPath(sha));
      } catch {
        return undefined;
      }
      if (buf.byteLength !== 4 * values) return undefined; // torn or foreign: recompute
      const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 4 * values));
      const out: CachedFeatures = {};
      let offset = 0;
      for (const [name, dim] of key.outputs) {
        out[name] = all.subarray(offset, offset + dim);
        offset += dim;
      }
      return out;
    },
    async put(sha, features) {
      const file = entryPath(sha);
      await mkdir(path.dirname(file), { recursive: true });
      const all = new Float32Array(values);
      let offset = 0;
      for (const [name, dim] of key.outputs) {
        all.set(features[name].subarray(0, dim), offset);
        offset += dim;
      }
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      try {
        await writeFile(tmp, new Uint8Array(all.buffer));
        await rename(tmp, file);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw e;
      }
    },
  };
}
