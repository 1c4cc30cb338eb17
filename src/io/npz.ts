/**
 * numpy's .npz format: a plain zip archive with one `<key>.npy` entry per array, stored
 * (`np.savez`) or deflated (`np.savez_compressed`). See numpy.lib.npyio.savez and
 * numpy.lib.format. Statistics files are the npz that pytorch-fid's `--save-stats` writes:
 * `mu` (d,) and `sigma` (d, d), read by `np.load(path)['mu']`, `['sigma']`.
 */
import { unzipSync, zipSync, type Zippable } from "fflate";
import { DiffevalError } from "../errors.js";
import type { Gaussian } from "../types.js";
import { readNpy, writeNpy, type NpyArray } from "./npy.js";

/**
 * Reads every array of an .npz buffer, keyed like np.load (entry name without `.npy`).
 * `name` (a file path) is used in error messages. Object arrays are refused with E_NPZ_PICKLE
 * (by readNpy): diffeval never unpickles.
 */
export function readNpz(buf: Uint8Array, name: string): Map<string, NpyArray> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(buf);
  } catch (e) {
    throw new DiffevalError(
      "E_NPZ_FORMAT",
      `${name}: not a readable .npz (zip) archive: ${(e as Error).message}. Write statistics with np.savez or 'diffeval stats'.`,
      { cause: e },
    );
  }
  const arrays = new Map<string, NpyArray>();
  for (const [entry, bytes] of Object.entries(entries)) {
    if (entry.endsWith("/")) continue; // a directory record, never written by numpy
    const key = entry.endsWith(".npy") ? entry.slice(0, -4) : entry;
    arrays.set(key, readNpy(bytes, `${name}[${key}]`));
  }
  return arrays;
}

/**
 * Writes arrays as an .npz archive that np.load reads: entries `<key>.npy` (format 1.0),
 * stored like np.savez, or deflated like np.savez_compressed when `compress` is set.
 */
export function writeNpz(arrays: Record<string, NpyArray>, opts: { compress?: boolean } = {}): Uint8Array {
  const files: Zippable = {};
  for (const [key, arr] of Object.entries(arrays)) {
    files[`${key}.npy`] = [writeNpy(arr), { level: opts.compress ? 6 : 0 }];
  }
  // A fixed timestamp keeps the output byte-identical for identical arrays (content hashing).
  return zipSync(files, { mtime: new Date(1980, 0, 1) });
}

export interface StatsFile {
  gaussian: Gaussian;
  /** The optional `meta` entry: UTF-8 JSON written by writeStatsNpz (protocol, weights, n, version). */
  meta?: Record<string, unknown>;
}

/**
 * Reads a statistics file: `mu` (d,) and `sigma` (d, d), float32 or float64 (returned as
 * float64), plus an optional `meta` uint8 entry holding UTF-8 JSON. `gaussian.n` comes from
 * meta.n when present and is 0 (unknown) otherwise: pytorch-fid and clean-fid files do not
 * record the sample count.
 */
export function readStatsNpz(buf: Uint8Array, name: string): StatsFile {
  return statsFromArrays(readNpz(buf, name), name);
}

/** Which arrays of an npz hold the statistics (guided-diffusion's reference batches also have `mu_s`/`sigma_s`). */
export interface StatsKeys {
  mu: string;
  sigma: string;
}

export const DEFAULT_STATS_KEYS: StatsKeys = { mu: "mu", sigma: "sigma" };

/**
 * The statistics among already-read arrays (see readStatsNpz). `allKeys` lists every array of the
 * file for the error message when the wanted ones are missing (default: the keys of `arrays`).
 */
export function statsFromArrays(
  arrays: Map<string, NpyArray>,
  name: string,
  keys: StatsKeys = DEFAULT_STATS_KEYS,
  allKeys: string[] = [...arrays.keys()],
): StatsFile {
  const mu = arrays.get(keys.mu);
  const sigma = arrays.get(keys.sigma);
  if (mu === undefined || sigma === undefined) {
    const found = allKeys.map((k) => `'${k}'`).join(", ") || "none";
    throw new DiffevalError(
      "E_STATS_FORMAT",
      `${name}: a statistics file needs arrays '${keys.mu}' and '${keys.sigma}' (as pytorch-fid's --save-stats writes); found ${found}`,
    );
  }
  const d = mu.shape[0];
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new DiffevalError(
      "E_FEATURE_DIM",
      `${name}: mu has shape (${mu.shape.join(", ")}) and sigma (${sigma.shape.join(", ")}); expected mu (d,) and sigma (d, d)`,
    );
  }
  const meta = readMeta(arrays.get("meta"), name);
  const gaussian: Gaussian = {
    n: typeof meta?.n === "number" ? meta.n : 0,
    mu: finiteFloat64(mu, `${name}[${keys.mu}]`),
    sigma: finiteFloat64(sigma, `${name}[${keys.sigma}]`),
  };
  return meta === undefined ? { gaussian } : { gaussian, meta };
}

/**
 * Writes a statistics file: mu and sigma as float64 (what np.load(path)['mu'] / ['sigma'] in
 * pytorch-fid expects) and `meta` as UTF-8 JSON bytes in a uint8 array, with `n` from the
 * Gaussian unless meta already sets it. Stored, not deflated: covariances barely compress.
 */
export function writeStatsNpz(g: Gaussian, meta: Record<string, unknown>): Uint8Array {
  const d = g.mu.length;
  if (g.sigma.length !== d * d) {
    throw new DiffevalError("E_FEATURE_DIM", `writeStatsNpz: mu has ${d} values but sigma has ${g.sigma.length} (expected ${d * d})`);
  }
  const json = new TextEncoder().encode(JSON.stringify({ n: g.n, ...meta }));
  return writeNpz({
    mu: { dtype: "<f8", shape: [d], data: g.mu },
    sigma: { dtype: "<f8", shape: [d, d], data: g.sigma },
    meta: { dtype: "|u1", shape: [json.length], data: json },
  });
}

function readMeta(arr: NpyArray | undefined, name: string): Record<string, unknown> | undefined {
  if (arr === undefined) return undefined;
  let parsed: unknown;
  try {
    if (arr.dtype !== "|u1" || arr.shape.length !== 1) throw new Error(`dtype ${arr.dtype}, shape (${arr.shape.join(", ")})`);
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(arr.data as Uint8Array));
  } catch (e) {
    throw new DiffevalError(
      "E_STATS_FORMAT",
      `${name}: entry 'meta' must be UTF-8 JSON stored as a 1-D uint8 array (${(e as Error).message})`,
    );
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new DiffevalError("E_STATS_FORMAT", `${name}: entry 'meta' must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** The array as float64, refusing NaN/Inf (a statistics file with them gives no usable distance). */
function finiteFloat64(arr: NpyArray, name: string): Float64Array {
  if (arr.dtype === "|u1") {
    throw new DiffevalError("E_STATS_FORMAT", `${name}: expected float32 or float64 values, found uint8`);
  }
  const out = arr.data instanceof Float64Array ? arr.data : Float64Array.from(arr.data);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      throw new DiffevalError("E_NONFINITE", `${name}: value ${i} is ${out[i]}; the statistics are unusable, recompute them`);
    }
  }
  return out;
}
