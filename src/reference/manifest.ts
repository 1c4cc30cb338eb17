/**
 * The library of published reference statistics: `reference-stats/manifest.json` at the package
 * root (or the file named by `$DIFFEVAL_REFERENCE_MANIFEST`), one entry per statistics file the
 * tool knows by name. An entry says what the file is (dataset, split, resolution, n), how it was
 * computed (protocol, and the diffeval weights that reproduce the publisher's network), where it
 * lives, its sha256 when one could be confirmed, and the array keys that hold the statistics.
 *
 * Honesty rule: a sha256 is written only when it was confirmed from a public source. Otherwise the
 * entry says `"sha256": null, "unverified": true`, and fetching it reports "unverified" with the
 * hash of the copy actually downloaded, so the user can pin it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import type { Env } from "../models/cache.js";
import { getWeightsEntry, knownWeightsIds } from "../models/registry.js";
import { isProtocolName, type ProtocolName } from "../preprocess/protocols.js";

/** `mu-sigma`: pytorch-fid / TTUR / clean-fid files. `adm-reference-batch`: guided-diffusion's, with images too. */
export type ReferenceFormat = "mu-sigma" | "adm-reference-batch";

export interface ReferenceKeys {
  mu: string;
  sigma: string;
  /** sFID statistics (guided-diffusion reference batches). */
  mu_s?: string;
  sigma_s?: string;
  /** Raw uint8 NHWC images (guided-diffusion reference batches); never read for the statistics. */
  images?: string;
}

export interface ReferenceEntry {
  name: string;
  /** Other names that resolve to this entry (e.g. "cifar10"). */
  aliases: string[];
  dataset: string;
  split: string;
  /** Image side in pixels, null when the publisher does not say. */
  resolution: number | null;
  protocol: ProtocolName;
  /** Registry id of the weights that reproduce the publisher's network (its sha256 goes into meta). */
  weights: string | null;
  /** Number of images the statistics were computed from, null when the publisher does not say. */
  n: number | null;
  publisher: string;
  url: string;
  /** Full hex sha256 of the file, or null when no published hash could be confirmed. */
  sha256: string | null;
  /** True exactly when sha256 is null: downloads are reported as unverified. */
  unverified: boolean;
  format: ReferenceFormat;
  keys: ReferenceKeys;
  /** Where the facts of this entry were confirmed (URLs of the publisher's pages or code). */
  confirmed: string;
  notes?: string;
}

export interface ReferenceManifest {
  file: string;
  entries: ReferenceEntry[];
}

/** `$DIFFEVAL_REFERENCE_MANIFEST`, else the manifest shipped at `<package root>/reference-stats/`. */
export function manifestPath(env: Env = process.env): string {
  if (env.DIFFEVAL_REFERENCE_MANIFEST) return path.resolve(env.DIFFEVAL_REFERENCE_MANIFEST);
  // src/reference/ and dist/reference/ are both two levels below the package root.
  return fileURLToPath(new URL("../../reference-stats/manifest.json", import.meta.url));
}

export function loadManifest(file: string = manifestPath()): ReferenceManifest {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new DiffevalError(
      "E_MANIFEST",
      `cannot read the reference statistics manifest ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
        `check $DIFFEVAL_REFERENCE_MANIFEST or reinstall diffeval`,
    );
  }
  const json = parseJsonText(text, file, "E_MANIFEST", "the reference statistics manifest");
  return parseManifest(json, file);
}

/** Validates a parsed manifest: every field checked, names and aliases unique. */
export function parseManifest(json: unknown, file: string): ReferenceManifest {
  const root = asObject(json, `${file}: the manifest`);
  if (!Array.isArray(root.entries)) throw new DiffevalError("E_MANIFEST", `${file}: expected an "entries" array`);
  const entries = root.entries.map((e, i) => parseEntry(e, `${file}: entry ${i}`));
  const seen = new Map<string, string>();
  for (const entry of entries) {
    for (const name of [entry.name, ...entry.aliases]) {
      const other = seen.get(name);
      if (other !== undefined) {
        throw new DiffevalError("E_MANIFEST", `${file}: the name '${name}' is used by both '${other}' and '${entry.name}'`);
      }
      seen.set(name, entry.name);
    }
  }
  return { file, entries };
}

/** The entry called `name` (or aliased so), if any. */
export function findReference(manifest: ReferenceManifest, name: string): ReferenceEntry | undefined {
  return manifest.entries.find((e) => e.name === name || e.aliases.includes(name));
}

export function getReference(manifest: ReferenceManifest, name: string): ReferenceEntry {
  const entry = findReference(manifest, name);
  if (entry) return entry;
  const names = manifest.entries.map((e) => e.name);
  const near = names.filter((n) => n.includes(name) || name.includes(n));
  const hint = near.length ? `did you mean ${near.slice(0, 5).join(", ")}? ` : "";
  throw new DiffevalError(
    "E_REFERENCE_UNKNOWN",
    `no reference statistics called '${name}' in ${manifest.file}; ${hint}run 'diffeval stats list' for the known names`,
  );
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;

function parseEntry(raw: unknown, where: string): ReferenceEntry {
  const o = asObject(raw, where);
  const name = str(o, "name", where);
  if (!NAME_RE.test(name)) throw fieldError(where, "name", "lower-case letters, digits, '.', '_' and '-' only");
  const at = `${where} ('${excerpt(name)}')`;
  const aliases = o.aliases === undefined ? [] : strArray(o, "aliases", at);
  for (const a of aliases) if (!NAME_RE.test(a)) throw fieldError(at, "aliases", `'${excerpt(a)}' is not a valid name`);
  const protocol = str(o, "protocol", at);
  if (!isProtocolName(protocol)) throw fieldError(at, "protocol", `'${excerpt(protocol)}' is not one of clean, legacy-pytorch, legacy-tensorflow`);
  const weights = o.weights === undefined || o.weights === null ? null : str(o, "weights", at);
  if (weights !== null && !knownWeightsIds().includes(weights)) {
    throw fieldError(at, "weights", `'${excerpt(weights)}' is not a known weights id (${knownWeightsIds().join(", ")})`);
  }
  const url = str(o, "url", at);
  if (!/^https?:\/\//.test(url)) throw fieldError(at, "url", "must be an http(s) URL");
  const { sha256, unverified } = hashFields(o, at);
  const format = str(o, "format", at);
  if (format !== "mu-sigma" && format !== "adm-reference-batch") throw fieldError(at, "format", "mu-sigma or adm-reference-batch");
  return {
    name,
    aliases,
    dataset: str(o, "dataset", at),
    split: str(o, "split", at),
    resolution: positiveIntOrNull(o, "resolution", at),
    protocol,
    weights,
    n: positiveIntOrNull(o, "n", at),
    publisher: str(o, "publisher", at),
    url,
    sha256,
    unverified,
    format,
    keys: parseKeys(o.keys, at),
    confirmed: str(o, "confirmed", at),
    ...(o.notes === undefined ? {} : { notes: str(o, "notes", at) }),
  };
}

/** Either a full sha256, or null together with `"unverified": true`; never a guess in between. */
function hashFields(o: Record<string, unknown>, at: string): { sha256: string | null; unverified: boolean } {
  if (o.sha256 === null) {
    if (o.unverified !== true) throw fieldError(at, "unverified", 'must be true when "sha256" is null');
    return { sha256: null, unverified: true };
  }
  const sha256 = str(o, "sha256", at).toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw fieldError(at, "sha256", "must be 64 hex digits, or null with \"unverified\": true");
  if (o.unverified !== undefined && o.unverified !== false) throw fieldError(at, "unverified", "must be absent or false when a sha256 is given");
  return { sha256, unverified: false };
}

function parseKeys(raw: unknown, at: string): ReferenceKeys {
  const o = asObject(raw, `${at}: "keys"`);
  const keys: ReferenceKeys = { mu: str(o, "mu", `${at}: keys`), sigma: str(o, "sigma", `${at}: keys`) };
  for (const k of ["mu_s", "sigma_s", "images"] as const) if (o[k] !== undefined) keys[k] = str(o, k, `${at}: keys`);
  return keys;
}

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new DiffevalError("E_MANIFEST", `${where}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string" || v === "") throw fieldError(where, key, "must be a non-empty string");
  return v;
}

function strArray(o: Record<string, unknown>, key: string, where: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw fieldError(where, key, "must be an array of strings");
  return v as string[];
}

function positiveIntOrNull(o: Record<string, unknown>, key: string, where: string): number | null {
  const v = o[key];
  if (v === null) return null;
  // Safe integers only: 1e300 is an integer to Number.isInteger, but no count of images.
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw fieldError(where, key, "must be a positive integer (below 2^53) or null");
  return v;
}

/** A manifest string as quoted in a message: its first 80 characters. */
function excerpt(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function fieldError(where: string, key: string, what: string): DiffevalError {
  return new DiffevalError("E_MANIFEST", `${where}: field "${key}" ${what.startsWith("must") ? what : `must be ${what}`}`);
}

/** The sha256 recorded as the weights of statistics from this entry (undefined: take the file's own meta). */
export function referenceWeightsSha256(entry: ReferenceEntry): string | undefined {
  return entry.weights === null ? undefined : getWeightsEntry(entry.weights).sha256;
}
