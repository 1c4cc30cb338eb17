/**
 * A small zip writer for tests that need archives fflate will not write: zip64 records, numpy-style
 * zip64 local extras (`force_zip64=True`), and entries whose data is deliberately broken or whose
 * declared size is a lie (APPNOTE.TXT sections 4.3.7, 4.3.12, 4.3.14-4.3.16, 4.5.3).
 */
import { crc32 } from "node:zlib";
import { deflateSync } from "fflate";

export interface TestZipEntry {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** Replace the stored bytes with 0xFF (an invalid deflate block type), keeping the declared sizes. */
  corrupt?: boolean;
  /** Declared uncompressed size (default: data.length). */
  claimedSize?: number;
}

export interface TestZipOptions {
  /** Zip64 central directory fields and end records, as for archives over 4 GiB. */
  zip64?: boolean;
  /** Zip64 extras in the local headers only, as numpy's savez writes (Python zipfile force_zip64). */
  localZip64?: boolean;
}

export function buildZip(entries: readonly TestZipEntry[], opts: TestZipOptions = {}): Uint8Array {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const packed = e.deflate ? deflateSync(e.data) : e.data;
    const payload = e.corrupt ? Buffer.alloc(packed.length, 0xff) : Buffer.from(packed);
    const size = e.claimedSize ?? e.data.length;
    const crc = crc32(e.data);
    const name = Buffer.from(e.name, "utf8");
    const localExtra = opts.zip64 || opts.localZip64 ? zip64Extra([size, payload.length]) : Buffer.alloc(0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(localExtra.length ? 0xffffffff : payload.length, 18);
    local.writeUInt32LE(localExtra.length ? 0xffffffff : size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    chunks.push(local, name, localExtra, payload);

    const cdExtra = opts.zip64 ? zip64Extra([size, payload.length, offset]) : Buffer.alloc(0);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(0x800, 8);
    cd.writeUInt16LE(e.deflate ? 8 : 0, 10);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : payload.length, 20);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(cdExtra.length, 30);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    central.push(cd, name, cdExtra);
    offset += local.length + name.length + localExtra.length + payload.length;
  }
  const cdBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBytes.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBytes.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdBytes.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  tail.push(eocd);
  return new Uint8Array(Buffer.concat([...chunks, cdBytes, ...tail]));
}

/** Extra field id 1 with the given 8-byte values, in APPNOTE order (size, compressed size, offset). */
function zip64Extra(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(1, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}
