/**
 * Reads PyTorch state dicts (`torch.save(model.state_dict(), f)`) without Python, in both formats:
 *
 * - zip (torch >= 1.6, torch/serialization.py `_save`): entries `<archive>/data.pkl` (the pickled
 *   dict), `<archive>/data/<key>` (each storage's raw bytes), `<archive>/version`, and since torch 2.1
 *   `<archive>/byteorder`. A tensor is `_rebuild_tensor_v2(storage, offset, size, stride, ...)` whose
 *   storage is the persistent id ('storage', StorageType, key, location, numel).
 * - legacy (torch < 1.6, `_legacy_save`): five things back to back: a pickled magic number, a
 *   pickled protocol version (1001), a pickled sys_info dict (endianness, type sizes), the main
 *   pickle (persistent ids ('storage', StorageType, root_key, location, numel, view_metadata)), the
 *   pickled list of storage keys, then per key an int64 element count and the raw bytes.
 *
 * Every count, size, offset and stride in the file is checked against the bytes present before
 * anything is allocated or copied, so a damaged or hostile file ends in a DiffevalError (naming the
 * file, and the entry for the zip form) rather than a crash, a hang or an exhausted memory.
 *
 * Only float32 tensors are materialised; tensors of other dtypes (e.g. BatchNorm's int64
 * `num_batches_tracked`) become placeholders that throw E_WEIGHTS_DTYPE when their data is used, so
 * a layout check can name the key that is wrong before any dtype matters. Little-endian only.
 */
import { endianness } from "node:os";
import { inflateRawSync } from "node:zlib";
import { DiffevalError } from "../errors.js";
import { isStorageType, isTensorRef, unpickle, type TorchStorageType, type TorchTensorRef } from "./pickle.js";

export interface TensorF32 {
  shape: number[];
  data: Float32Array;
}

/** Tensors by state-dict key, in the file's order. */
export type StateDict = Map<string, TensorF32>;

/**
 * A tensor stored with another dtype than float32. Its shape is known; reading `data` throws
 * E_WEIGHTS_DTYPE naming the key and the file.
 */
export class UnsupportedDtypeTensor implements TensorF32 {
  constructor(
    readonly key: string,
    readonly shape: number[],
    readonly dtype: string,
    readonly file: string,
  ) {}

  get data(): Float32Array {
    throw dtypeError(this.file, this.key, this.dtype);
  }
}

export function isUnsupportedDtype(t: TensorF32): t is UnsupportedDtypeTensor {
  return t instanceof UnsupportedDtypeTensor;
}

export function dtypeError(file: string, key: string, dtype: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_DTYPE",
    `${file}: tensor '${key}' is stored as ${dtype}; diffeval reads float32 weights only. ` +
      `Convert the state dict with {k: v.float() for k, v in sd.items()} and save it again, or use the published float32 file.`,
  );
}

/** Which of torch's two on-disk layouts a buffer holds, or null when it is neither. */
export function pthFormat(buf: Uint8Array): "zip" | "legacy" | null {
  if (buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04) return "zip";
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] >= 2 && buf[1] <= 5) return "legacy";
  return null;
}

/** Reads a .pth state dict; `name` (the file path) appears in every error message. */
export function readStateDict(buf: Uint8Array, name: string): StateDict {
  if (endianness() !== "LE") {
    throw new DiffevalError("E_WEIGHTS_FORMAT", `${name}: reading weight files needs a little-endian machine`);
  }
  const format = pthFormat(buf);
  if (format === "zip") return readZipStateDict(buf, name);
  if (format === "legacy") return readLegacyStateDict(buf, name);
  throw new DiffevalError(
    "E_WEIGHTS_FORMAT",
    `${name}: not a PyTorch weight file (neither a torch.save zip archive nor a legacy pickle). ` +
      `Check the path, or re-download the file.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Storages: where a tensor's bytes live, resolved after the pickle is read.

interface StorageRef {
  kind: "pth-storage";
  type: TorchStorageType;
  key: string;
  /** Elements the storage (or the legacy view) holds. */
  numel: number;
  /** Where it is, for messages: the zip entry (`archive/data/3`) or the legacy storage key. */
  where: string;
  /** Set once the bytes are known: float32 elements, or null for other dtypes. */
  data?: Float32Array | null;
  /** Legacy views into a root storage, at an element offset. */
  viewOf?: { root: StorageRef; offset: number };
}

function storageFromPid(pid: unknown, name: string): { type: TorchStorageType; key: string; numel: number; rest: unknown[] } {
  if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
    throw formatError(name, "a persistent id is not a ('storage', ...) record");
  }
  const [, type, key, , numel, ...rest] = pid as unknown[];
  if (!isStorageType(type) || typeof key !== "string" || !isIndex(numel)) {
    throw formatError(name, "a storage record has a malformed type, key or size");
  }
  return { type, key, numel, rest };
}

/**
 * The storage already declared under `key`, or null. torch declares a storage the same way each
 * time it is shared (one type, the root's element count); two declarations that disagree would
 * let one tensor read another's bytes under a different type or size.
 */
function knownStorage(storages: Map<string, StorageRef>, type: TorchStorageType, key: string, numel: number, name: string): StorageRef | null {
  const known = storages.get(key);
  if (!known) return null;
  if (known.type.name !== type.name || known.numel !== numel) {
    throw formatError(name, `storage ${key} is declared twice, as ${known.numel} x ${known.type.name} and as ${numel} x ${type.name}`);
  }
  return known;
}

/** Reinterprets little-endian float32 bytes; copies only when the bytes are not 4-aligned. */
function float32View(bytes: Uint8Array, numel: number): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, numel);
  // An explicit copy: on a Node Buffer, .slice() would share memory rather than copy.
  const aligned = new Uint8Array(numel * 4);
  aligned.set(bytes.subarray(0, numel * 4));
  return new Float32Array(aligned.buffer, 0, numel);
}

// ---------------------------------------------------------------------------------------------
// zip format

function readZipStateDict(buf: Uint8Array, name: string): StateDict {
  const zip = zipDirectory(buf, name);
  const pklName = [...zip.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName) throw formatError(name, "the zip archive has no <archive>/data.pkl entry");
  const prefix = pklName.slice(0, -"data.pkl".length);
  const byteorder = zip.get(`${prefix}byteorder`);
  if (byteorder && new TextDecoder().decode(entryBytes(buf, byteorder, name)).trim() !== "little") {
    throw formatError(name, "the tensors are stored big-endian");
  }
  const storages = new Map<string, StorageRef>();
  const pklLabel = `${name}, entry ${pklName}`;
  const persistentLoad = (pid: unknown): StorageRef => {
    const { type, key, numel } = storageFromPid(pid, pklLabel);
    const known = knownStorage(storages, type, key, numel, pklLabel);
    if (known) return known;
    const where = `${prefix}data/${key}`;
    const ref: StorageRef = { kind: "pth-storage", type, key, numel, where, data: zipStorageData(buf, zip, where, type, numel, name) };
    storages.set(key, ref);
    return ref;
  };
  const { value } = unpickle(entryBytes(buf, zip.get(pklName)!, name), { name: pklLabel, persistentLoad });
  return stateDictFromPickle(value, storages, name);
}

function zipStorageData(buf: Uint8Array, zip: ZipDirectory, where: string, type: TorchStorageType, numel: number, name: string): Float32Array | null {
  const entry = zip.get(where);
  if (!entry) throw formatError(name, `storage entry ${where} is missing`);
  const need = numel * type.itemSize;
  // Checked against the directory's size before the entry is read (or inflated).
  if (entry.size < need) {
    throw new DiffevalError(
      "E_WEIGHTS_TRUNCATED",
      `${name}: storage entry ${where} holds ${entry.size} bytes, ${need} expected; the file is damaged. Re-download it.`,
    );
  }
  return type.dtype === "float32" ? float32View(entryBytes(buf, entry, name), numel) : null;
}

/**
 * A reader for the zip archives torch writes (PKWARE APPNOTE.TXT: end of central directory 4.3.16,
 * zip64 end record and locator 4.3.14-4.3.15, central header 4.3.12, zip64 extra field 4.5.3,
 * local header 4.3.7), over the file's bytes in memory. Every count, size and offset is checked
 * against those bytes before it is used: a general unzipper allocates an entry's declared size
 * up front and loops over the declared entry count, which a few damaged bytes turn into gigabytes
 * or billions of iterations.
 */
interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  /** Offset of the entry's data, past its local header. */
  dataStart: number;
}

type ZipDirectory = Map<string, ZipEntry>;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
/** Deflate's largest expansion: a 258-byte match in (at best) two bits, i.e. 1032:1 (RFC 1951). */
const MAX_DEFLATE_RATIO = 1032;
const UTF8 = new TextDecoder("utf-8");

function zipDirectory(buf: Uint8Array, name: string): ZipDirectory {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const eocd = endOfCentralDirectory(buf, view);
  if (eocd < 0) {
    throw new DiffevalError(
      "E_WEIGHTS_TRUNCATED",
      `${name}: the zip archive has no end-of-central-directory record, so the file is truncated ` +
        `(an interrupted download?). Delete it and download it again.`,
    );
  }
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  let cdLimit = eocd;
  const locator = eocd - 20;
  if (locator >= 0 && view.getUint32(locator, true) === SIG_EOCD64_LOCATOR) {
    const at = u64(view, locator + 8);
    if (at + 56 > locator || view.getUint32(at, true) !== SIG_EOCD64) throw zipError(name, "the zip64 end record is missing");
    count = u64(view, at + 32);
    cdSize = u64(view, at + 40);
    cdOffset = u64(view, at + 48);
    cdLimit = at;
  }
  // Each central header takes at least 46 bytes, so the count is checked before the loop.
  if (cdOffset + cdSize > cdLimit || count * 46 > cdSize) {
    throw zipError(name, `the central directory (${count} entries, ${cdSize} bytes at ${cdOffset}) does not fit in the file`);
  }
  const entries: ZipDirectory = new Map();
  let pos = cdOffset;
  for (let i = 0; i < count; i++) {
    const e = centralEntry(buf, view, pos, cdOffset + cdSize, name);
    if (entries.has(e.entry.name)) throw zipError(name, `entry ${e.entry.name} appears twice`);
    entries.set(e.entry.name, e.entry);
    pos = e.next;
  }
  checkNoOverlap([...entries.values()], cdOffset, name);
  return entries;
}

/** Offset of the EOCD signature PK\x05\x06, in the last 22 + 65535 bytes; -1 when absent. */
function endOfCentralDirectory(buf: Uint8Array, view: DataView): number {
  const stop = Math.max(0, buf.length - 22 - 0xffff);
  for (let i = buf.length - 22; i >= stop; i--) {
    if (buf[i] === 0x50 && view.getUint32(i, true) === SIG_EOCD) return i;
  }
  return -1;
}

/** A little-endian uint64; beyond 2^53 it cannot address these bytes anyway, so it saturates. */
function u64(view: DataView, at: number): number {
  const v = view.getBigUint64(at, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

function centralEntry(buf: Uint8Array, view: DataView, pos: number, end: number, name: string): { entry: ZipEntry; next: number } {
  if (pos + 46 > end || view.getUint32(pos, true) !== SIG_CENTRAL) throw zipError(name, `no central directory header at byte ${pos}`);
  const flags = view.getUint16(pos + 8, true);
  const method = view.getUint16(pos + 10, true);
  let compressedSize = view.getUint32(pos + 20, true);
  let size = view.getUint32(pos + 24, true);
  const nameLen = view.getUint16(pos + 28, true);
  const extraLen = view.getUint16(pos + 30, true);
  const commentLen = view.getUint16(pos + 32, true);
  let localOffset = view.getUint32(pos + 42, true);
  const next = pos + 46 + nameLen + extraLen + commentLen;
  if (next > end) throw zipError(name, `the central directory header at byte ${pos} runs past the directory`);
  const entryName = UTF8.decode(buf.subarray(pos + 46, pos + 46 + nameLen));
  const extraStart = pos + 46 + nameLen;
  ({ size, compressedSize, localOffset } = zip64Sizes(view, extraStart, extraStart + extraLen, { size, compressedSize, localOffset }, entryName, name));
  if (flags & 1) throw zipError(name, `entry ${entryName} is encrypted`);
  if (method !== 0 && method !== 8) throw zipError(name, `entry ${entryName} uses compression method ${method} (only stored and deflate are read)`);
  if (method === 0 ? size !== compressedSize : size > compressedSize * MAX_DEFLATE_RATIO + MAX_DEFLATE_RATIO) {
    throw zipError(name, `entry ${entryName} claims ${size} bytes from ${compressedSize} ${method === 0 ? "stored" : "deflated"} bytes`);
  }
  if (localOffset + 30 > buf.length || view.getUint32(localOffset, true) !== SIG_LOCAL) {
    throw zipError(name, `entry ${entryName} has no local header at byte ${localOffset}`);
  }
  const dataStart = localOffset + 30 + view.getUint16(localOffset + 26, true) + view.getUint16(localOffset + 28, true);
  if (dataStart + compressedSize > buf.length) {
    throw zipError(name, `entry ${entryName} (${compressedSize} bytes at ${dataStart}) runs past the end of the file`);
  }
  return { entry: { name: entryName, method, compressedSize, size, localOffset, dataStart }, next };
}

/**
 * The zip64 extended information extra field (id 1) holds 8-byte values for exactly those of
 * (size, compressed size, local offset) whose 4-byte fields are saturated at 0xffffffff, in order.
 */
function zip64Sizes(
  view: DataView,
  start: number,
  end: number,
  fields: { size: number; compressedSize: number; localOffset: number },
  entryName: string,
  name: string,
): { size: number; compressedSize: number; localOffset: number } {
  for (let x = start; x + 4 <= end; x += 4 + view.getUint16(x + 2, true)) {
    if (view.getUint16(x, true) !== 1) continue;
    let f = x + 4;
    const fEnd = Math.min(end, f + view.getUint16(x + 2, true));
    const take = (v: number): number => {
      if (v !== 0xffffffff) return v;
      if (f + 8 > fEnd) throw zipError(name, `entry ${entryName} has a short zip64 extra field`);
      f += 8;
      return u64(view, f - 8);
    };
    const size = take(fields.size);
    const compressedSize = take(fields.compressedSize);
    return { size, compressedSize, localOffset: take(fields.localOffset) };
  }
  return fields;
}

/**
 * Entries whose data overlap (several directory records pointing into one deflate stream) are the
 * "overlapping files" zip bomb, and never written by torch; CPython's zipfile refuses them too
 * (gh-109858). Each entry's data must end before the next local header (or the directory).
 */
function checkNoOverlap(entries: ZipEntry[], cdOffset: number, name: string): void {
  const sorted = entries.slice().sort((a, b) => a.localOffset - b.localOffset);
  for (let i = 0; i < sorted.length; i++) {
    const end = sorted[i].dataStart + sorted[i].compressedSize;
    const limit = i + 1 < sorted.length ? sorted[i + 1].localOffset : cdOffset;
    if (end > limit) throw zipError(name, `entry ${sorted[i].name} overlaps the next entry or the central directory`);
  }
}

/** An entry's bytes: a view for stored entries; inflated into at most the declared size otherwise. */
function entryBytes(buf: Uint8Array, e: ZipEntry, name: string): Uint8Array {
  const raw = buf.subarray(e.dataStart, e.dataStart + e.compressedSize);
  if (e.method === 0) return raw;
  let out: Uint8Array;
  try {
    out = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
  } catch (err) {
    throw zipError(name, `entry ${e.name} does not inflate to its declared ${e.size} bytes (${(err as Error).message})`, err);
  }
  if (out.length !== e.size) throw zipError(name, `entry ${e.name} inflates to ${out.length} bytes, not its declared ${e.size}`);
  return out;
}

function zipError(name: string, what: string, cause?: unknown): DiffevalError {
  return new DiffevalError("E_WEIGHTS_FORMAT", `${name}: damaged zip archive (${what}). Re-download the file.`, cause === undefined ? undefined : { cause });
}

// ---------------------------------------------------------------------------------------------
// legacy format

/** torch/serialization.py MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

function readLegacyStateDict(buf: Uint8Array, name: string): StateDict {
  const magic = unpickle(buf, { name });
  if (magic.value !== LEGACY_MAGIC) throw formatError(name, "a pickle, but not a torch.save file (wrong magic number)");
  const proto = unpickle(buf, { name, offset: magic.end });
  if (proto.value !== LEGACY_PROTOCOL) throw formatError(name, `unknown legacy protocol version ${describeValue(proto.value)}`);
  const sysInfo = unpickle(buf, { name, offset: proto.end });
  checkLegacySysInfo(sysInfo.value, name);

  const roots = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => legacyStorage(pid, roots, name);
  const main = unpickle(buf, { name, offset: sysInfo.end, persistentLoad });
  const keys = unpickle(buf, { name, offset: main.end });
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === "string")) {
    throw formatError(name, "the storage key list is malformed");
  }
  readLegacyStorageData(buf, keys.end, keys.value as string[], roots, name);
  return stateDictFromPickle(main.value, roots, name);
}

function checkLegacySysInfo(info: unknown, name: string): void {
  if (!(info instanceof Map)) throw formatError(name, "the sys_info record is malformed");
  if (info.get("little_endian") === false) throw formatError(name, "the tensors were saved on a big-endian machine");
}

/**
 * Root storages by key; a view_metadata (view_key, offset, size) makes a view into its root, which
 * torch's legacy loader slices as `storage[offset:offset + size]`: both must be indices and the
 * view must lie inside the root.
 */
function legacyStorage(pid: unknown, roots: Map<string, StorageRef>, name: string): StorageRef {
  const { type, key, numel, rest } = storageFromPid(pid, name);
  let root = knownStorage(roots, type, key, numel, name);
  if (!root) {
    root = { kind: "pth-storage", type, key, numel, where: `storage ${key}` };
    roots.set(key, root);
  }
  const view = rest[0];
  if (view === undefined || view === null) return root;
  if (!Array.isArray(view) || view.length !== 3 || typeof view[0] !== "string" || !isIndex(view[1]) || !isIndex(view[2])) {
    throw formatError(name, `the view record of storage ${key} is malformed (not a (key, offset, size) of a string and two non-negative integers)`);
  }
  const [viewKey, offset, size] = view as [string, number, number];
  if (offset + size > numel) {
    throw formatError(name, `storage view ${viewKey} (elements ${offset}..${offset + size}) lies outside its root storage ${key} of ${numel}`);
  }
  return { kind: "pth-storage", type, key: viewKey, numel: size, where: `storage ${key} (view ${viewKey})`, viewOf: { root, offset } };
}

/** Each listed storage: int64 element count, then the raw little-endian elements. */
function readLegacyStorageData(buf: Uint8Array, start: number, keys: string[], roots: Map<string, StorageRef>, name: string): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = start;
  for (const key of keys) {
    const ref = roots.get(key);
    if (!ref) throw formatError(name, `storage ${key} is listed but never used`);
    if (pos + 8 > buf.length) throw legacyTruncated(name, key);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(ref.numel)) throw formatError(name, `storage ${key} holds ${count} elements, ${ref.numel} expected`);
    // The count is checked against the bytes left before any view is made of them.
    const nbytes = ref.numel * ref.type.itemSize;
    pos += 8;
    if (nbytes > buf.length - pos) throw legacyTruncated(name, key);
    ref.data = ref.type.dtype === "float32" ? float32View(buf.subarray(pos, pos + nbytes), ref.numel) : null;
    pos += nbytes;
  }
}

function legacyTruncated(name: string, key: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_TRUNCATED",
    `${name}: the file ends inside the data of storage ${key}; it is truncated (an interrupted download?). Delete it and download it again.`,
  );
}

// ---------------------------------------------------------------------------------------------
// From the unpickled dict to typed tensors

/**
 * numpy 2's NPY_MAXDIMS; weight tensors have a handful of dimensions, and the array readers hold
 * the same limit.
 */
const MAX_DIMS = 64;

/**
 * Elements that strided tensors may copy beyond the storages' own: a transposed weight is copied
 * once, but a hostile pickle could point thousands of small records at one large storage.
 */
const COPY_SLACK_ELEMENTS = 1 << 24;

/** What non-contiguous tensors may still copy, in elements. */
interface CopyBudget {
  left: number;
}

function stateDictFromPickle(value: unknown, storages: Map<string, StorageRef>, name: string): StateDict {
  if (!(value instanceof Map)) {
    throw new DiffevalError(
      "E_WEIGHTS_FORMAT",
      `${name}: the file does not hold a state dict (a dict of tensors). Save the weights with torch.save(model.state_dict(), path).`,
    );
  }
  let stored = 0;
  for (const s of storages.values()) stored += s.data ? s.data.length : 0;
  const budget: CopyBudget = { left: stored + COPY_SLACK_ELEMENTS };
  // One tensor record under several keys (memoized) is materialised once.
  const built = new Map<TorchTensorRef, Float32Array>();
  const out: StateDict = new Map();
  for (const [key, t] of value) {
    if (typeof key !== "string" || !isTensorRef(t)) {
      throw new DiffevalError(
        "E_WEIGHTS_FORMAT",
        `${name}: entry ${typeof key === "string" ? `'${key}'` : describeValue(key)} is not a tensor; diffeval reads plain state dicts ` +
          `(torch.save(model.state_dict())), not training checkpoints. Extract the state dict and save it on its own.`,
      );
    }
    out.set(key, tensorFromRef(key, t, built, budget, name));
  }
  return out;
}

function tensorFromRef(key: string, ref: TorchTensorRef, built: Map<TorchTensorRef, Float32Array>, budget: CopyBudget, name: string): TensorF32 {
  const storage = ref.storage as StorageRef;
  if (typeof storage !== "object" || storage === null || storage.kind !== "pth-storage") {
    throw formatError(name, `tensor '${key}' has no storage`);
  }
  const numel = checkedElementCount(key, ref, storage, name);
  if (storage.type.dtype !== "float32") return new UnsupportedDtypeTensor(key, ref.shape, storage.type.dtype, name);
  let data = built.get(ref);
  if (!data) {
    const root = storage.viewOf ? storage.viewOf.root : storage;
    if (!root.data) throw formatError(name, `the data of tensor '${key}' (${storage.where}) is missing`);
    const start = (storage.viewOf ? storage.viewOf.offset : 0) + ref.storageOffset;
    data = gatherStrided(root.data, start, ref.shape, ref.stride, numel, budget, key, name);
    built.set(ref, data);
  }
  return { shape: ref.shape, data };
}

/**
 * The tensor's element count, once its shape, stride and offset are known to address only
 * elements its storage holds (PyTorch's checkInBoundsForStorage: an empty tensor addresses none).
 * Checked before anything is allocated: the count is bounded by the storage, which is bounded by
 * the bytes in the file.
 */
function checkedElementCount(key: string, ref: TorchTensorRef, storage: StorageRef, name: string): number {
  const { shape, stride } = ref;
  if (shape.length > MAX_DIMS) throw formatError(name, `tensor '${key}' has ${shape.length} dimensions (at most ${MAX_DIMS} are read)`);
  const numel = elementCount(shape, storage.numel);
  if (numel === 0) return 0;
  if (numel > storage.numel) {
    throw formatError(name, `tensor '${key}' of shape [${shape.join(", ")}] has more elements than the ${storage.numel} its storage (${storage.where}) holds`);
  }
  // Every dim is at most numel here, so the sum is exact unless a stride is absurd, and then it
  // is far past the storage whatever the rounding.
  let last = ref.storageOffset;
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * stride[d];
  if (!(last < storage.numel)) {
    throw formatError(name, `tensor '${key}' reaches past the end of its storage (${storage.where}: element ${last} of ${storage.numel})`);
  }
  return numel;
}

/** Product of the dims: 0 when one is 0, otherwise Infinity as soon as it passes `limit`. */
function elementCount(shape: readonly number[], limit: number): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > limit) return Infinity;
  }
  return n;
}

/**
 * Copies a strided view into a dense row-major array. The contiguous case (the norm for state
 * dicts) is one subarray: no copy, sharing the storage buffer. The bounds are checked already.
 */
function gatherStrided(
  src: Float32Array,
  offset: number,
  shape: number[],
  stride: number[],
  numel: number,
  budget: CopyBudget,
  key: string,
  name: string,
): Float32Array {
  if (numel === 0) return new Float32Array(0);
  if (isContiguous(shape, stride)) return src.subarray(offset, offset + numel);
  if (numel > budget.left) {
    throw formatError(name, `tensor '${key}' is one strided view too many: together they copy more elements than the file's storages hold`);
  }
  budget.left -= numel;
  const out = new Float32Array(numel);
  const idx = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    out[i] = src[at];
    // Odometer increment over the dims, innermost first.
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      at += stride[d];
      if (idx[d] < shape[d]) break;
      at -= idx[d] * stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * A pickled value in a message, without walking it: a hostile pickle nests lists a million deep,
 * and String() or JSON.stringify would recurse through all of them.
 */
function describeValue(v: unknown): string {
  if (typeof v === "string") return `'${v.length > 60 ? `${v.slice(0, 60)}...` : v}'`;
  if (v === null || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `a ${Object.isFrozen(v) ? "tuple" : "list"} of ${v.length} items`;
  if (v instanceof Map) return `a dict of ${v.size} items`;
  if (v instanceof Set) return `a set of ${v.size} items`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  return "a record";
}

function formatError(name: string, what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_FORMAT",
    `${name}: not a readable PyTorch weight file (${what}). Re-download the file or re-save it with torch.save(state_dict).`,
  );
}
