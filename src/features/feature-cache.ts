/**
 * On-disk cache of per-image features, content-addressed: one small file per
 * (weights sha256, protocol, image content sha256). A second run over the same images does no
 * inference, renamed or moved files still hit, and an interrupted run keeps every image it
 * finished (each entry is written to a temp file and renamed into place).
 *
 * Entry layout: little-endian float32 pool3 (dPool values) followed by the logits (dLogits).
 */
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

export interface CachedFeatures {
  pool3: Float32Array;
  logits: Float32Array;
}

export interface FeatureCache {
  get(contentSha256: string): Promise<CachedFeatures | undefined>;
  put(contentSha256: string, features: CachedFeatures): Promise<void>;
}

export interface FeatureCacheKey {
  root: string;
  weightsSha256: string;
  protocol: string;
  dPool: number;
  dLogits: number;
}

export function openFeatureCache(key: FeatureCacheKey): FeatureCache {
  const dir = path.join(key.root, "features", `${key.weightsSha256.slice(0, 16)}-${key.protocol}`);
  const entryPath = (sha: string) => path.join(dir, sha.slice(0, 2), `${sha}.f32`);
  const byteLength = 4 * (key.dPool + key.dLogits);
  return {
    async get(sha) {
      let buf: Buffer;
      try {
        buf = await readFile(entryPath(sha));
      } catch {
        return undefined;
      }
      if (buf.byteLength !== byteLength) return undefined; // from another layout or torn: recompute
      const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + byteLength));
      return { pool3: all.subarray(0, key.dPool), logits: all.subarray(key.dPool) };
    },
    async put(sha, features) {
      const file = entryPath(sha);
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      const bytes = new Uint8Array(byteLength);
      bytes.set(new Uint8Array(features.pool3.buffer, features.pool3.byteOffset, 4 * key.dPool), 0);
      bytes.set(new Uint8Array(features.logits.buffer, features.logits.byteOffset, 4 * key.dLogits), 4 * key.dPool);
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, file);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw e;
      }
    },
  };
}
