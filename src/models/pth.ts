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
 * Only float32 tensors are materialised; tensors of other dtypes (e.g. BatchNorm's int64
 * `num_batches_tracked`) become placeholders that throw E_WEIGHTS_DTYPE when their data is used, so
 * a layout check can name the key that is wrong before any dtype matters. Little-endian only.
 */
import { unzipSync } from "fflate";
import { endianness } from "node:os";
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
  numel: number;
  /** Set once the bytes are known: float32 elements, or null for other dtypes. */
  data?: Float32Array | null;
  /** Legacy views into a root storage: (root key, element offset). */
  viewOf?: { root: StorageRef; offset: number };
}

function storageFromPid(pid: unknown, name: string): { type: TorchStorageType; key: string; numel: number; rest: unknown[] } {
  if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
    throw formatError(name, "a persistent id is not a ('storage', ...) record");
  }
  const [, type, key, , numel, ...rest] = pid as unknown[];
  if (!isStorageType(type) || typeof key !== "string" || typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) {
    throw formatError(name, "a storage record has a malformed type, key or size");
  }
  return { type, key, numel, rest };
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
  const entries = zipEntries(buf, name);
  const pklName = Object.keys(entries).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pklName) throw formatError(name, "the zip archive has no <archive>/data.pkl entry");
  const prefix = pklName.slice(0, -"data.pkl".length);
  const byteorder = entries[`${prefix}byteorder`];
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== "little") {
    throw formatError(name, "the tensors are stored big-endian");
  }
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    const { type, key, numel } = storageFromPid(pid, name);
    const known = storages.get(key);
    if (known) return known;
    const ref: StorageRef = { kind: "pth-storage", type, key, numel, data: zipStorageData(entries, prefix, key, type, numel, name) };
    storages.set(key, ref);
    return ref;
  };
  const { value } = unpickle(entries[pklName], { name, persistentLoad });
  return stateDictFromPickle(value, name);
}

/** Every entry of the archive; a missing end-of-central-directory record means truncation. */
function zipEntries(buf: Uint8Array, name: string): Record<string, Uint8Array> {
  if (!hasEndOfCentralDirectory(buf)) {
    throw new DiffevalError(
      "E_WEIGHTS_TRUNCATED",
      `${name}: the zip archive has no end-of-central-directory record, so the file is truncated ` +
        `(an interrupted download?). Delete it and download it again.`,
    );
  }
  try {
    return unzipSync(buf);
  } catch (e) {
    throw new DiffevalError("E_WEIGHTS_FORMAT", `${name}: damaged zip archive (${(e as Error).message}). Re-download the file.`, {
      cause: e,
    });
  }
}

/** The EOCD signature PK\x05\x06 sits in the last 22 + 65535 bytes (APPNOTE.TXT 4.3.16). */
function hasEndOfCentralDirectory(buf: Uint8Array): boolean {
  const stop = Math.max(0, buf.length - 22 - 0xffff);
  for (let i = buf.length - 22; i >= stop; i--) {
    if (buf[i] === 0x50 && buf[i + 1] === 0x4b && buf[i + 2] === 0x05 && buf[i + 3] === 0x06) return true;
  }
  return false;
}

function zipStorageData(
  entries: Record<string, Uint8Array>,
  prefix: string,
  key: string,
  type: TorchStorageType,
  numel: number,
  name: string,
): Float32Array | null {
  const bytes = entries[`${prefix}data/${key}`];
  if (!bytes) throw formatError(name, `storage entry ${prefix}data/${key} is missing`);
  if (bytes.length < numel * type.itemSize) {
    throw new DiffevalError(
      "E_WEIGHTS_TRUNCATED",
      `${name}: storage ${key} holds ${bytes.length} bytes, ${numel * type.itemSize} expected; the file is damaged. Re-download it.`,
    );
  }
  return type.dtype === "float32" ? float32View(bytes, numel) : null;
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
  if (proto.value !== LEGACY_PROTOCOL) throw formatError(name, `unknown legacy protocol version ${String(proto.value)}`);
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
  return stateDictFromPickle(main.value, name);
}

function checkLegacySysInfo(info: unknown, name: string): void {
  if (!(info instanceof Map)) throw formatError(name, "the sys_info record is malformed");
  if (info.get("little_endian") === false) throw formatError(name, "the tensors were saved on a big-endian machine");
}

/** Root storages by key; a view_metadata (view_key, offset, size) makes a view into its root. */
function legacyStorage(pid: unknown, roots: Map<string, StorageRef>, name: string): StorageRef {
  const { type, key, numel, rest } = storageFromPid(pid, name);
  let root = roots.get(key);
  if (!root) {
    root = { kind: "pth-storage", type, key, numel };
    roots.set(key, root);
  }
  const view = rest[0];
  if (view === undefined || view === null) return root;
  if (!Array.isArray(view) || view.length !== 3 || typeof view[1] !== "number" || typeof view[2] !== "number") {
    throw formatError(name, "a storage view record is malformed");
  }
  return { kind: "pth-storage", type, key: String(view[0]), numel: view[2], viewOf: { root, offset: view[1] } };
}

/** Each listed storage: int64 element count, then the raw little-endian elements. */
function readLegacyStorageData(buf: Uint8Array, start: number, keys: string[], roots: Map<string, StorageRef>, name: string): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = start;
  for (const key of keys) {
    const ref = roots.get(key);
    if (!ref) throw formatError(name, `storage ${key} is listed but never used`);
    if (pos + 8 > buf.length) throw legacyTruncated(name, key);
    const count = Number(view.getBigInt64(pos, true));
    if (count !== ref.numel) throw formatError(name, `storage ${key} holds ${count} elements, ${ref.numel} expected`);
    const nbytes = count * ref.type.itemSize;
    pos += 8;
    if (pos + nbytes > buf.length) throw legacyTruncated(name, key);
    ref.data = ref.type.dtype === "float32" ? float32View(buf.subarray(pos, pos + nbytes), count) : null;
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

function stateDictFromPickle(value: unknown, name: string): StateDict {
  if (!(value instanceof Map)) {
    throw new DiffevalError(
      "E_WEIGHTS_FORMAT",
      `${name}: the file does not hold a state dict (a dict of tensors). Save the weights with torch.save(model.state_dict(), path).`,
    );
  }
  const out: StateDict = new Map();
  for (const [key, t] of value) {
    if (typeof key !== "string" || !isTensorRef(t)) {
      throw new DiffevalError(
        "E_WEIGHTS_FORMAT",
        `${name}: entry '${String(key)}' is not a tensor; diffeval reads plain state dicts (torch.save(model.state_dict())), ` +
          `not training checkpoints. Extract the state dict and save it on its own.`,
      );
    }
    out.set(key, tensorFromRef(key, t, name));
  }
  return out;
}

function tensorFromRef(key: string, ref: TorchTensorRef, name: string): TensorF32 {
  const storage = ref.storage as StorageRef;
  if (typeof storage !== "object" || storage === null || storage.kind !== "pth-storage") {
    throw formatError(name, `tensor '${key}' has no storage`);
  }
  if (storage.type.dtype !== "float32") return new UnsupportedDtypeTensor(key, ref.shape, storage.type.dtype, name);
  const { data, offset } = storageElements(storage, key, name);
  return { shape: ref.shape, data: gatherStrided(data, offset + ref.storageOffset, ref.shape, ref.stride, key, name) };
}

/** The float32 elements a (possibly view) storage addresses, and where the view starts. */
function storageElements(s: StorageRef, key: string, name: string): { data: Float32Array; offset: number } {
  const root = s.viewOf ? s.viewOf.root : s;
  if (!root.data) throw formatError(name, `the data of tensor '${key}' is missing`);
  const offset = s.viewOf ? s.viewOf.offset : 0;
  if (offset + s.numel > root.data.length) throw formatError(name, `tensor '${key}' views past the end of its storage`);
  return { data: root.data.subarray(0, offset + s.numel), offset };
}

/**
 * Copies a strided view into a dense row-major array. The contiguous case (the norm for state
 * dicts) is one subarray: no copy, sharing the storage buffer.
 */
function gatherStrided(src: Float32Array, offset: number, shape: number[], stride: number[], key: string, name: string): Float32Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel === 0) return new Float32Array(0);
  const last = shape.reduce((acc, n, i) => acc + (n - 1) * stride[i], offset);
  if (last >= src.length) throw formatError(name, `tensor '${key}' reaches past the end of its storage`);
  if (isContiguous(shape, stride)) return src.subarray(offset, offset + numel);
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

function formatError(name: string, what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_FORMAT",
    `${name}: not a readable PyTorch weight file (${what}). Re-download the file or re-save it with torch.save(state_dict).`,
  );
}
