/**
 * Where diffeval keeps downloaded weights and converted models.
 * Layout under cacheDir():
 *   weights/<upstream file name>            downloaded weight files (+ `<file>.sha256` memo)
 *   onnx/inception-<sha12>-v<ver>.onnx      ONNX graphs converted from those weights
 *   hashes/<sha256(abs path)[:24]>.json     hash memos for user-supplied files
 *   probes/webgpu-<sha256(key)[:24]>.json   WebGPU adapter probes (models/webgpu-probe.ts)
 */
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import type { WeightsEntry } from "./registry.js";

export type Env = Record<string, string | undefined>;

/**
 * `$DIFFEVAL_CACHE`, else `$XDG_CACHE_HOME/diffeval`, else `~/.cache/diffeval`.
 * Empty values count as unset, and a relative XDG_CACHE_HOME is ignored, as the XDG Base
 * Directory spec requires ("If $XDG_CACHE_HOME is either not set or empty, a default ... should
 * be used"; "All paths set in these environment variables must be absolute").
 */
export function cacheDir(env: Env = process.env): string {
  const own = env.DIFFEVAL_CACHE;
  if (own) return path.resolve(own);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "diffeval");
  return path.join(os.homedir(), ".cache", "diffeval");
}

export function weightsCachePath(entry: Pick<WeightsEntry, "fileName">, env: Env = process.env): string {
  return path.join(cacheDir(env), "weights", entry.fileName);
}

/**
 * The converted graph is keyed by the weights' hash and the converter version, so new weights
 * or a fixed converter never reuse a stale graph.
 */
export function convertedModelCachePath(
  weightsSha256: string,
  converterVersion: string,
  env: Env = process.env,
): string {
  if (!/^[0-9a-f]{12,64}$/i.test(weightsSha256)) {
    throw new DiffevalError("E_INTERNAL", `convertedModelCachePath: not a hex sha256: "${weightsSha256}"`);
  }
  if (!/^[0-9A-Za-z._-]+$/.test(converterVersion)) {
    throw new DiffevalError("E_INTERNAL", `convertedModelCachePath: bad converter version "${converterVersion}"`);
  }
  const name = `inception-${weightsSha256.slice(0, 12).toLowerCase()}-v${converterVersion}.onnx`;
  return path.join(cacheDir(env), "onnx", name);
}

/** Memo location for the hash of a file outside the cache (never written next to user files). */
export function hashMemoPath(file: string, env: Env = process.env): string {
  const key = createHash("sha256").update(path.resolve(file)).digest("hex").slice(0, 24);
  return path.join(cacheDir(env), "hashes", `${key}.json`);
}

/** Where a WebGPU probe's verdict is kept; `key` names everything the verdict depends on. */
export function webgpuProbePath(key: string, env: Env = process.env): string {
  const name = createHash("sha256").update(key).digest("hex").slice(0, 24);
  return path.join(cacheDir(env), "probes", `webgpu-${name}.json`);
}
