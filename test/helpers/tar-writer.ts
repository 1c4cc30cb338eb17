/**
 * A small tar writer for tests, so that no test needs a `tar` binary: POSIX ustar headers (with
 * the prefix field for names over 100 bytes), pax extended headers ('x', 'g'), GNU long names
 * (`././@LongLink`, type 'L'), GNU base-256 sizes, and the damage hostile-input tests need (a wrong
 * checksum, a declared size that is a lie, missing end blocks). Layout per POSIX.1-2001 "pax", ustar
 * Interchange Format; GNU extensions per the GNU tar manual, "Basic Tar Format".
 */
import { concatBytes as concat } from "./image-bytes.js";

export interface TestTarEntry {
  name: string;
  data?: Uint8Array | string;
  /** Typeflag (default '0'). */
  type?: string;
  linkname?: string;
  /** How a name too long for ustar is stored: pax `path` record (default), GNU long name, or ustar prefix/name. */
  longName?: "pax" | "gnu" | "ustar";
  /** Extra pax records written in an 'x' header before the entry (e.g. { size: "..." }). */
  pax?: Record<string, string>;
  /** Header magic: POSIX "ustar\0" + "00" (default), GNU "ustar  \0", or none (v7). */
  magic?: "posix" | "gnu" | "v7";
  /** Size written in the header instead of the data's length. */
  declaredSize?: number | bigint;
  /** Size field as GNU base-256 instead of octal. */
  base256?: boolean;
  /** Add this to the correct checksum. */
  checksumDelta?: number;
}

export interface TestTarOptions {
  /** Zero blocks at the end (default 2). */
  endBlocks?: number;
}

const enc = new TextEncoder();
const bytesOf = (d: Uint8Array | string | undefined) => (typeof d === "string" ? enc.encode(d) : (d ?? new Uint8Array(0)));

export function buildTar(entries: readonly TestTarEntry[], opts: TestTarOptions = {}): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const e of entries) {
    const data = bytesOf(e.data);
    const nameBytes = enc.encode(e.name);
    let headerName = e.name;
    let prefix = "";
    const pax: Record<string, string> = { ...e.pax };
    if (nameBytes.length > 100) {
      const how = e.longName ?? "pax";
      if (how === "pax") pax.path = e.name;
      else if (how === "gnu") blocks.push(...withData(header({ name: "././@LongLink", type: "L", size: nameBytes.length + 1, magic: "gnu" }), concat(nameBytes, new Uint8Array(1))));
      else [prefix, headerName] = splitUstar(e.name);
      headerName = how === "ustar" ? headerName : e.name.slice(0, 99);
    }
    if (Object.keys(pax).length) blocks.push(...paxHeader("x", `PaxHeaders/${e.name.slice(0, 80)}`, pax));
    const size = e.declaredSize ?? data.length;
    const h = header({ name: headerName, prefix, type: e.type ?? "0", size, base256: e.base256, linkname: e.linkname, magic: e.magic ?? "posix", checksumDelta: e.checksumDelta });
    blocks.push(...withData(h, data));
  }
  for (let i = 0; i < (opts.endBlocks ?? 2); i++) blocks.push(new Uint8Array(512));
  return concat(...blocks);
}

/** A pax extended header ('x' per entry, 'g' global) holding `records`. */
export function paxHeader(type: "x" | "g", name: string, records: Record<string, string>): Uint8Array[] {
  const body = concat(...Object.entries(records).map(([k, v]) => paxRecord(k, v)));
  return withData(header({ name, type, size: body.length, magic: "posix" }), body);
}

/** `"%d %s=%s\n"` where the length counts the whole record, its own digits included. */
export function paxRecord(key: string, value: string): Uint8Array {
  const rest = enc.encode(` ${key}=${value}\n`).length;
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return enc.encode(`${len} ${key}=${value}\n`);
}

interface HeaderFields {
  name: string;
  prefix?: string;
  type: string;
  size: number | bigint;
  base256?: boolean;
  linkname?: string;
  magic: "posix" | "gnu" | "v7";
  checksumDelta?: number;
}

/** One 512-byte header with its checksum (unsigned sum, the checksum field counted as spaces). */
export function header(f: HeaderFields): Uint8Array {
  const h = new Uint8Array(512);
  h.set(enc.encode(f.name).subarray(0, 100), 0);
  putOctal(h, 100, 8, 0o644);
  putOctal(h, 108, 8, 1000);
  putOctal(h, 116, 8, 1000);
  if (f.base256) putBase256(h, 124, 12, BigInt(f.size));
  else putOctal(h, 124, 12, f.size);
  putOctal(h, 136, 12, 1_700_000_000);
  h[156] = f.type.charCodeAt(0);
  if (f.linkname) h.set(enc.encode(f.linkname).subarray(0, 100), 157);
  if (f.magic === "posix") h.set(enc.encode("ustar\x0000"), 257);
  if (f.magic === "gnu") h.set(enc.encode("ustar  \x00"), 257);
  if (f.prefix) h.set(enc.encode(f.prefix).subarray(0, 155), 345);
  h.fill(0x20, 148, 156);
  let sum = h.reduce((a, b) => a + b, 0) + (f.checksumDelta ?? 0);
  putOctal(h, 148, 7, sum); // six digits, NUL, then the space already there
  return h;
}

/** A header followed by its data, padded to whole blocks. */
function withData(h: Uint8Array, data: Uint8Array): Uint8Array[] {
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  return [h, padded];
}

/** Octal digits filling `length - 1` bytes, then NUL. */
function putOctal(h: Uint8Array, at: number, length: number, value: number | bigint): void {
  const s = value.toString(8).padStart(length - 1, "0");
  if (s.length > length - 1) throw new Error(`tar-writer: ${value} does not fit ${length - 1} octal digits (use base256)`);
  h.set(enc.encode(s), at);
  h[at + length - 1] = 0;
}

function putBase256(h: Uint8Array, at: number, length: number, value: bigint): void {
  let v = value;
  for (let i = length - 1; i > 0; i--) {
    h[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  h[at] = 0x80;
}

/** ustar's split of a long name at a '/': prefix (<= 155 bytes) and name (<= 100). */
function splitUstar(name: string): [string, string] {
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === "/" && i <= 155 && name.length - i - 1 <= 100) return [name.slice(0, i), name.slice(i + 1)];
  }
  throw new Error(`tar-writer: ${name} cannot be split into ustar prefix and name`);
}
