/**
 * Find the weight file to use, in this order:
 *   1. an explicit path (`--weights FILE`, a .pth or .onnx),
 *   2. `$DIFFEVAL_WEIGHTS`,
 *   3. the cached copy of the registry entry (default: the FID Inception weights),
 *   4. a verified download into the cache (unless downloads are disallowed).
 * User-supplied files need not match the registry (other weights, test fixtures); the returned
 * sha256 is always the file's real hash so results record which weights produced them.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { sha256File, writeFileAtomic } from "../io/atomic.js";
import { parseJsonText } from "../io/read-json.js";
import { hashMemoPath, weightsCachePath, type Env } from "./cache.js";
import { downloadVerified, type ProgressCallback } from "./download.js";
import {
  DEFAULT_WEIGHTS_ID,
  findEntryBySha256,
  getWeightsEntry,
  hashMatchesEntry,
  type WeightsEntry,
} from "./registry.js";

export type WeightsKind = "pth" | "onnx";
export type WeightsSource = "flag" | "env" | "cache" | "download";

export interface EnsureWeightsOptions {
  /** Explicit weight file (from `--weights`). */
  weights?: string;
  env?: Env;
  /** Download into the cache when nothing else is found (default true). */
  allowDownload?: boolean;
  onProgress?: ProgressCallback;
  /** The registry entry to cache/download (default: DEFAULT_WEIGHTS_ID). */
  entry?: WeightsEntry;
}

export interface EnsuredWeights {
  path: string;
  /** Real sha256 of the file (recorded in results). */
  sha256: string;
  kind: WeightsKind;
  source: WeightsSource;
  /** Registry id whose hash this file matches, if any (undefined: unknown/custom weights). */
  registryId: string | undefined;
}

export async function ensureWeightsFile(opts: EnsureWeightsOptions = {}): Promise<EnsuredWeights> {
  const env = opts.env ?? process.env;
  if (opts.weights) return userWeights(opts.weights, "flag", env);
  if (env.DIFFEVAL_WEIGHTS) return userWeights(env.DIFFEVAL_WEIGHTS, "env", env);
  const entry = opts.entry ?? getWeightsEntry(DEFAULT_WEIGHTS_ID);
  const cached = weightsCachePath(entry, env);
  const allowDownload = opts.allowDownload ?? true;
  const hit = await cachedWeights(cached, entry, allowDownload);
  if (hit) return hit;
  if (!allowDownload) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `the ${entry.id} weights are not in the cache (${cached}) and downloading is disabled; ` +
        `download ${entry.url} and save it as ${cached}, or pass --weights FILE (or set DIFFEVAL_WEIGHTS=FILE)`,
    );
  }
  return downloadWeights(cached, entry, opts.onProgress);
}

async function userWeights(file: string, source: "flag" | "env", env: Env): Promise<EnsuredWeights> {
  const abs = path.resolve(file);
  if (!(await isFile(abs))) {
    const how = source === "flag" ? "--weights" : "DIFFEVAL_WEIGHTS";
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `weights file ${abs} (given by ${how}) does not exist or is not a file; ` +
        `pass an existing .pth or .onnx file, or leave ${how} unset to use the standard FID Inception weights`,
    );
  }
  // Memo in the cache dir, never next to the user's file (their folder may be read-only).
  const sha256 = await sha256WithMemo(abs, hashMemoPath(abs, env));
  return { path: abs, sha256, kind: weightsKind(abs), source, registryId: findEntryBySha256(sha256)?.id };
}

/** The cached file if present and matching; undefined when absent (or corrupt and re-downloadable). */
async function cachedWeights(
  file: string,
  entry: WeightsEntry,
  allowDownload: boolean,
): Promise<EnsuredWeights | undefined> {
  if (!(await isFile(file))) return undefined;
  const sha256 = await sha256WithMemo(file, sidecarPath(file));
  if (hashMatchesEntry(entry, sha256)) {
    return { path: file, sha256, kind: weightsKind(file), source: "cache", registryId: entry.id };
  }
  if (allowDownload) return undefined; // the verified download replaces it atomically
  throw new DiffevalError(
    "E_WEIGHTS_SHA256",
    `the cached weights ${file} have sha256 ${sha256}, expected ${entry.sha256 ?? `${entry.sha256Prefix}…`}; ` +
      `delete the file and rerun with downloads allowed, or replace it with a good copy of ${entry.url}`,
  );
}

async function downloadWeights(
  dest: string,
  entry: WeightsEntry,
  onProgress: ProgressCallback | undefined,
): Promise<EnsuredWeights> {
  const { sha256 } = await downloadVerified({
    url: entry.url,
    dest,
    sha256: entry.sha256,
    sha256Prefix: entry.sha256Prefix,
    onProgress,
  });
  await writeMemo(sidecarPath(dest), dest, sha256);
  return { path: dest, sha256, kind: weightsKind(dest), source: "download", registryId: entry.id };
}

/** `<file>.sha256.json`: JSON rather than `sha256sum` format, since it also holds size and mtime. */
export function sidecarPath(file: string): string {
  return `${file}.sha256.json`;
}

interface HashMemo {
  sha256: string;
  size: number;
  mtimeMs: number;
}

/**
 * sha256 of `file`, reusing the memo when size and mtime are unchanged (hashing the 95 MB
 * weights on every run is wasted time). The stat is taken before hashing, so a file changed
 * while being hashed gets a stale key and is rehashed next time.
 */
export async function sha256WithMemo(file: string, memoPath: string): Promise<string> {
  const st = await stat(file);
  const memo = await readMemo(memoPath);
  if (memo && memo.size === st.size && memo.mtimeMs === st.mtimeMs) return memo.sha256;
  const sha256 = await sha256File(file);
  await saveMemo(memoPath, { sha256, size: st.size, mtimeMs: st.mtimeMs });
  return sha256;
}

/** The memo's sha256 when it still describes `file` (same size and mtime); undefined otherwise, without hashing. */
export async function memoSha256(file: string, memoPath: string): Promise<string | undefined> {
  const st = await stat(file);
  const memo = await readMemo(memoPath);
  return memo && memo.size === st.size && memo.mtimeMs === st.mtimeMs ? memo.sha256 : undefined;
}

async function writeMemo(memoPath: string, file: string, sha256: string): Promise<void> {
  const st = await stat(file);
  await saveMemo(memoPath, { sha256, size: st.size, mtimeMs: st.mtimeMs });
}

/** Best effort: a read-only cache only costs a rehash next time. */
async function saveMemo(memoPath: string, memo: HashMemo): Promise<void> {
  try {
    await writeFileAtomic(memoPath, `${JSON.stringify(memo)}\n`);
  } catch {
    // ignore
  }
}

async function readMemo(memoPath: string): Promise<HashMemo | undefined> {
  try {
    const m = parseJsonText(await readFile(memoPath, "utf8"), memoPath, "E_WEIGHTS_SHA256", "a hash memo") as Partial<HashMemo>;
    const ok =
      typeof m.sha256 === "string" && /^[0-9a-f]{64}$/.test(m.sha256) &&
      typeof m.size === "number" && typeof m.mtimeMs === "number";
    return ok ? (m as HashMemo) : undefined;
  } catch {
    return undefined; // absent or unreadable: rehash
  }
}

function weightsKind(file: string): WeightsKind {
  return path.extname(file).toLowerCase() === ".onnx" ? "onnx" : "pth";
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
