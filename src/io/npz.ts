/**
 * numpy's .npz format: a plain zip archive with one `<key>.npy` entry per array, stored
 * (`np.savez`) or deflated (`np.savez_compressed`). See numpy.lib.npyio.savez and
 * numpy.lib.format. Statistics files are the npz that pytorch-fid's `--save-stats` writes:
 * `mu` (d,) and `sigma` (d, d), read by `np.load(path)['mu']`, `['sigma']`.
 */
import { zipSync, type Zippable } from "fflate";
import { DiffevalError, isDiffevalError } from "../errors.js";
import type { Gaussian } from "../types.js";
import { MAX_NPY_PREAMBLE_BYTES, readNpy, readNpyHeader, writeNpy, type NpyArray } from "./npy.js";
import { zipFromBytes, type ZipEntryInfo } from "./zip.js";
import { parseJsonText } from "./read-json.js";

/**
 * Reads every array of an .npz buffer, keyed like np.load (entry name without `.npy`).
 * `name` (a file path) is used in error messages. Object arrays are refused with E_NPZ_PICKLE
 * (by readNpy): diffeval never unpickles.
 */
export function readNpz(buf: Uint8Array, name: string): Map<string, NpyArray> {
  const arrays = new Map<string, NpyArray>();
  try {
    const zip = zipFromBytes(buf, name);
    for (const entry of zip.entries) {
      if (entry.name.endsWith("/")) continue; // a directory record, never written by numpy
      const where = `${name}[${arrayKey(entry.name)}]`;
      assertEntryFitsHeader(zip.head(entry, MAX_NPY_PREAMBLE_BYTES), entry, where);
      arrays.set(arrayKey(entry.name), readNpy(zip.read(entry), where));
    }
  } catch (e) {
    throw npzError(e);
  }
  return arrays;
}

/** np.load's key for an entry: the entry name without its `.npy`. */
export function arrayKey(entry: string): string {
  return entry.endsWith(".npy") ? entry.slice(0, -4) : entry;
}

/**
 * An npz entry must hold exactly the .npy its header describes (np.savez writes nothing else): its
 * declared size is checked against the header's promise (header + shape x itemsize) from the
 * entry's first bytes, before the entry is read or inflated, so no entry gets memory its header
 * does not account for (and zip.ts already bounds the declared size by the compressed bytes).
 */
export function assertEntryFitsHeader(head: Uint8Array, entry: ZipEntryInfo, where: string): void {
  const h = readNpyHeader(head, where);
  const promised = h.dataStart + h.dataBytes;
  if (promised !== entry.size) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${where}: the .npz entry holds ${entry.size} bytes but its .npy header promises ${promised} (${h.dtype}, shape (${h.shape.join(", ")})); the file is damaged`,
    );
  }
}

/** A zip-level failure reworded for an .npz (other errors pass through). */
export function npzError(e: unknown): unknown {
  if (!isDiffevalError(e, "E_NPZ_FORMAT")) return e;
  return new DiffevalError(
    "E_NPZ_FORMAT",
    `${e.message.replace("not a readable zip archive", "not a readable .npz (zip) archive")}. Write statistics with np.savez or 'diffeval stats'.`,
    { cause: e },
  );
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
  if (d === 0) throw new DiffevalError("E_FEATURE_DIM", `${name}: mu and sigma are empty (dimension 0); recompute the statistics`);
  const meta = readMeta(arrays.get("meta"), name);
  const n = meta?.n ?? 0;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new DiffevalError("E_STATS_FORMAT", `${name}: meta.n must be a non-negative integer (the sample count), got ${JSON.stringify(n)}`);
  }
  const sigmaValues = finiteFloat64(sigma, `${name}[${keys.sigma}]`);
  assertSymmetric(sigmaValues, d, `${name}[${keys.sigma}]`);
  const gaussian: Gaussian = { n, mu: finiteFloat64(mu, `${name}[${keys.mu}]`), sigma: sigmaValues };
  return meta === undefined ? { gaussian } : { gaussian, meta };
}

/**
 * Relative tolerance of the symmetry check. A covariance is symmetric by construction: numpy's
 * np.cov (pytorch-fid, clean-fid) computes X^T X with a symmetric BLAS product and our
 * accumulator mirrors its triangle, so their files are exactly symmetric, and a float32 round
 * trip keeps that (each pair of entries rounds alike). 1e-6 of the largest entry still lets
 * through a matrix another tool summed in a different order.
 */
export const SIGMA_SYMMETRY_TOLERANCE = 1e-6;

/**
 * Refuses a sigma that is not a covariance: FID's matrix square root (and every formula built on
 * it) assumes a symmetric matrix and gives a meaningless number for any other.
 */
function assertSymmetric(sigma: Float64Array, d: number, name: string): void {
  // One pass over both triangles, in 32 x 32 tiles (a plain walk down the columns misses the
  // cache at every step; d = 2048 is 32 MB), tracking the largest entry and the largest gap.
  const tile = 32;
  let scale = 0;
  let worst = { gap: 0, i: 0, j: 0 };
  for (let i0 = 0; i0 < d; i0 += tile) {
    for (let j0 = i0; j0 < d; j0 += tile) {
      const i1 = Math.min(d, i0 + tile);
      const j1 = Math.min(d, j0 + tile);
      for (let i = i0; i < i1; i++) {
        for (let j = Math.max(j0, i); j < j1; j++) {
          const upper = sigma[i * d + j];
          const lower = sigma[j * d + i];
          scale = Math.max(scale, Math.abs(upper), Math.abs(lower));
          const gap = Math.abs(upper - lower);
          if (gap > worst.gap) worst = { gap, i, j };
        }
      }
    }
  }
  if (worst.gap > SIGMA_SYMMETRY_TOLERANCE * scale) throw asymmetric(name, worst.i, worst.j, worst.gap, scale);
}

function asymmetric(name: string, i: number, j: number, gap: number, scale: number): DiffevalError {
  return new DiffevalError(
    "E_STATS_FORMAT",
    `${name}: sigma is not symmetric (entries [${i}, ${j}] and [${j}, ${i}] differ by ${gap.toPrecision(3)}, ` +
      `over ${SIGMA_SYMMETRY_TOLERANCE} of its largest entry ${scale.toPrecision(3)}), so it is no covariance matrix; recompute the statistics`,
  );
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
    parsed = parseJsonText(new TextDecoder("utf-8", { fatal: true }).decode(arr.data as Uint8Array), "meta", "E_STATS_FORMAT", "a JSON object");
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
