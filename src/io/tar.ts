/**
 * Reading a tar archive in place: its headers are scanned once into a list of entries (where each
 * one's bytes lie, and how many), and an entry's bytes are read only when asked for, with one
 * positioned read. Nothing is extracted to disk and the archive is never held in memory.
 *
 * Format: POSIX.1-2001 `pax` (IEEE Std 1003.1, "pax - portable archive interchange", ustar
 * Interchange Format and pax Extended Header), plus the two GNU extensions tar files in the wild
 * carry (GNU tar manual, "Basic Tar Format"): `././@LongLink` headers of type 'L' holding the next
 * entry's long name, and base-256 numeric fields for sizes of 8 GiB and more.
 * - The archive is a sequence of 512-byte blocks: a header, then the entry's data padded to a
 *   whole block. It ends with zero blocks (two by the standard; one is read as the end, as GNU tar
 *   does with a warning) or, when those are missing, at a header boundary at the end of the file.
 * - The header checksum is the sum of the header's bytes with the checksum field read as eight
 *   spaces; POSIX sums unsigned bytes, some historic writers signed ones: either is accepted, as GNU
 *   tar accepts either.
 * - A name is, by precedence: a pax `path` record, a GNU long name, then ustar's `prefix` + '/' +
 *   `name` (the prefix only in POSIX ustar headers, magic "ustar\0": GNU headers use those bytes
 *   for other fields). A pax `size` record overrides the header's size.
 * - Typeflags '1' (hard link), '2' (symbolic link), '3', '4' (devices), '5' (directory) and '6'
 *   (FIFO) carry no data (POSIX: their size field is not a data length); every other type does,
 *   and its data is skipped when the entry is not a regular file ('0', NUL, '7').
 * - Global pax headers ('g') are read and checked but not applied: a global `path` or `size`
 *   would give every later entry one name or one size, which no writer produces.
 * - Sparse files (GNU 'S' headers, GNU.sparse.* pax records) store a map, not the file: they are
 *   refused by name rather than read as wrong bytes.
 *
 * The archive is untrusted: every size is checked against the bytes the file has before anything
 * is read or allocated, meta headers (pax records, long names) are capped before they are read,
 * and the number of headers is capped. Errors are E_SOURCE, naming the archive and the entry.
 * The parser is written once, as a generator yielding the byte ranges it needs (as in zip.ts):
 * `listTar` serves them from a file, `listTarBytes` from a buffer.
 */
import { constants as bufferConstants } from "node:buffer";
import { open, type FileHandle } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import { readAt } from "./read-at.js";

export type TarEntryKind = "file" | "directory" | "link" | "other";

export interface TarEntryInfo {
  /** The name as the archive gives it ('/'-separated, not normalised; sources.ts checks and normalises it). */
  name: string;
  /** Regular file; directory; hard or symbolic link (never followed); anything else (devices, FIFOs, vendor types). */
  kind: TarEntryKind;
  /** File position of the entry's data. */
  offset: number;
  /** Bytes of data (0 for kinds that carry none). */
  size: number;
}

/** Caps on what one archive may ask of the reader. */
export interface TarLimits {
  /** Headers in one archive, meta headers included. */
  maxHeaders: number;
}

/** 2^22 headers: ~1.4 million images with a caption and a JSON each (webdataset's layout) still fit. */
export const DEFAULT_TAR_LIMITS: TarLimits = { maxHeaders: 1 << 22 };

/** The longest entry name, in UTF-8 bytes: Linux's PATH_MAX, the longest path an extraction could create. */
export const MAX_TAR_NAME_BYTES = 4096;

/** The largest pax extended header read: real ones are a few hundred bytes (a path, a size, times). */
export const MAX_PAX_HEADER_BYTES = 1 << 20;

const BLOCK = 512;

/** The largest entry one Node buffer can hold (buffer.constants.MAX_LENGTH). */
const MAX_ENTRY_BYTES = bufferConstants.MAX_LENGTH - 1;

/** A miss closer than this to the previous read reads this much ahead (archives of small entries). */
const READ_AHEAD_BYTES = 64 * 1024;

/** A byte range the parser needs; it is answered with those bytes (fewer only past the end of the file). */
interface ByteRange {
  position: number;
  length: number;
}

type Parse<T> = Generator<ByteRange, T, Uint8Array>;

/** The `.tar` name, or the ustar magic at byte 257 (POSIX "ustar\0", GNU "ustar  \0"). */
export async function isTarFile(file: string): Promise<boolean> {
  if (/\.tar$/i.test(file)) return true;
  const fh = await open(file, "r");
  try {
    const magic = Buffer.alloc(5);
    const { bytesRead } = await fh.read(magic, 0, 5, 257);
    return bytesRead === 5 && magic.toString("latin1") === "ustar";
  } finally {
    await fh.close();
  }
}

/** The entries of the archive `file`, in archive order. */
export async function listTar(file: string, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<TarEntryInfo[]> {
  const fh = await openArchive(file);
  try {
    const { size } = await fh.stat();
    return await runOnFile(tarEntries(size, file, limits), fh);
  } finally {
    await fh.close();
  }
}

/** The same listing of an archive held in memory; `file` names it in errors. */
export function listTarBytes(bytes: Uint8Array, file: string, limits: TarLimits = DEFAULT_TAR_LIMITS): TarEntryInfo[] {
  const parse = tarEntries(bytes.length, file, limits);
  let step = parse.next();
  while (!step.done) step = parse.next(bytes.subarray(step.value.position, step.value.position + step.value.length));
  return step.value;
}

/**
 * An entry's bytes, read with one positioned read. The file is opened for the read and closed
 * after it, so a source of thousands of shards holds no file descriptors between reads.
 */
export async function readTarEntry(file: string, entry: TarEntryInfo): Promise<Uint8Array> {
  if (entry.size > MAX_ENTRY_BYTES) {
    throw tarError(file, entry.name, `${entry.size} bytes, more than one buffer holds (${MAX_ENTRY_BYTES})`);
  }
  const fh = await openArchive(file);
  try {
    const bytes = await readAt(fh, entry.offset, entry.size);
    if (bytes.length < entry.size) throw tarError(file, entry.name, "ends early: the archive was truncated after it was opened");
    return bytes;
  } finally {
    await fh.close();
  }
}

async function openArchive(file: string): Promise<FileHandle> {
  return open(file, "r").catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SOURCE", `${file}: cannot read (${e.code ?? e.message})`);
  });
}

function tarError(file: string, entry: string | undefined, what: string): DiffevalError {
  const where = entry === undefined ? "" : `entry '${entry}' `;
  return new DiffevalError("E_SOURCE", `${file}: not a readable tar archive: ${where}${what} (re-create it with tar, or check that the copy is complete)`);
}

// ---------------------------------------------------------------------------------------------
// Driver: answers the parser's byte ranges from a file, reading ahead where entries are small.

async function runOnFile<T>(parse: Parse<T>, fh: FileHandle): Promise<T> {
  let window: { position: number; bytes: Uint8Array } = { position: 0, bytes: new Uint8Array(0) };
  let step = parse.next();
  while (!step.done) {
    const { position, length } = step.value;
    const start = position - window.position;
    if (start < 0 || start + length > window.bytes.length) {
      // Headers of small entries lie close together: read many at once instead of 512 bytes each.
      const near = position >= window.position && position - (window.position + window.bytes.length) < READ_AHEAD_BYTES;
      window = { position, bytes: await readAt(fh, position, near ? Math.max(length, READ_AHEAD_BYTES) : length) };
    }
    const from = position - window.position;
    step = parse.next(window.bytes.subarray(from, from + length));
  }
  return step.value;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** What meta headers ('x', 'L') say about the next entry. */
interface Pending {
  path?: string;
  size?: number;
  longName?: string;
  sparse?: boolean;
}

function* tarEntries(size: number, file: string, limits: TarLimits): Parse<TarEntryInfo[]> {
  const entries: TarEntryInfo[] = [];
  let pending: Pending = {};
  let headers = 0;
  for (let pos = 0; pos < size; ) {
    if (pos + BLOCK > size) throw tarError(file, undefined, `the header at byte ${pos} is cut short (the file ends at ${size})`);
    const h = yield { position: pos, length: BLOCK };
    if (h.length < BLOCK) throw tarError(file, undefined, `the header at byte ${pos} is cut short`);
    if (h.every((b) => b === 0)) break;
    if (pos === 0 && h[0] === 0x1f && h[1] === 0x8b) {
      throw new DiffevalError("E_SOURCE", `${file}: is gzip-compressed; diffeval reads plain tar archives: decompress it first (gunzip)`);
    }
    if (++headers > limits.maxHeaders) {
      throw tarError(file, undefined, `more than ${limits.maxHeaders} headers (split it into shards of fewer entries)`);
    }
    const label = pending.path ?? pending.longName ?? headerName(h);
    assertChecksum(h, pos, label, file);
    const type = String.fromCharCode(h[156]);
    const headerSize = tarNumber(h, 124, 12, label, file, "size");
    const meta = "xXgLK".includes(type);
    const dataSize = meta ? headerSize : carriesData(type) ? (pending.size ?? headerSize) : 0;
    const offset = pos + BLOCK;
    if (dataSize > size - offset) {
      throw tarError(file, label, `declares ${dataSize} bytes at byte ${offset}, past the end of the file (${size} bytes): the archive is truncated or the header damaged`);
    }
    if (meta) {
      pending = yield* metaHeader(type, pending, offset, dataSize, label, file);
    } else {
      if (type === "S" || pending.sparse) {
        throw tarError(file, label, "is a sparse file (tar --sparse), which diffeval does not read; re-create the archive without --sparse");
      }
      const name = pending.path ?? pending.longName ?? headerName(h);
      if (Buffer.byteLength(name) > MAX_TAR_NAME_BYTES) throw tarError(file, name.slice(0, 100), `has a name longer than ${MAX_TAR_NAME_BYTES} bytes`);
      entries.push({ name, kind: entryKind(type, name), offset, size: dataSize });
      pending = {};
    }
    pos = offset + Math.ceil(dataSize / BLOCK) * BLOCK;
  }
  return entries;
}

/** What a meta header ('x', 'X', 'g', 'L', 'K') adds to what the next entry will take from it. */
function* metaHeader(type: string, pending: Pending, offset: number, size: number, label: string, file: string): Parse<Pending> {
  if (type === "L") return { ...pending, longName: yield* longName(offset, size, label, file) };
  if (type === "K") {
    assertNameSize(size, label, file); // a long link target: links are not followed, so it is not read
    return pending;
  }
  const records = yield* paxRecords(offset, size, label, file); // 'X': Solaris' older name for 'x'
  return type === "g" ? pending : { ...pending, ...records };
}

/** POSIX: the size field of links, devices, directories and FIFOs is not a data length. */
function carriesData(type: string): boolean {
  return !"123456".includes(type);
}

function entryKind(type: string, name: string): TarEntryKind {
  if (type === "0" || type === "\0" || type === "7") return name.endsWith("/") ? "directory" : "file"; // v7 tar marks directories by a trailing '/'
  if (type === "5") return "directory";
  if (type === "1" || type === "2") return "link";
  return "other";
}

/** NUL-terminated text of a fixed-width header field. */
function field(h: Uint8Array, start: number, length: number): string {
  const bytes = h.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? length : end).toString("utf8");
}

/** ustar `prefix/name` in POSIX headers; `name` alone in GNU and v7 headers. */
function headerName(h: Uint8Array): string {
  const name = field(h, 0, 100);
  const posix = field(h, 257, 6) === "ustar" && h[262] === 0;
  const prefix = posix ? field(h, 345, 155) : "";
  return prefix ? `${prefix}/${name}` : name;
}

function assertChecksum(h: Uint8Array, pos: number, label: string, file: string): void {
  const stored = tarNumber(h, 148, 8, label, file, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += b;
    signed += b >= 128 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw tarError(file, label, `has a bad header checksum at byte ${pos} (stored ${stored}, computed ${unsigned}): the archive is damaged or not a tar file`);
  }
}

/**
 * A numeric header field: octal digits (leading spaces allowed, ended by a space or NUL), or GNU
 * base-256 (first byte 0x80, then a big-endian number; 0xFF marks a negative one, never a size).
 * Values beyond 2^53 are refused rather than rounded.
 */
function tarNumber(h: Uint8Array, start: number, length: number, label: string, file: string, what: string): number {
  const bytes = h.subarray(start, start + length);
  if (bytes[0] & 0x80) {
    if (bytes[0] !== 0x80) throw tarError(file, label, `has a negative or malformed base-256 ${what} field`);
    let v = 0;
    for (let i = 1; i < length; i++) {
      v = v * 256 + bytes[i];
      if (v > Number.MAX_SAFE_INTEGER) throw tarError(file, label, `has a ${what} field beyond 2^53`);
    }
    return v;
  }
  let i = 0;
  while (i < length && bytes[i] === 0x20) i++;
  let v = 0;
  for (; i < length && bytes[i] >= 0x30 && bytes[i] <= 0x37; i++) v = v * 8 + (bytes[i] - 0x30);
  if (i < length && bytes[i] !== 0 && bytes[i] !== 0x20) {
    throw tarError(file, label, `has a ${what} field that is not an octal number ('${field(h, start, length).replace(/[^\x20-\x7e]/g, "?")}')`);
  }
  return v; // at most 12 octal digits: 2^36, exact
}

function assertNameSize(bytes: number, label: string, file: string): void {
  if (bytes > MAX_TAR_NAME_BYTES + 1) throw tarError(file, label, `declares a long name of ${bytes} bytes, more than ${MAX_TAR_NAME_BYTES}`);
}

/** A GNU long name: the data of a type 'L' header, NUL-terminated. */
function* longName(offset: number, bytes: number, label: string, file: string): Parse<string> {
  assertNameSize(bytes, label, file);
  const data = yield { position: offset, length: bytes };
  const end = data.indexOf(0);
  return Buffer.from(data.buffer, data.byteOffset, end < 0 ? data.length : end).toString("utf8");
}

/**
 * pax extended header records, `"%d %s=%s\n", length, keyword, value`, the length counting the
 * whole record (its own digits included). Only `path`, `size` and the GNU.sparse.* family matter
 * here; the others (times, owners, xattrs) are checked for form and left.
 */
function* paxRecords(offset: number, bytes: number, label: string, file: string): Parse<Pending> {
  if (bytes > MAX_PAX_HEADER_BYTES) throw tarError(file, label, `has a pax extended header of ${bytes} bytes, more than ${MAX_PAX_HEADER_BYTES}`);
  const data = Buffer.from(yield { position: offset, length: bytes });
  const out: Pending = {};
  for (let p = 0; p < data.length && data[p] !== 0; ) {
    const record = paxRecord(data, p);
    if (!record) throw tarError(file, label, `has a malformed pax record at byte ${p} of its extended header`);
    const { key, value } = record;
    if (key === "path") {
      if (Buffer.byteLength(value) > MAX_TAR_NAME_BYTES) throw tarError(file, label, `has a pax path longer than ${MAX_TAR_NAME_BYTES} bytes`);
      out.path = value || undefined; // an empty value undoes the keyword (POSIX)
    } else if (key === "size") {
      if (!/^\d{1,15}$/.test(value)) throw tarError(file, label, `has a pax size that is not a decimal number below 10^15 ('${value.slice(0, 40)}')`);
      out.size = Number(value);
    } else if (key.startsWith("GNU.sparse.")) {
      out.sparse = true;
    }
    p += record.length;
  }
  return out;
}

/** One record at `p`, or undefined when it is malformed (a bad length, no '=', no final newline). */
function paxRecord(data: Buffer, p: number): { key: string; value: string; length: number } | undefined {
  let q = p;
  let length = 0;
  while (q < data.length && q - p < 8 && data[q] >= 0x30 && data[q] <= 0x39) length = length * 10 + (data[q++] - 0x30);
  // the record holds at least its digits, a space, "k=" and the newline
  if (q === p || data[q] !== 0x20 || length < q - p + 4 || p + length > data.length || data[p + length - 1] !== 0x0a) return undefined;
  const body = data.subarray(q + 1, p + length - 1);
  const eq = body.indexOf(0x3d);
  if (eq < 1) return undefined;
  return { key: body.subarray(0, eq).toString("utf8"), value: body.subarray(eq + 1).toString("utf8"), length };
}
