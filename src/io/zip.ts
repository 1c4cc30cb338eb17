/**
 * Random access to the entries of a zip archive, on disk or in memory: the central directory is
 * read once and each entry is read (and inflated) only when asked for, so an archive on disk is
 * never held in memory and an entry nobody asks for is never read at all. That is what lets a
 * guided-diffusion reference batch (`VIRTUAL_imagenet256_labeled.npz`: ~2 GB of images under
 * `arr_0` next to a few MB of statistics) give up its `mu`/`sigma` without `arr_0` being touched.
 *
 * Format: PKWARE's APPNOTE.TXT (overall layout, section 4.3.6: entries, then the central
 * directory, then the end records; end of central directory record, 4.3.16; zip64 end record and
 * locator, 4.3.14-4.3.15; zip64 extended information extra field, 4.5.3). numpy's savez writes
 * through Python's zipfile with `force_zip64=True`, so local headers carry zip64 extras; sizes and
 * offsets are taken from the central directory, which holds the real values. CRC-32: node:zlib's.
 *
 * The archive is untrusted: every count, length and offset is checked against the bytes the
 * archive has before anything is read or allocated, and an entry's declared size against what its
 * compressed bytes can hold (deflate's maximum ratio), so a few KB can never ask for gigabytes.
 * The parsing is written once, as generators that yield the byte ranges they need: `openZip`
 * serves them from a file, `zipFromBytes` from a buffer.
 */
import { constants as bufferConstants } from "node:buffer";
import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { Inflate, inflateSync } from "fflate";
import { DiffevalError, type ErrorCode } from "../errors.js";
import { readAt } from "./read-at.js";

export interface ZipEntryInfo {
  name: string;
  /** 0 stored, 8 deflate (the only two numpy and common tools write). */
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

export interface ZipReader {
  file: string;
  entries: ZipEntryInfo[];
  /** The entry's bytes, inflated and CRC-checked. */
  read(entry: ZipEntryInfo): Promise<Uint8Array>;
  /** The first `length` bytes of the entry's content (fewer if it is shorter), without reading the rest. */
  head(entry: ZipEntryInfo, length: number): Promise<Uint8Array>;
  /**
   * File offset of the entry's stored (or deflated) bytes, after its local header; the entry is
   * checked as for `read` (method, encryption, declared size, bytes within the file), so a caller
   * can stream the entry from its own reads (io/array-source.ts reads an image array row by row).
   */
  dataStart(entry: ZipEntryInfo): Promise<number>;
  close(): Promise<void>;
}

/** A zip archive held in memory (an .npz read whole): the same reader, synchronous. */
export interface ZipBytesReader {
  file: string;
  entries: ZipEntryInfo[];
  read(entry: ZipEntryInfo): Uint8Array;
  head(entry: ZipEntryInfo, length: number): Uint8Array;
  dataStart(entry: ZipEntryInfo): number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

const EOCD_BYTES = 22;
const EOCD64_BYTES = 56;
const LOCATOR_BYTES = 20;
const CENTRAL_HEADER_BYTES = 46;
const LOCAL_HEADER_BYTES = 30;

/**
 * Deflate's largest possible expansion: a 258-byte match costs at least 2 bits (a 1-bit length
 * code and a 1-bit distance code), so one compressed byte yields at most 1032 bytes (zlib's
 * technical details, "Maximum compression factor": 1032:1). The slack covers block headers and
 * the literal a run starts from in tiny streams.
 */
export const MAX_DEFLATE_RATIO = 1032;
const DEFLATE_SLACK_BYTES = 1024;

/** The largest entry one Node buffer can hold (buffer.constants.MAX_LENGTH). */
const MAX_ENTRY_BYTES = bufferConstants.MAX_LENGTH - 1;

/** Input handed to the streaming inflater at a time when only an entry's head is wanted. */
const HEAD_CHUNK_BYTES = 4096;

/** A byte range the parser needs; it is answered with exactly those bytes (or fewer, if the file shrank). */
interface ByteRange {
  position: number;
  length: number;
}

type Parse<T> = Generator<ByteRange, T, Uint8Array>;

/** Opens `file` and reads its central directory. `code` is the error code for a malformed archive. */
export async function openZip(file: string, code: ErrorCode = "E_NPZ_FORMAT"): Promise<ZipReader> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const run = <T>(parse: Parse<T>) => runOnFile(parse, fh);
    const entries = await run(centralDirectory(size, file, code));
    return {
      file,
      entries,
      read: (entry) => run(entryContent(entry, size, file, code)),
      head: (entry, length) => run(entryHead(entry, length, size, file, code)),
      dataStart: (entry) => run(entryData(entry, size, file, code)),
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The same reader over an archive already in memory; `file` names it in errors. */
export function zipFromBytes(bytes: Uint8Array, file: string, code: ErrorCode = "E_NPZ_FORMAT"): ZipBytesReader {
  const size = bytes.length;
  const run = <T>(parse: Parse<T>) => runOnBytes(parse, bytes);
  return {
    file,
    entries: run(centralDirectory(size, file, code)),
    read: (entry) => run(entryContent(entry, size, file, code)),
    head: (entry, length) => run(entryHead(entry, length, size, file, code)),
    dataStart: (entry) => run(entryData(entry, size, file, code)),
  };
}

function zipError(file: string, what: string, code: ErrorCode): DiffevalError {
  return new DiffevalError(code, `${file}: not a readable zip archive: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Drivers: answer the parser's byte ranges from a file or a buffer.

async function runOnFile<T>(parse: Parse<T>, fh: FileHandle): Promise<T> {
  let step = parse.next();
  while (!step.done) step = parse.next(await readAt(fh, step.value.position, step.value.length));
  return step.value;
}

function runOnBytes<T>(parse: Parse<T>, bytes: Uint8Array): T {
  let step = parse.next();
  while (!step.done) {
    const { position, length } = step.value;
    step = parse.next(bytes.subarray(position, position + length));
  }
  return step.value;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** `bytes` viewed as a Buffer (for its little-endian readers), without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Where the central directory is, and where the record after it starts (it must end there or before). */
interface DirectoryLocation {
  count: number;
  cdSize: number;
  cdOffset: number;
  /** File position of the end record (zip64 or not) that follows the directory. */
  end: number;
}

function* centralDirectory(size: number, file: string, code: ErrorCode): Parse<ZipEntryInfo[]> {
  const loc = yield* directoryLocation(size, file, code);
  const cd = asBuffer(yield { position: loc.cdOffset, length: loc.cdSize });
  if (cd.length < loc.cdSize) throw zipError(file, "central directory is truncated", code);
  const entries: ZipEntryInfo[] = [];
  let p = 0;
  for (let i = 0; i < loc.count; i++) {
    if (p + CENTRAL_HEADER_BYTES > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw zipError(file, `bad central directory entry ${i}`, code);
    const flags = cd.readUInt16LE(p + 8);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const nameStart = p + CENTRAL_HEADER_BYTES;
    const next = nameStart + nameLen + extraLen + commentLen;
    if (next > cd.length) throw zipError(file, `central directory entry ${i} runs past the directory`, code);
    const entry: ZipEntryInfo = {
      // bit 11: UTF-8 names; otherwise CP437, read as latin1 (exact for the ASCII names numpy writes)
      name: cd.subarray(nameStart, nameStart + nameLen).toString(flags & 0x800 ? "utf8" : "latin1"),
      method: cd.readUInt16LE(p + 10),
      flags,
      crc: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localOffset: cd.readUInt32LE(p + 42),
    };
    applyZip64Extra(entry, cd.subarray(nameStart + nameLen, nameStart + nameLen + extraLen), file, code);
    // Entries precede the central directory (APPNOTE 4.3.6).
    if (entry.localOffset + LOCAL_HEADER_BYTES + entry.compressedSize > loc.cdOffset) {
      throw zipError(file, `entry '${entry.name}' claims ${entry.compressedSize} bytes at offset ${entry.localOffset}, past the entries' area`, code);
    }
    entries.push(entry);
    p = next;
  }
  return entries;
}

/** The end of central directory record, and the zip64 records when it defers to them. */
function* directoryLocation(size: number, file: string, code: ErrorCode): Parse<DirectoryLocation> {
  if (size < EOCD_BYTES) throw zipError(file, "no end-of-central-directory record (the file is too short)", code);
  const tailLen = Math.min(size, EOCD_BYTES + 0xffff); // EOCD + the longest comment
  const tailStart = size - tailLen;
  const tail = asBuffer(yield { position: tailStart, length: tailLen });
  let eocd = -1;
  for (let p = tail.length - EOCD_BYTES; p >= 0; p--) {
    if (tail.readUInt32LE(p) === SIG_EOCD) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw zipError(file, "no end-of-central-directory record", code);
  let loc: DirectoryLocation = {
    count: tail.readUInt16LE(eocd + 10),
    cdSize: tail.readUInt32LE(eocd + 12),
    cdOffset: tail.readUInt32LE(eocd + 16),
    end: tailStart + eocd,
  };
  if (loc.count === 0xffff || loc.cdSize === 0xffffffff || loc.cdOffset === 0xffffffff) {
    loc = yield* zip64Location(tailStart + eocd, file, code);
  }
  if (loc.cdOffset + loc.cdSize > loc.end) {
    throw zipError(file, `central directory (${loc.cdSize} bytes at offset ${loc.cdOffset}) runs past its end record at ${loc.end}`, code);
  }
  if (loc.count * CENTRAL_HEADER_BYTES > loc.cdSize) {
    throw zipError(file, `${loc.count} entries cannot fit in a central directory of ${loc.cdSize} bytes`, code);
  }
  return loc;
}

function* zip64Location(eocdPos: number, file: string, code: ErrorCode): Parse<DirectoryLocation> {
  const locatorPos = eocdPos - LOCATOR_BYTES;
  if (locatorPos < 0) throw zipError(file, "missing zip64 locator", code);
  const locator = asBuffer(yield { position: locatorPos, length: LOCATOR_BYTES });
  if (locator.length < LOCATOR_BYTES || locator.readUInt32LE(0) !== SIG_EOCD64_LOCATOR) throw zipError(file, "missing zip64 locator", code);
  const recordPos = Number(locator.readBigUInt64LE(8));
  if (recordPos + EOCD64_BYTES > locatorPos) throw zipError(file, `zip64 end record offset ${recordPos} is past its locator`, code);
  const rec = asBuffer(yield { position: recordPos, length: EOCD64_BYTES });
  if (rec.length < EOCD64_BYTES || rec.readUInt32LE(0) !== SIG_EOCD64) throw zipError(file, "bad zip64 end record", code);
  return {
    count: Number(rec.readBigUInt64LE(32)),
    cdSize: Number(rec.readBigUInt64LE(40)),
    cdOffset: Number(rec.readBigUInt64LE(48)),
    end: recordPos,
  };
}

/** The zip64 extra field (id 1) holds, in order, whichever of size / compressed / offset overflowed. */
function applyZip64Extra(entry: ZipEntryInfo, extra: Buffer, file: string, code: ErrorCode): void {
  let p = 0;
  while (p + 4 <= extra.length) {
    const id = extra.readUInt16LE(p);
    const len = extra.readUInt16LE(p + 2);
    const end = p + 4 + len;
    if (id === 1) {
      if (end > extra.length) throw zipError(file, `entry '${entry.name}': zip64 extra field runs past the extra data`, code);
      let q = p + 4;
      const next = (): number => {
        if (q + 8 > end) throw zipError(file, `entry '${entry.name}': zip64 extra field is too short for the sizes it must hold`, code);
        const v = Number(extra.readBigUInt64LE(q));
        q += 8;
        return v;
      };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localOffset === 0xffffffff) entry.localOffset = next();
      return;
    }
    p = end;
  }
}

/** Checks what can be checked from the central directory, then yields where the entry's data lies. */
function* entryData(e: ZipEntryInfo, size: number, file: string, code: ErrorCode): Parse<number> {
  if (e.flags & 1) throw new DiffevalError(code, `${file}: entry '${e.name}' is encrypted; diffeval reads plain zip archives`);
  if (e.method !== 0 && e.method !== 8) {
    throw new DiffevalError(code, `${file}: entry '${e.name}': compression method ${e.method} is not supported (only stored and deflate)`);
  }
  assertDeclaredSize(e, file, code);
  const local = asBuffer(yield { position: e.localOffset, length: LOCAL_HEADER_BYTES });
  if (local.length < LOCAL_HEADER_BYTES || local.readUInt32LE(0) !== SIG_LOCAL) throw zipError(file, `bad local header for '${e.name}'`, code);
  const dataStart = e.localOffset + LOCAL_HEADER_BYTES + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (dataStart + e.compressedSize > size) throw zipError(file, `entry '${e.name}' is truncated`, code);
  return dataStart;
}

/**
 * The declared size must be one the stored bytes can produce: equal to them when stored, within
 * deflate's maximum ratio when deflated, and within one buffer. Checked before allocating it.
 */
function assertDeclaredSize(e: ZipEntryInfo, file: string, code: ErrorCode): void {
  if (e.method === 0 && e.size !== e.compressedSize) {
    throw zipError(file, `stored entry '${e.name}' declares ${e.size} bytes but holds ${e.compressedSize}`, code);
  }
  if (e.method === 8 && e.size > e.compressedSize * MAX_DEFLATE_RATIO + DEFLATE_SLACK_BYTES) {
    throw zipError(
      file,
      `entry '${e.name}' declares ${e.size} bytes from ${e.compressedSize} compressed, beyond deflate's maximum ratio of ${MAX_DEFLATE_RATIO}:1 (a damaged header or a decompression bomb)`,
      code,
    );
  }
  if (e.size > MAX_ENTRY_BYTES) {
    throw zipError(file, `entry '${e.name}' declares ${e.size} bytes, more than one buffer holds (${MAX_ENTRY_BYTES})`, code);
  }
}

function* entryContent(e: ZipEntryInfo, size: number, file: string, code: ErrorCode): Parse<Uint8Array> {
  const dataStart = yield* entryData(e, size, file, code);
  const packed = yield { position: dataStart, length: e.compressedSize };
  if (packed.length < e.compressedSize) throw zipError(file, `entry '${e.name}' is truncated`, code);
  const data = e.method === 0 ? packed : inflateExactly(packed, e, file, code);
  if (crc32(data) !== e.crc) throw zipError(file, `entry '${e.name}' fails its CRC-32 check`, code);
  return data;
}

/**
 * Inflates into a buffer one byte longer than the declared size: fflate writes nothing past a
 * buffer it is given, so the result is exactly the declared size only when the stream really
 * ends there (shorter: a truncated stream; the extra byte filled: a stream that goes on).
 */
function inflateExactly(packed: Uint8Array, e: ZipEntryInfo, file: string, code: ErrorCode): Uint8Array {
  const out = allocate(e.size + 1, e, file, code);
  let data: Uint8Array;
  try {
    data = packed.length === 0 ? out.subarray(0, 0) : inflateSync(packed, { out });
  } catch (err) {
    throw zipError(file, `entry '${e.name}' does not inflate (${(err as Error).message})`, code);
  }
  if (data.length !== e.size) {
    const what = data.length > e.size ? "more than" : `${data.length} bytes, not`;
    throw zipError(file, `entry '${e.name}' inflates to ${what} the ${e.size} bytes it declares`, code);
  }
  return data;
}

function allocate(bytes: number, e: ZipEntryInfo, file: string, code: ErrorCode): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch {
    throw new DiffevalError(code, `${file}: entry '${e.name}' needs ${bytes} bytes of memory, which could not be allocated`);
  }
}

/**
 * The first `length` bytes of an entry's content: stored bytes are read as they are; deflated
 * ones are inflated a chunk at a time until enough has come out (no CRC check: the rest is unread).
 */
function* entryHead(e: ZipEntryInfo, length: number, size: number, file: string, code: ErrorCode): Parse<Uint8Array> {
  const dataStart = yield* entryData(e, size, file, code);
  const want = Math.min(length, e.size);
  if (e.method === 0) return yield { position: dataStart, length: want };
  const out = new Uint8Array(want);
  let got = 0;
  const inflater = new Inflate((chunk) => {
    const n = Math.min(chunk.length, want - got);
    out.set(chunk.subarray(0, n), got);
    got += n;
  });
  for (let p = 0; p < e.compressedSize && got < want; p += HEAD_CHUNK_BYTES) {
    const n = Math.min(HEAD_CHUNK_BYTES, e.compressedSize - p);
    const chunk = yield { position: dataStart + p, length: n };
    try {
      inflater.push(chunk, p + n >= e.compressedSize);
    } catch (err) {
      throw zipError(file, `entry '${e.name}' does not inflate (${(err as Error).message})`, code);
    }
  }
  return out.subarray(0, got);
}
