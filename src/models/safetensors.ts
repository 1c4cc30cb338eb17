/**
 * Reads `.safetensors` weight files (the Hugging Face format, e.g. `openai/clip-vit-*`'s
 * `model.safetensors`) without Python. The layout:
 *
 * - 8 bytes: N, the header length, an unsigned little-endian 64-bit integer;
 * - N bytes: a UTF-8 JSON object (possibly padded with trailing spaces) mapping each tensor name to
 *   `{ "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }`, plus an optional
 *   `"__metadata__"` object of string to string;
 * - the data section: every tensor's bytes, little-endian, row-major, at `[begin, end)` relative
 *   to the start of the data section.
 *
 * As the reference implementation does, the offsets must tile the data section exactly: sorted by
 * `begin`, the first starts at 0, each starts where the previous ends (no overlap, no gap), and the
 * last ends at the end of the file; `end - begin` must equal the element count times the dtype's
 * size. A file that ends before the last tensor is E_WEIGHTS_TRUNCATED; any other inconsistency
 * is E_WEIGHTS_FORMAT. Everything is checked before a single tensor is converted, so an error
 * never leaves a half-loaded state dict behind.
 *
 * F32 tensors share the file's buffer when 4-aligned (copied otherwise); F16 (IEEE half, with
 * subnormals, infinities and NaN) and BF16 (the upper 16 bits of a float32) are widened to
 * float32 exactly; F64 is rounded to float32. Other dtypes (I64, U8, BOOL, F8_*, ...) become
 * `UnsupportedDtypeTensor` placeholders, as in the .pth reader: their shape is known and reading
 * their data throws E_WEIGHTS_DTYPE naming the key and the file.
 */
import { endianness } from "node:os";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { UnsupportedDtypeTensor, type StateDict, type TensorF32 } from "./pth.js";

/** Bytes per element of each dtype the format defines. */
const DTYPE_SIZES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The reference implementation refuses headers above 100 MB; so do we (a garbage length). */
const MAX_HEADER_BYTES = 100_000_000;

interface Entry {
  key: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** True when `buf` looks like a safetensors file: a plausible header length, then `{`. */
export function isSafetensors(buf: Uint8Array): boolean {
  if (buf.length < 9) return false;
  const n = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(MAX_HEADER_BYTES) && buf[8] === 0x7b;
}

/**
 * Reads a safetensors file into float32 tensors, ordered by their position in the data section.
 * `name` (the file path) appears in every error message. The `__metadata__` entry is not a tensor
 * and is left out.
 */
export function readSafetensors(buf: Uint8Array, name: string): StateDict {
  if (endianness() !== "LE") {
    throw new DiffevalError("E_WEIGHTS_FORMAT", `${name}: reading weight files needs a little-endian machine`);
  }
  const { entries, dataStart } = parseHeader(buf, name);
  const out: StateDict = new Map();
  for (const e of entries) out.set(e.key, materialise(buf, dataStart, e, name));
  return out;
}

/** Validates the header and the offsets; returns the tensors sorted by data offset. */
function parseHeader(buf: Uint8Array, name: string): { entries: Entry[]; dataStart: number } {
  if (buf.length < 8) {
    throw truncated(name, `it has ${buf.length} bytes, fewer than the 8-byte header length`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (buf.length > 8 && buf[8] !== 0x7b) {
    throw formatError(name, "the bytes after the 8-byte header length do not start a JSON object");
  }
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw formatError(name, `the header length ${n64} is implausible (over ${MAX_HEADER_BYTES} bytes)`);
  }
  const headerLen = Number(n64);
  const dataStart = 8 + headerLen;
  if (dataStart > buf.length) {
    throw truncated(name, `the ${headerLen}-byte JSON header is cut off after ${buf.length - 8} bytes`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, dataStart));
    header = parseJsonText(text, `${name}: safetensors header`, "E_WEIGHTS_FORMAT", "a JSON object of tensor entries; re-download the file");
  } catch (e) {
    if (e instanceof DiffevalError) throw e;
    throw new DiffevalError("E_WEIGHTS_FORMAT", `${name}: not a readable safetensors file (the header is not UTF-8 text: ${(e as Error).message}). Re-download the file.`, {
      cause: e,
    });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw formatError(name, "the header is not a JSON object");
  }

  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === "__metadata__") {
      checkMetadata(value, name);
      continue;
    }
    entries.push(parseEntry(key, value, name));
  }

  // The offsets must tile the data section: sorted by begin, each starts where the previous ends.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLen = buf.length - dataStart;
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.begin < at) {
      const prev = entries[i - 1];
      throw formatError(name, `tensor '${e.key}' (bytes ${e.begin}..${e.end}) overlaps tensor '${prev.key}' (bytes ${prev.begin}..${prev.end})`);
    }
    if (e.begin > at) {
      throw formatError(name, `the data section has a gap of ${e.begin - at} bytes before tensor '${e.key}'`);
    }
    at = e.end;
  }
  if (at > dataLen) {
    const cut = entries.find((e) => e.end > dataLen)!;
    throw truncated(name, `tensor '${cut.key}' needs data bytes ${cut.begin}..${cut.end}, but the data section holds ${dataLen}`);
  }
  if (at < dataLen) {
    throw formatError(name, `${dataLen - at} bytes after the last tensor's data belong to no tensor`);
  }
  return { entries, dataStart };
}

function checkMetadata(value: unknown, name: string): void {
  if (value === null) return;
  if (typeof value !== "object" || Array.isArray(value)) throw formatError(name, "__metadata__ is not an object");
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") throw formatError(name, `__metadata__ entry '${k}' is not a string`);
  }
}

function parseEntry(key: string, value: unknown, name: string): Entry {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw formatError(name, `header entry '${key}' is not a tensor description`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || !(dtype in DTYPE_SIZES)) {
    throw formatError(name, `tensor '${key}' has an unknown dtype ${describeJson(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw formatError(name, `tensor '${key}' has a malformed shape ${describeJson(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw formatError(name, `tensor '${key}' has malformed data_offsets ${describeJson(offsets)}`);
  }
  const dims = shape as number[];
  const nbytes = byteCount(dims, DTYPE_SIZES[dtype]);
  const [begin, end] = offsets as number[];
  if (nbytes === null || end - begin !== nbytes) {
    throw formatError(
      name,
      `tensor '${key}' (${dtype}, shape [${dims.join(", ")}]) needs ${nbytes ?? "more than 2^53"} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { key, dtype, shape: dims.slice(), begin, end };
}

/**
 * The tensor's size in bytes, or null when the product overflows on the way: the reference
 * implementation multiplies the dims in order with checked arithmetic and refuses an overflow,
 * even when a later dim is 0 (so [2^40, 2^40, 0] is refused, not read as empty).
 */
function byteCount(dims: readonly number[], itemSize: number): number | null {
  let n = itemSize;
  for (const d of dims) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return null;
  }
  return n;
}

/**
 * A header value in a message: short, and never walked recursively (a hostile header nests arrays
 * a million deep, and JSON.stringify would recurse through every level).
 */
function describeJson(v: unknown): string {
  let s: string;
  if (Array.isArray(v)) {
    const flat = v.length <= 8 && v.every((x) => typeof x !== "object" || x === null);
    s = flat ? `[${v.map((x) => JSON.stringify(x) ?? String(x)).join(", ")}]` : `an array of ${v.length} items`;
  } else if (typeof v === "object" && v !== null) {
    s = "an object";
  } else {
    s = JSON.stringify(v) ?? String(v);
  }
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function materialise(buf: Uint8Array, dataStart: number, e: Entry, name: string): TensorF32 {
  const bytes = buf.subarray(dataStart + e.begin, dataStart + e.end);
  switch (e.dtype) {
    case "F32":
      return { shape: e.shape, data: float32View(bytes) };
    case "F16":
      return { shape: e.shape, data: widenHalf(bytes) };
    case "BF16":
      return { shape: e.shape, data: widenBfloat16(bytes) };
    case "F64": {
      const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = new Float32Array(bytes.length / 8);
      for (let i = 0; i < out.length; i++) out[i] = v.getFloat64(i * 8, true);
      return { shape: e.shape, data: out };
    }
    default:
      return new UnsupportedDtypeTensor(e.key, e.shape, e.dtype, name);
  }
}

/** Reinterprets little-endian float32 bytes; copies only when they are not 4-aligned. */
function float32View(bytes: Uint8Array): Float32Array {
  const n = bytes.length / 4;
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  return new Float32Array(aligned.buffer, 0, n);
}

/** Reads little-endian uint16 values whatever the alignment. */
function uint16s(bytes: Uint8Array): Uint16Array {
  const n = bytes.length / 2;
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  return new Uint16Array(aligned.buffer, 0, n);
}

let halfTable: Float32Array | null = null;

/** IEEE 754 binary16 bits to its value (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function widenHalf(bytes: Uint8Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const src = uint16s(bytes);
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfTable[src[i]];
  return out;
}

/** bfloat16 is the upper half of a float32: shift the bits up (NaN payloads kept). */
function widenBfloat16(bytes: Uint8Array): Float32Array {
  const src = uint16s(bytes);
  const bits = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return new Float32Array(bits.buffer);
}

function formatError(name: string, what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_FORMAT",
    `${name}: not a readable safetensors file (${what}). Re-download the file or re-save it with safetensors.`,
  );
}

function truncated(name: string, what: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_TRUNCATED",
    `${name}: the safetensors file is truncated (${what}); an interrupted download? Delete it and download it again.`,
  );
}
