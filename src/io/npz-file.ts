/**
 * Reading chosen arrays of an .npz file on disk without reading the rest: only the zip entries
 * asked for are read and inflated (zip.ts). A guided-diffusion reference batch keeps 10,000
 * images under `arr_0` next to `mu`, `sigma`, `mu_s`, `sigma_s` (evaluations/evaluator.py,
 * `read_statistics`); its statistics come out of here without `arr_0` being touched.
 */
import { DiffevalError, isDiffevalError } from "../errors.js";
import { readNpy, type NpyArray } from "./npy.js";
import { DEFAULT_STATS_KEYS, statsFromArrays, type StatsFile, type StatsKeys } from "./npz.js";
import { readZipEntries } from "./zip.js";

export interface NpzArrays {
  /** Every array key in the file (entry names without `.npy`), read or not. */
  keys: string[];
  arrays: Map<string, NpyArray>;
}

/** The arrays named by `keys` (absent ones are simply missing from the map); nothing else is read. */
export async function readNpzArrays(file: string, keys: readonly string[]): Promise<NpzArrays> {
  const wanted = new Set(keys);
  let entries: Awaited<ReturnType<typeof readZipEntries>>;
  try {
    entries = await readZipEntries(file, (entry) => wanted.has(arrayKey(entry)));
  } catch (e) {
    if (!isDiffevalError(e, "E_NPZ_FORMAT")) throw e;
    throw new DiffevalError(
      "E_NPZ_FORMAT",
      `${e.message.replace("not a readable zip archive", "not a readable .npz (zip) archive")}. Write statistics with np.savez or 'diffeval stats'.`,
      { cause: e },
    );
  }
  const arrays = new Map<string, NpyArray>();
  for (const [entry, bytes] of entries.data) arrays.set(arrayKey(entry), readNpy(bytes, `${file}[${arrayKey(entry)}]`));
  return { keys: entries.names.filter((n) => !n.endsWith("/")).map(arrayKey), arrays };
}

/**
 * A statistics file's Gaussian and `meta`, reading only the statistics entries (and `meta`):
 * works on pytorch-fid/clean-fid/TTUR files, ours, and guided-diffusion reference batches.
 */
export async function readStatsFile(file: string, keys: StatsKeys = DEFAULT_STATS_KEYS): Promise<StatsFile> {
  const { keys: all, arrays } = await readNpzArrays(file, [keys.mu, keys.sigma, "meta"]);
  return statsFromArrays(arrays, file, keys, all);
}

/** np.load's key for an entry: the entry name without its `.npy`. */
function arrayKey(entry: string): string {
  return entry.endsWith(".npy") ? entry.slice(0, -4) : entry;
}
