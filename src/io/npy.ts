/**
 * numpy's .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 * magic "\x93NUMPY", version (1.0, 2.0 or 3.0), header length (u16 for v1, u32 for v2/v3),
 * a Python-literal dict {'descr', 'fortran_order', 'shape'} (latin-1 for v1/v2, UTF-8 for v3),
 * padded so the data starts on a 64-byte boundary, then the raw array.
 */
import { DiffevalError } from "../errors.js";

export type NpyDtype = "<f4" | "<f8" | "|u1";

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** Always C (row-major) order after reading; Fortran-order files are transposed on load. */
  data: Float32Array | Float64Array | Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const ITEM_SIZE: Record<NpyDtype, number> = { "<f4": 4, "<f8": 8, "|u1": 1 };

/**
 * numpy's own limit on the header dict (`numpy.lib.format._MAX_HEADER_SIZE`, 10,000 bytes): np.load
 * refuses longer headers unless told otherwise, as "large headers may not be safe to load securely".
 */
export const MAX_NPY_HEADER_BYTES = 10_000;

/** numpy 2's NPY_MAXDIMS: no array numpy can make has more dimensions. */
export const MAX_NPY_DIMS = 64;

/** Bytes before the header dict can end: magic, version, a u32 length, and the longest dict numpy reads. */
export const MAX_NPY_PREAMBLE_BYTES = 12 + MAX_NPY_HEADER_BYTES;

/** What the header promises, read without touching the data. */
export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  fortranOrder: boolean;
  /** Offset of the first data byte (the end of the header). */
  dataStart: number;
  /** Element count (the product of the shape; 1 for a 0-d array). */
  count: number;
  /** Data bytes the shape and dtype promise: count x itemsize. */
  dataBytes: number;
}

/**
 * The header of a .npy file, from its first bytes (`MAX_NPY_PREAMBLE_BYTES` are always enough).
 * Every length is checked against the bytes at hand before it is used. `name` is used in errors.
 */
export function readNpyHeader(buf: Uint8Array, name = "array"): NpyHeader {
  if (buf.length < 10 || !MAGIC.every((b, i) => buf[i] === b)) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: not a .npy array (bad magic bytes)`);
  }
  const major = buf[6];
  if (major !== 1 && major !== 2 && major !== 3) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: unsupported .npy format version ${major}.${buf[7]}`);
  }
  const headerStart = major === 1 ? 10 : 12; // u16 length for v1, u32 for v2/v3
  if (buf.length < headerStart) throw truncatedHeader(name);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerLen > MAX_NPY_HEADER_BYTES) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${name}: .npy header of ${headerLen} bytes is longer than numpy's own limit of ${MAX_NPY_HEADER_BYTES} (np.load refuses it too)`,
    );
  }
  if (buf.length < headerStart + headerLen) throw truncatedHeader(name);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(buf.subarray(headerStart, headerStart + headerLen));
  const { descr, fortranOrder, shape } = parseHeader(header, name);
  // '|O' is what numpy writes; 'O', '|O8', '<O' are the other spellings of an object dtype.
  if (/^[|<>=]?O\d*$/.test(descr)) {
    throw new DiffevalError(
      "E_NPZ_PICKLE",
      `${name}: holds a Python object array (pickled data); diffeval never unpickles array files. Save plain float arrays instead.`,
    );
  }
  const dtype = normaliseDescr(descr, name);
  const { count, dataBytes } = arraySize(shape, ITEM_SIZE[dtype], name);
  return { dtype, shape, fortranOrder, dataStart: headerStart + headerLen, count, dataBytes };
}

/** Parses a .npy buffer. `name` is used in error messages (a file path or an npz entry). */
export function readNpy(buf: Uint8Array, name = "array"): NpyArray {
  const { dtype, shape, fortranOrder, dataStart, count, dataBytes } = readNpyHeader(buf, name);
  const available = buf.length - dataStart;
  if (available < dataBytes) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${name}: truncated .npy file: shape [${shape.join(", ")}] needs ${dataBytes} data bytes, found ${available}`,
    );
  }
  // A copy (aligned, detached from the file buffer); `new Uint8Array(view)` copies even when `buf`
  // is a Node Buffer, whose slice() would only be a view.
  const raw = new Uint8Array(buf.subarray(dataStart, dataStart + dataBytes));
  let data: NpyArray["data"] =
    dtype === "<f4"
      ? new Float32Array(raw.buffer, 0, count)
      : dtype === "<f8"
        ? new Float64Array(raw.buffer, 0, count)
        : raw;
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return { dtype, shape, data };
}

function truncatedHeader(name: string): DiffevalError {
  return new DiffevalError("E_NPY_FORMAT", `${name}: truncated .npy file: the header is cut short`);
}

/**
 * Element count and data bytes of a shape, refusing what numpy itself cannot make: numpy's
 * PyArray_NewFromDescr refuses a shape whose non-zero dimensions multiply (with the item size)
 * past its index type ("array is too big"), even when another dimension is 0. The limit here is
 * the float64 safe-integer range (2^53), far beyond any file that exists.
 */
function arraySize(shape: readonly number[], itemSize: number, name: string): { count: number; dataBytes: number } {
  let nonZero = itemSize;
  let empty = false;
  for (const dim of shape) {
    if (dim === 0) empty = true;
    else nonZero *= dim;
    if (nonZero > Number.MAX_SAFE_INTEGER) {
      throw new DiffevalError("E_NPY_FORMAT", `${name}: shape (${shape.join(", ")}) is too big for any array (over 2^53 bytes)`);
    }
  }
  const dataBytes = empty ? 0 : nonZero;
  return { count: dataBytes / itemSize, dataBytes };
}

/** Serialises an array as .npy version 1.0 (C order), the version numpy itself writes. */
export function writeNpy(arr: NpyArray): Uint8Array {
  const shapeStr = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(", ")})`;
  let header = `{'descr': '${arr.dtype}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad with spaces so that magic(6) + version(2) + len(2) + header + "\n" is a multiple of 64.
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  if (header.length > 0xffff) throw new Error("npy header too long");
  const dataBytes = new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength);
  const out = new Uint8Array(10 + header.length + dataBytes.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(dataBytes, 10 + header.length);
  return out;
}

function parseHeader(header: string, name: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const structured = /'descr'\s*:\s*\[([\s\S]*?)\]\s*,\s*'/.exec(header)?.[1];
  if (structured !== undefined) refuseStructured(structured, name);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: unreadable .npy header: ${clip(header.trim(), 200)}`);
  }
  const dims = shapeStr
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (dims.length > MAX_NPY_DIMS) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: .npy shape has ${dims.length} dimensions; numpy allows at most ${MAX_NPY_DIMS}`);
  }
  // numpy writes each dimension as a Python int literal (Python 2 wrote a trailing L on longs):
  // plain digits, nothing a float parser would also take ("1e308", "0x10", "2.0").
  const shape = dims.map((s) => (/^\d+L?$/.test(s) ? Number(s.replace(/L$/, "")) : NaN));
  if (shape.some((v) => !Number.isSafeInteger(v))) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: bad shape in .npy header: (${clip(shapeStr, 200)}); dimensions must be non-negative integers`);
  }
  return { descr, fortranOrder: fortran === "True", shape };
}

/**
 * Structured dtypes (a list of (field, type) pairs) are never plain feature arrays. One with an
 * object field ('O') would need unpickling, which diffeval refuses on principle (np.load's own
 * default is allow_pickle=False for the same reason).
 */
function refuseStructured(fields: string, name: string): never {
  if (/'[|<>=]?O\d*'/.test(fields)) {
    throw new DiffevalError(
      "E_NPZ_PICKLE",
      `${name}: holds a structured array with Python object fields (pickled data); diffeval never unpickles array files. Save plain float arrays instead.`,
    );
  }
  throw new DiffevalError(
    "E_NPY_DTYPE",
    `${name}: structured dtype [${fields.trim()}] is not supported; save a plain float32/float64 array`,
  );
}

function normaliseDescr(descr: string, name: string): NpyDtype {
  if (descr === "<f4" || descr === "=f4") return "<f4";
  if (descr === "<f8" || descr === "=f8") return "<f8";
  if (descr === "|u1" || descr === "<u1" || descr === "u1") return "|u1";
  throw new DiffevalError(
    "E_NPY_DTYPE",
    `${name}: unsupported dtype '${descr}'; diffeval reads little-endian float32 ('<f4'), float64 ('<f8') and uint8 arrays`,
  );
}

/**
 * Reorders a column-major (Fortran) array into row-major order. Walks the C-order index like an
 * odometer and keeps the Fortran offset up to date as digits tick over, so the cost is O(numel)
 * (amortised: the last digit ticks every step, the one before it every shape[-1] steps, ...),
 * not O(ndim x numel).
 */
function fortranToC<T extends NpyArray["data"]>(src: T, shape: number[]): T {
  const out = new (src.constructor as { new (n: number): T })(src.length);
  const rank = shape.length;
  const fStrides = new Array<number>(rank);
  fStrides[0] = 1;
  for (let k = 1; k < rank; k++) fStrides[k] = fStrides[k - 1] * shape[k - 1];
  const idx = new Array<number>(rank).fill(0);
  let f = 0;
  for (let c = 0; c < src.length; c++) {
    out[c] = src[f];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) {
        f += fStrides[k];
        break;
      }
      f -= (shape[k] - 1) * fStrides[k];
      idx[k] = 0;
    }
  }
  return out;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}
