/**
 * Reading chosen arrays of an .npz file on disk without reading the rest: only the zip entries
 * asked for are read and inflated (zip.ts). A guided-diffusion reference batch keeps 10,000
 * images under `arr_0` next to `mu`, `sigma`, `mu_s`, `sigma_s` (evaluations/evaluator.py,
 * `read_statistics`); its statistics come out of here without `arr_0` being touched.
 */
import { MAX_NPY_PREAMBLE_BYTES, readNpy, type NpyArray } from "./npy.js";
import { arrayKey, assertEntryFitsHeader, DEFAULT_STATS_KEYS, npzError, statsFromArrays, type StatsFile, type StatsKeys } from "./npz.js";
import { openZip } from "./zip.js";

export interface NpzArrays {
  /** Every array key in the file (entry names without `.npy`), read or not. */
  keys: string[];
  arrays: Map<string, NpyArray>;
}

/**
 * The arrays named by `keys` (absent ones are simply missing from the map); nothing else is read.
 * Each entry's .npy header is checked against the entry's declared size before the entry is read
 * (npz.ts, assertEntryFitsHeader).
 */
export async function readNpzArrays(file: string, keys: readonly string[]): Promise<NpzArrays> {
  const wanted = new Set(keys);
  const arrays = new Map<string, NpyArray>();
  try {
    const zip = await openZip(file);
    try {
      for (const entry of zip.entries) {
        const key = arrayKey(entry.name);
        if (entry.name.endsWith("/") || !wanted.has(key)) continue;
        const where = `${file}[${key}]`;
        assertEntryFitsHeader(await zip.head(entry, MAX_NPY_PREAMBLE_BYTES), entry, where);
        arrays.set(key, readNpy(await zip.read(entry), where));
      }
      return { keys: zip.entries.filter((e) => !e.name.endsWith("/")).map((e) => arrayKey(e.name)), arrays };
    } finally {
      await zip.close();
    }
  } catch (e) {
    throw npzError(e);
  }
}

/**
 * A statistics file's Gaussian and `meta`, reading only the statistics entries (and `meta`):
 * works on pytorch-fid/clean-fid/TTUR files, ours, and guided-diffusion reference batches.
 */
export async function readStatsFile(file: string, keys: StatsKeys = DEFAULT_STATS_KEYS): Promise<StatsFile> {
  const { keys: all, arrays } = await readNpzArrays(file, [keys.mu, keys.sigma, "meta"]);
  return statsFromArrays(arrays, file, keys, all);
}
