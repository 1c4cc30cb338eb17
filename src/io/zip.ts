/**
 * Random access to the entries of a zip archive on disk: the central directory is read once and
 * each entry is read (and inflated) only when asked for, so the archive is never held in memory
 * and an entry nobody asks for is never read at all. That is what lets a guided-diffusion
 * reference batch (`VIRTUAL_imagenet256_labeled.npz`: ~2 GB of images under `arr_0` next to a few
 * MB of statistics) give up its `mu`/`sigma` without `arr_0` being touched.
 *
 * Format: PKWARE's APPNOTE.TXT (end of central directory record, section 4.3.16; zip64 end record
 * and locator, 4.3.14-4.3.15; zip64 extended information extra field, 4.5.3). numpy's savez writes
 * through Python's zipfile with `force_zip64=True`, so local headers carry zip64 extras; sizes and
 * offsets are taken from the central directory, which holds the real values. CRC-32: node:zlib's.
 */
import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { inflateSync } from "fflate";
import { DiffevalError, type ErrorCode } from "../errors.js";

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
  close(): Promise<void>;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

/** Opens `file` and reads its central directory. `code` is the error code for a malformed archive. */
export async function openZip(file: string, code: ErrorCode = "E_NPZ_FORMAT"): Promise<ZipReader> {
  const fh = await open(file, "r");
  try {
    const entries = await centralDirectory(fh, file, code);
    return { file, entries, read: (entry) => readEntry(fh, file, entry, code), close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * The bytes of the entries `wanted` accepts, keyed by entry name, plus every entry name (to list
 * what an archive holds without reading it). Entries not wanted are never read.
 */
export async function readZipEntries(
  file: string,
  wanted: (name: string) => boolean,
  code: ErrorCode = "E_NPZ_FORMAT",
): Promise<{ names: string[]; data: Map<string, Uint8Array> }> {
  const zip = await openZip(file, code);
  try {
    const data = new Map<string, Uint8Array>();
    for (const entry of zip.entries) {
      if (wanted(entry.name)) data.set(entry.name, await zip.read(entry));
    }
    return { names: zip.entries.map((e) => e.name), data };
  } finally {
    await zip.close();
  }
}

function zipError(file: string, what: string, code: ErrorCode): DiffevalError {
  return new DiffevalError(code, `${file}: not a readable zip archive: ${what}`);
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

async function centralDirectory(fh: FileHandle, file: string, code: ErrorCode): Promise<ZipEntryInfo[]> {
  const { size } = await fh.stat();
  const tailLen = Math.min(size, 22 + 0xffff); // EOCD (22 bytes) + the longest comment
  const tail = await readAt(fh, size - tailLen, tailLen);
  let eocd = -1;
  for (let p = tail.length - 22; p >= 0; p--) {
    if (tail.readUInt32LE(p) === SIG_EOCD) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw zipError(file, "no end-of-central-directory record", code);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    ({ count, cdSize, cdOffset } = await zip64Directory(fh, file, size - tailLen + eocd, code));
  }
  const cd = await readAt(fh, cdOffset, cdSize);
  if (cd.length < cdSize) throw zipError(file, "central directory is truncated", code);
  const entries: ZipEntryInfo[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw zipError(file, `bad central directory entry ${i}`, code);
    const flags = cd.readUInt16LE(p + 8);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const entry: ZipEntryInfo = {
      // bit 11: UTF-8 names; otherwise CP437, read as latin1 (exact for the ASCII names numpy writes)
      name: cd.subarray(p + 46, p + 46 + nameLen).toString(flags & 0x800 ? "utf8" : "latin1"),
      method: cd.readUInt16LE(p + 10),
      flags,
      crc: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localOffset: cd.readUInt32LE(p + 42),
    };
    applyZip64Extra(entry, cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
    entries.push(entry);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

async function zip64Directory(
  fh: FileHandle,
  file: string,
  eocdPos: number,
  code: ErrorCode,
): Promise<{ count: number; cdSize: number; cdOffset: number }> {
  const loc = await readAt(fh, eocdPos - 20, 20);
  if (loc.length < 20 || loc.readUInt32LE(0) !== SIG_EOCD64_LOCATOR) throw zipError(file, "missing zip64 locator", code);
  const rec = await readAt(fh, Number(loc.readBigUInt64LE(8)), 56);
  if (rec.length < 56 || rec.readUInt32LE(0) !== SIG_EOCD64) throw zipError(file, "bad zip64 end record", code);
  return {
    count: Number(rec.readBigUInt64LE(32)),
    cdSize: Number(rec.readBigUInt64LE(40)),
    cdOffset: Number(rec.readBigUInt64LE(48)),
  };
}

/** The zip64 extra field (id 1) holds, in order, whichever of size / compressed / offset overflowed. */
function applyZip64Extra(entry: ZipEntryInfo, extra: Buffer): void {
  let p = 0;
  while (p + 4 <= extra.length) {
    const id = extra.readUInt16LE(p);
    const len = extra.readUInt16LE(p + 2);
    if (id === 1) {
      let q = p + 4;
      const next = (): number => {
        const v = Number(extra.readBigUInt64LE(q));
        q += 8;
        return v;
      };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localOffset === 0xffffffff) entry.localOffset = next();
      return;
    }
    p += 4 + len;
  }
}

async function readEntry(fh: FileHandle, file: string, e: ZipEntryInfo, code: ErrorCode): Promise<Uint8Array> {
  if (e.flags & 1) throw new DiffevalError(code, `${file}: entry '${e.name}' is encrypted; diffeval reads plain zip archives`);
  if (e.method !== 0 && e.method !== 8) {
    throw new DiffevalError(code, `${file}: entry '${e.name}': compression method ${e.method} is not supported (only stored and deflate)`);
  }
  const local = await readAt(fh, e.localOffset, 30);
  if (local.length < 30 || local.readUInt32LE(0) !== SIG_LOCAL) throw zipError(file, `bad local header for '${e.name}'`, code);
  const dataStart = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  const packed = await readAt(fh, dataStart, e.compressedSize);
  if (packed.length < e.compressedSize) throw zipError(file, `entry '${e.name}' is truncated`, code);
  let data: Uint8Array;
  try {
    data = e.method === 0 ? new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength) : inflateSync(packed, { out: new Uint8Array(e.size) });
  } catch (err) {
    throw zipError(file, `entry '${e.name}' does not inflate (${(err as Error).message})`, code);
  }
  if (data.length !== e.size || crc32(data) !== e.crc) throw zipError(file, `entry '${e.name}' fails its CRC-32 check`, code);
  return data;
}
