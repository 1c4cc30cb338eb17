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

/** Parses a .npy buffer. `name` is used in error messages (a file path or an npz entry). */
export function readNpy(buf: Uint8Array, name = "array"): NpyArray {
  if (buf.length < 10 || !MAGIC.every((b, i) => buf[i] === b)) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: not a .npy array (bad magic bytes)`);
  }
  const major = buf[6];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: unsupported .npy format version ${major}.${buf[7]}`);
  }
  const headerBytes = buf.subarray(headerStart, headerStart + headerLen);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(headerBytes);
  const { descr, fortranOrder, shape } = parseHeader(header, name);
  // '|O' is what numpy writes; 'O', '|O8', '<O' are the other spellings of an object dtype.
  if (/^[|<>=]?O\d*$/.test(descr)) {
    throw new DiffevalError(
      "E_NPZ_PICKLE",
      `${name}: holds a Python object array (pickled data); diffeval never unpickles array files. Save plain float arrays instead.`,
    );
  }
  const dtype = normaliseDescr(descr, name);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = headerStart + headerLen;
  const byteLen = count * ITEM_SIZE[dtype];
  if (buf.length - start < byteLen) {
    throw new DiffevalError(
      "E_NPY_FORMAT",
      `${name}: truncated .npy file: shape [${shape.join(", ")}] needs ${byteLen} data bytes, found ${buf.length - start}`,
    );
  }
  const raw = buf.slice(start, start + byteLen); // copy: aligned, and detached from the file buffer
  let data: NpyArray["data"] =
    dtype === "<f4"
      ? new Float32Array(raw.buffer, 0, count)
      : dtype === "<f8"
        ? new Float64Array(raw.buffer, 0, count)
        : raw;
  if (fortranOrder && shape.length > 1) data = fortranToC(data, shape);
  return { dtype, shape, data };
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
    throw new DiffevalError("E_NPY_FORMAT", `${name}: unreadable .npy header: ${header.trim()}`);
  }
  const shape = shapeStr
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, "")));
  if (shape.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new DiffevalError("E_NPY_FORMAT", `${name}: bad shape in .npy header: (${shapeStr})`);
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

/** Reorders a column-major (Fortran) array into row-major order. */
function fortranToC<T extends NpyArray["data"]>(src: T, shape: number[]): T {
  const out = new (src.constructor as { new (n: number): T })(src.length);
  const rank = shape.length;
  const cStrides = new Array<number>(rank);
  const fStrides = new Array<number>(rank);
  cStrides[rank - 1] = 1;
  for (let k = rank - 2; k >= 0; k--) cStrides[k] = cStrides[k + 1] * shape[k + 1];
  fStrides[0] = 1;
  for (let k = 1; k < rank; k++) fStrides[k] = fStrides[k - 1] * shape[k - 1];
  const idx = new Array<number>(rank).fill(0);
  for (let c = 0; c < src.length; c++) {
    let f = 0;
    for (let k = 0; k < rank; k++) f += idx[k] * fStrides[k];
    out[c] = src[f];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}
