/**
 * Features files: the per-image features `diffeval features` writes, read back as a source, so that
 * KID, precision/recall, density/coverage and the diversity metrics can be computed against a
 * reference without extracting its images again (statistics files keep only mu and sigma, which is
 * all pytorch-fid's and clean-fid's saved statistics hold).
 *
 * Two forms:
 * - `.npz` (np.savez's layout, npz.ts): `features` float32 (N, D) in row order; `files` the image
 *   names in row order, a UTF-8 JSON list stored as a 1-D uint8 array; `meta` UTF-8 JSON in a 1-D
 *   uint8 array as a statistics file's meta is stored, with `kind: "diffeval-features"`, `encoder`,
 *   `protocol`, `weights_sha256`, `n`, `d`, `tool_version`, `date`. Every entry is a plain numeric
 *   array, so `np.load(path)` reads it with its default allow_pickle=False
 *   (`json.loads(f["files"].tobytes())` gives the names). The names are JSON bytes rather than a
 *   numpy unicode array because `<U` arrays are fixed-width UTF-32 (every row padded to the longest
 *   name) and the stats files' meta already sets this convention.
 * - `feats.npy` with a `feats.json` sidecar (what `features --out x.npy` has always written): the
 *   sidecar holds `files` and the same meta fields; old sidecars have no `kind`.
 *
 * How a features file is told apart: an `.npz` by its `features` key (statistics have `mu` and
 * `sigma`, image arrays `arr_0`); a `.npy` by its sidecar. Every length read from the file is checked
 * against the bytes the entry holds before anything is allocated from it (npz.ts
 * assertEntryFitsHeader, zip.ts), and the JSON entries are bounded by the row count first.
 */
import { existsSync, statSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";
import { MAX_NPY_PREAMBLE_BYTES, readNpy, readNpyHeader, writeNpy, type NpyArray, type NpyHeader } from "./npy.js";
import { arrayKey, assertEntryFitsHeader, writeNpz } from "./npz.js";
import { isPlainObject, parseJsonText } from "./read-json.js";
import { openZip, zipFromBytes, type ZipEntryInfo } from "./zip.js";

/** `meta.kind` of a features file, as `diffeval-stats-shard` marks a shard part (shard-file.ts). */
export const FEATURES_FILE_KIND = "diffeval-features";

/** What a features file says about how its rows were made. */
export interface FeaturesFileMeta {
  kind: typeof FEATURES_FILE_KIND;
  /** The feature space (features/encoders.ts). */
  encoder: string;
  protocol: string;
  weights_sha256: string;
  n: number;
  d: number;
  [key: string]: unknown;
}

export interface FeaturesFile {
  features: FeatureMatrix;
  /** Image names, in row order. */
  names: string[];
  meta: FeaturesFileMeta;
}

/**
 * The most bytes the names list and meta may take for `n` rows: a path of PATH_MAX (4,096) bytes
 * JSON-escaped at worst a few times over, plus room for the meta's skipped-image list. Checked
 * before such an entry is read, so that a tiny file cannot make diffeval parse gigabytes of JSON.
 */
export function maxListingBytes(n: number): number {
  return 64 * 2 ** 20 + n * 16 * 2 ** 10;
}

/**
 * An `.npz` features file as `diffeval features --out x.npz` writes it: features, names and meta
 * (`kind`, `n` and `d` are filled in here). Stored, not deflated: float features barely compress.
 */
export function writeFeaturesNpz(features: FeatureMatrix, names: readonly string[], meta: Record<string, unknown>): Uint8Array {
  if (names.length !== features.n || features.data.length !== features.n * features.d) {
    throw new DiffevalError("E_INTERNAL", `writeFeaturesNpz: ${features.n} x ${features.d} features, ${features.data.length} values and ${names.length} names`);
  }
  const json = (v: unknown) => {
    const bytes = new TextEncoder().encode(JSON.stringify(v));
    return { dtype: "|u1" as const, shape: [bytes.length], data: bytes };
  };
  return writeNpz({
    features: { dtype: "<f4", shape: [features.n, features.d], data: features.data },
    files: json(names),
    meta: json({ ...meta, kind: FEATURES_FILE_KIND, n: features.n, d: features.d }),
  });
}

/** The `.json` sidecar `features --out x.npy` writes next to x.npy. */
export function featuresSidecarPath(npy: string): string {
  return npy.replace(/\.npy$/i, ".json");
}

/**
 * A features `.npz` held in memory (the function a fuzz target calls on raw bytes). `name` names it
 * in errors. Throws only DiffevalErrors.
 */
export async function readFeaturesNpz(bytes: Uint8Array, name: string): Promise<FeaturesFile> {
  return featuresFromZip(zipFromBytes(bytes, name), name);
}

/** A features `.npz` on disk, reading only its `features`, `files` and `meta` entries. */
export async function readFeaturesFile(file: string): Promise<FeaturesFile> {
  const zip = await openZip(file);
  try {
    return await featuresFromZip(zip, file);
  } finally {
    await zip.close();
  }
}

/**
 * `spec` read as a features file when it is one: an `.npz` with a `features` array, or a `.npy`
 * with a features sidecar (`.json` listing the files); undefined for anything else (a statistics
 * file, an image array, a folder), which other readers take.
 */
export async function readFeaturesSource(spec: string): Promise<FeaturesFile | undefined> {
  if (!existsSync(spec) || !statSync(spec).isFile()) return undefined;
  if (/\.npz$/i.test(spec)) return (await npzHasFeatures(spec)) ? readFeaturesFile(spec) : undefined;
  if (/\.npy$/i.test(spec)) return readFeaturesNpyPair(spec);
  return undefined;
}

/** Whether an `.npz` holds a `features` array (an unreadable archive is left to the other readers to report). */
async function npzHasFeatures(file: string): Promise<boolean> {
  try {
    const zip = await openZip(file);
    await zip.close();
    return zip.entries.some((e) => arrayKey(e.name) === "features");
  } catch {
    return false;
  }
}

/** What featuresFromZip needs of zip.ts's readers, on disk (async) or in memory (sync). */
interface ZipEntries {
  entries: ZipEntryInfo[];
  head(entry: ZipEntryInfo, length: number): Uint8Array | Promise<Uint8Array>;
  read(entry: ZipEntryInfo): Uint8Array | Promise<Uint8Array>;
}

async function featuresFromZip(zip: ZipEntries, name: string): Promise<FeaturesFile> {
  const byKey = new Map<string, ZipEntryInfo>();
  for (const e of zip.entries) if (!e.name.endsWith("/") && !byKey.has(arrayKey(e.name))) byKey.set(arrayKey(e.name), e);
  const [features, files, meta] = (["features", "files", "meta"] as const).map((k) => byKey.get(k));
  if (!features || !files || !meta) {
    const found = [...byKey.keys()].map((k) => `'${k}'`).join(", ") || "none";
    throw new DiffevalError(
      "E_FEATURES_FORMAT",
      `${name}: a features file needs arrays 'features', 'files' and 'meta' (as 'diffeval features --out x.npz' writes); found ${found}`,
    );
  }
  // The features header first: its row count bounds the JSON entries before they are read.
  const where = `${name}[features]`;
  const head = await zip.head(features, MAX_NPY_PREAMBLE_BYTES);
  assertEntryFitsHeader(head, features, where);
  const n = featuresHeaderRows(readNpyHeader(head, where), where);
  const jsonOf = async (entry: ZipEntryInfo, key: string) => {
    const at = `${name}[${key}]`;
    assertListingSize(entry.size, n, at);
    assertEntryFitsHeader(await zip.head(entry, MAX_NPY_PREAMBLE_BYTES), entry, at);
    return jsonArray(readNpy(await zip.read(entry), at), at);
  };
  const metaValue = await jsonOf(meta, "meta");
  const names = await jsonOf(files, "files");
  const values = readNpy(await zip.read(features), where);
  return checkedFeaturesFile(values, names, metaValue, { name, metaWhere: `${name}[meta]`, namesWhere: `${name}[files]`, requireKind: true });
}

/**
 * A `.npy` of features with its `.json` sidecar; undefined when there is no sidecar, or the sidecar
 * does not list files (then the `.npy` is not a features file, and other readers take it).
 */
export async function readFeaturesNpyPair(npy: string): Promise<FeaturesFile | undefined> {
  const sidecar = featuresSidecarPath(npy);
  if (!existsSync(sidecar) || !statSync(sidecar).isFile()) return undefined;
  const header = await npyFileHeader(npy);
  const n = header.shape.length > 0 ? header.shape[0] : 0;
  assertListingSize(statSync(sidecar).size, n, sidecar);
  const listing = parseJsonText(await readFile(sidecar, "utf8"), sidecar, "E_FEATURES_FORMAT", "the JSON sidecar 'diffeval features --out x.npy' writes");
  if (!isPlainObject(listing) || !("files" in listing)) return undefined;
  featuresHeaderRows(header, npy);
  const values = readNpy(await readFile(npy), npy);
  const { files, ...meta } = listing;
  return checkedFeaturesFile(values, files, meta, { name: npy, metaWhere: sidecar, namesWhere: `${sidecar} (the file list of ${npy})`, requireKind: false });
}

/** The header of a `.npy` file, which must hold exactly the bytes its header promises (np.save writes nothing else). */
async function npyFileHeader(file: string): Promise<NpyHeader> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const head = new Uint8Array(Math.min(size, MAX_NPY_PREAMBLE_BYTES));
    await fh.read(head, 0, head.length, 0);
    const h = readNpyHeader(head, file);
    if (h.dataStart + h.dataBytes !== size) {
      throw new DiffevalError(
        "E_NPY_FORMAT",
        `${file}: the file holds ${size} bytes but its .npy header promises ${h.dataStart + h.dataBytes} (${h.dtype}, shape (${h.shape.join(", ")})); the file is damaged`,
      );
    }
    return h;
  } finally {
    await fh.close();
  }
}

/** The row count of a features array's header, refusing anything but float32 (N, D) with D > 0. */
function featuresHeaderRows(h: Pick<NpyHeader, "dtype" | "shape">, where: string): number {
  if (h.dtype !== "<f4") {
    throw new DiffevalError("E_FEATURES_FORMAT", `${where}: features must be float32 ('<f4'), found '${h.dtype}'; write them with 'diffeval features'`);
  }
  if (h.shape.length !== 2) {
    throw new DiffevalError("E_FEATURES_FORMAT", `${where}: features must be a 2-D (N, D) array, found shape (${h.shape.join(", ")})`);
  }
  if (h.shape[1] === 0) throw new DiffevalError("E_FEATURE_DIM", `${where}: the features have dimension 0`);
  return h.shape[0];
}

function assertListingSize(bytes: number, n: number, where: string): void {
  if (bytes > maxListingBytes(n)) {
    throw new DiffevalError(
      "E_FEATURES_FORMAT",
      `${where}: ${bytes} bytes of names and metadata for ${n} feature rows is more than any features file holds (at most ${maxListingBytes(n)}); the file is damaged`,
    );
  }
}

/** The UTF-8 JSON held by a 1-D uint8 array (how `files` and `meta` are stored). */
function jsonArray(arr: NpyArray, where: string): unknown {
  if (arr.dtype !== "|u1" || arr.shape.length !== 1) {
    throw new DiffevalError("E_FEATURES_FORMAT", `${where}: must be UTF-8 JSON stored as a 1-D uint8 array, found ${arr.dtype} of shape (${arr.shape.join(", ")})`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(arr.data as Uint8Array);
  } catch {
    throw new DiffevalError("E_FEATURES_FORMAT", `${where}: is not valid UTF-8; write the file with 'diffeval features'`);
  }
  return parseJsonText(text, where, "E_FEATURES_FORMAT", "UTF-8 JSON as 'diffeval features' writes it");
}

interface Where {
  /** The file, in errors about the rows. */
  name: string;
  metaWhere: string;
  namesWhere: string;
  /** `.npz` files carry meta.kind; the `.npy` sidecars written before it existed do not. */
  requireKind: boolean;
}

/** Everything a features file must agree on: dtype and rank, meta, names (one per row), finite rows. */
function checkedFeaturesFile(values: NpyArray, names: unknown, meta: unknown, where: Where): FeaturesFile {
  featuresHeaderRows(values, where.name);
  const [n, d] = values.shape;
  const checkedMeta = metaOf(meta, n, d, where);
  const checkedNames = namesOf(names, n, where.namesWhere);
  const features: FeatureMatrix = { n, d, data: values.data as Float32Array };
  assertFiniteRows(features, checkedNames, where.name);
  return { features, names: checkedNames, meta: checkedMeta };
}

function metaOf(meta: unknown, n: number, d: number, where: Where): FeaturesFileMeta {
  const bad = (what: string) => new DiffevalError("E_FEATURES_FORMAT", `${where.metaWhere}: ${what}; write the file with 'diffeval features'`);
  if (!isPlainObject(meta)) throw bad("the metadata must be a JSON object");
  if (meta.kind !== FEATURES_FILE_KIND && (where.requireKind || meta.kind !== undefined)) {
    throw bad(`meta.kind must be "${FEATURES_FILE_KIND}", found ${JSON.stringify(meta.kind)?.slice(0, 80)}`);
  }
  // Without these three a mismatch between two sides could not be refused (E_PROTOCOL_MISMATCH).
  for (const key of ["encoder", "protocol", "weights_sha256"] as const) {
    const v = meta[key];
    if (typeof v !== "string" || v === "" || v.length > 200) throw bad(`'${key}' must name how the features were made (a string), found ${JSON.stringify(v)?.slice(0, 80)}`);
  }
  if (meta.n !== n) throw bad(`'n' says ${JSON.stringify(meta.n)?.slice(0, 40)} rows but the features have ${n}`);
  if (meta.d !== d) {
    throw new DiffevalError("E_FEATURE_DIM", `${where.metaWhere}: 'd' says ${JSON.stringify(meta.d)?.slice(0, 40)} but the features are ${d}-d; the file is damaged`);
  }
  return { ...meta, kind: FEATURES_FILE_KIND } as FeaturesFileMeta;
}

function namesOf(names: unknown, n: number, where: string): string[] {
  if (!Array.isArray(names)) throw new DiffevalError("E_FEATURES_FORMAT", `${where}: the image names must be a JSON list of strings, one per row`);
  if (names.length !== n) {
    throw new DiffevalError("E_FEATURES_FORMAT", `${where}: lists ${names.length} image names for ${n} feature rows; each row needs its image's name`);
  }
  const bad = names.findIndex((s) => typeof s !== "string");
  if (bad >= 0) throw new DiffevalError("E_FEATURES_FORMAT", `${where}: name ${bad} is not a string`);
  return names as string[];
}

/** NaN/Inf in a row gives no usable statistics or distances: named by row and image. */
function assertFiniteRows(x: FeatureMatrix, names: readonly string[], file: string): void {
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i])) {
      const row = Math.floor(i / x.d);
      throw new DiffevalError(
        "E_NONFINITE",
        `${file}: row ${row} (${names[row]}) has ${x.data[i]} in column ${i - row * x.d}; recompute the features (check that image and the weights, or retry with --device cpu)`,
      );
    }
  }
}

/** The `.npy` form's features (the sidecar is written by the caller). */
export function featuresNpy(features: FeatureMatrix): Uint8Array {
  return writeNpy({ dtype: "<f4", shape: [features.n, features.d], data: features.data });
}
