/**
 * A manifest name -> the Gaussian it stands for, with the meta every comparison checks: the
 * entry's protocol (so `fid --real NAME` refuses images under another protocol, as for any stats
 * file) and the sha256 of the weights that reproduce the publisher's network.
 */
import { DiffevalError } from "../errors.js";
import { readStatsFile } from "../io/npz-file.js";
import type { Gaussian } from "../types.js";
import { describeFetched, fetchReference, type FetchReferenceOptions, type FetchedReference } from "./fetch.js";
import { getReference, loadManifest, manifestPath, referenceWeightsSha256, type ReferenceEntry } from "./manifest.js";

export interface LoadReferenceOptions extends FetchReferenceOptions {
  /** Notices (download, unverified file) for stderr. */
  log?: (line: string) => void;
}

export interface LoadedReference {
  entry: ReferenceEntry;
  fetched: FetchedReference;
  gaussian: Gaussian;
  meta: Record<string, unknown>;
}

/** Fetches (when not cached) and reads the statistics of manifest entry `name`; only the statistics arrays are read. */
export async function loadReference(name: string, opts: LoadReferenceOptions = {}): Promise<LoadedReference> {
  const entry = getReference(loadManifest(manifestPath(opts.env)), name);
  if (opts.log) opts.log(`reference ${entry.name}: ${entry.publisher}, ${entry.dataset} ${entry.split}, protocol ${entry.protocol}`);
  const fetched = await fetchReference(entry, opts);
  if (opts.log && (fetched.source === "download" || !fetched.verified)) opts.log(describeFetched(fetched));
  const stats = await readStatsFile(fetched.path, entry.keys);
  const meta = referenceMeta(entry, fetched, stats.meta);
  const gaussian = { ...stats.gaussian, n: typeof meta.n === "number" ? meta.n : 0 };
  return { entry, fetched, gaussian, meta };
}

/**
 * The entry's protocol and weights over the file's own meta (ours carry one; published files do
 * not). A file whose meta contradicts its manifest entry is refused: one of them is wrong.
 */
export function referenceMeta(
  entry: ReferenceEntry,
  fetched: Pick<FetchedReference, "sha256" | "verified" | "path">,
  fileMeta: Record<string, unknown> = {},
): Record<string, unknown> {
  const weights = referenceWeightsSha256(entry) ?? fileMeta.weights_sha256;
  for (const [key, want] of [["protocol", entry.protocol], ["weights_sha256", weights]] as const) {
    const have = fileMeta[key];
    if (have !== undefined && want !== undefined && have !== want) {
      throw new DiffevalError(
        "E_REFERENCE_MISMATCH",
        `${fetched.path} records ${key} ${String(have)}, but the manifest entry '${entry.name}' says ${String(want)}; ` +
          `fix the manifest entry or the file`,
      );
    }
  }
  const n = entry.n ?? fileMeta.n;
  return {
    ...fileMeta,
    protocol: entry.protocol,
    ...(weights === undefined ? {} : { weights_sha256: weights }),
    ...(typeof n === "number" ? { n } : {}),
    source: `reference:${entry.name}`,
    reference: { name: entry.name, url: entry.url, sha256: fetched.sha256, verified: fetched.verified, publisher: entry.publisher },
  };
}
