/**
 * Download a manifest entry into the cache (`<cacheDir>/reference-stats/<name>.npz`) with the same
 * machinery as the weights (models/download.ts: streamed to a temp file, hashed, renamed into place
 * only when the hash matches), and find it there next time.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { DiffevalError, isDiffevalError } from "../errors.js";
import { cacheDir, type Env } from "../models/cache.js";
import { downloadVerified, type ProgressCallback } from "../models/download.js";
import { sha256WithMemo, sidecarPath } from "../models/ensure-weights.js";
import type { ReferenceEntry } from "./manifest.js";

export interface FetchReferenceOptions {
  env?: Env;
  onProgress?: ProgressCallback;
  /** Download when the file is not cached (default true). */
  allowDownload?: boolean;
}

export interface FetchedReference {
  entry: ReferenceEntry;
  path: string;
  /** sha256 of the file on disk. */
  sha256: string;
  /** True when the sha256 was checked against the manifest; false for entries without a published hash. */
  verified: boolean;
  source: "cache" | "download";
}

/** `<cacheDir>/reference-stats/<name>.npz`: a copy downloaded by hand fits there too. */
export function referenceCachePath(entry: Pick<ReferenceEntry, "name">, env: Env = process.env): string {
  return path.join(cacheDir(env), "reference-stats", `${entry.name}.npz`);
}

export async function fetchReference(entry: ReferenceEntry, opts: FetchReferenceOptions = {}): Promise<FetchedReference> {
  const env = opts.env ?? process.env;
  const dest = referenceCachePath(entry, env);
  const cached = await cachedReference(entry, dest, opts.allowDownload ?? true);
  if (cached) return cached;
  if (opts.allowDownload === false) {
    throw new DiffevalError(
      "E_REFERENCE_MISSING",
      `reference statistics '${entry.name}' are not in the cache (${dest}) and downloading is disabled; ` +
        `download ${entry.url} and save it as ${dest}`,
    );
  }
  return downloadReference(entry, dest, opts.onProgress);
}

/** The cached copy, when present and (for entries with a hash) matching; undefined when it must be downloaded. */
async function cachedReference(entry: ReferenceEntry, file: string, allowDownload: boolean): Promise<FetchedReference | undefined> {
  if (!existsSync(file)) return undefined;
  const sha256 = await sha256WithMemo(file, sidecarPath(file));
  if (entry.sha256 === null) return { entry, path: file, sha256, verified: false, source: "cache" };
  if (sha256 === entry.sha256) return { entry, path: file, sha256, verified: true, source: "cache" };
  if (allowDownload) return undefined; // the verified download replaces it atomically
  throw new DiffevalError(
    "E_REFERENCE_SHA256",
    `the cached reference statistics ${file} have sha256 ${sha256}, expected ${entry.sha256}; delete the file and fetch it again`,
  );
}

async function downloadReference(entry: ReferenceEntry, dest: string, onProgress: ProgressCallback | undefined): Promise<FetchedReference> {
  try {
    const { sha256 } = await downloadVerified({
      url: entry.url,
      dest,
      sha256: entry.sha256 ?? undefined,
      unverified: entry.sha256 === null,
      onProgress,
      manualHint: `or pass the path of a copy you already have instead of the name '${entry.name}'.`,
    });
    return { entry, path: dest, sha256, verified: entry.sha256 !== null, source: "download" };
  } catch (e) {
    // download.ts names hash failures after the weights it was first written for.
    if (isDiffevalError(e, "E_WEIGHTS_SHA256")) throw new DiffevalError("E_REFERENCE_SHA256", e.message, { cause: e });
    throw e;
  }
}

/** One line for the user: where the file is and whether its hash was checked. */
export function describeFetched(f: FetchedReference): string {
  const how = f.source === "cache" ? "cached" : "downloaded";
  if (f.verified) return `${f.entry.name}: ${how} ${f.path} (sha256 ${f.sha256}, verified)`;
  return (
    `${f.entry.name}: ${how} ${f.path} (unverified: no published sha256 to check against; ` +
    `this copy's sha256 is ${f.sha256})`
  );
}
