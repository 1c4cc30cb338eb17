/**
 * The parts of a JPEG header that say how it was compressed: the quantisation tables (DQT) and
 * the frame header (SOF: size, components, their sampling factors and table ids, baseline or
 * progressive). Only the marker segments before the first scan (SOS) are read, so this costs a
 * few hundred bytes per file, never a decode.
 *
 * Marker syntax from ITU-T T.81 (ISO/IEC 10918-1) Annex B: a marker is 0xFF followed by a code
 * (extra 0xFF fill bytes allowed, B.1.1.2); SOI, EOI, RSTn and TEM stand alone, every other
 * marker is followed by a big-endian 16-bit length that counts itself. DQT (B.2.4.1): per table
 * one byte Pq|Tq (precision 0 = 8-bit, 1 = 16-bit; table id 0..3), then 64 values in zig-zag
 * order. SOF (B.2.2): P, Y, X, Nf, then per component C, H|V, Tq.
 */

export interface JpegComponent {
  id: number;
  h: number;
  v: number;
  /** Quantisation table id used by this component. */
  tq: number;
}

export interface JpegHeader {
  /** Quantisation tables by id (0..3), each 64 values in zig-zag order, as stored. */
  quantTables: Map<number, Uint16Array>;
  width?: number;
  height?: number;
  components: JpegComponent[];
  progressive: boolean;
}

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
/** SOF0..SOF15 less DHT (C4), JPG (C8) and DAC (CC). */
const SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
const PROGRESSIVE_SOF = new Set([0xc2, 0xc6, 0xca, 0xce]);

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === SOI && bytes[2] === 0xff;
}

/** The header fields of a JPEG, or undefined when the bytes are not a JPEG or the header is cut short. */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | undefined {
  if (!isJpeg(bytes)) return undefined;
  const header: JpegHeader = { quantTables: new Map(), components: [], progressive: false };
  let p = 2;
  while (p + 1 < bytes.length) {
    if (bytes[p] !== 0xff) return undefined; // not at a marker: corrupt header
    while (p < bytes.length && bytes[p] === 0xff) p++; // fill bytes (B.1.1.2)
    const code = bytes[p++];
    if (code === SOS || code === EOI) break;
    if (code === 0x01 || (code >= 0xd0 && code <= 0xd7)) continue; // TEM, RSTn: no length
    if (p + 2 > bytes.length) return undefined;
    const length = (bytes[p] << 8) | bytes[p + 1];
    const end = p + length;
    if (length < 2 || end > bytes.length) return undefined;
    const segment = bytes.subarray(p + 2, end);
    if (code === DQT && !readQuantTables(segment, header.quantTables)) return undefined;
    if (SOF.has(code)) {
      if (!readFrame(segment, header)) return undefined;
      header.progressive = PROGRESSIVE_SOF.has(code);
    }
    p = end;
  }
  return header;
}

function readQuantTables(segment: Uint8Array, tables: Map<number, Uint16Array>): boolean {
  let p = 0;
  while (p < segment.length) {
    const precision = segment[p] >> 4;
    const id = segment[p] & 0x0f;
    const size = precision === 0 ? 1 : 2;
    // Tq names one of four table slots (T.81 B.2.4.1; libjpeg's get_dqt refuses n >= NUM_QUANT_TBLS).
    if (precision > 1 || id > 3 || p + 1 + 64 * size > segment.length) return false;
    const table = new Uint16Array(64);
    for (let i = 0; i < 64; i++) {
      const q = p + 1 + i * size;
      table[i] = size === 1 ? segment[q] : (segment[q] << 8) | segment[q + 1];
    }
    tables.set(id, table);
    p += 1 + 64 * size;
  }
  return true;
}

function readFrame(segment: Uint8Array, header: JpegHeader): boolean {
  if (segment.length < 6) return false;
  const count = segment[5];
  if (segment.length < 6 + 3 * count) return false;
  header.height = (segment[1] << 8) | segment[2];
  header.width = (segment[3] << 8) | segment[4];
  header.components = [];
  for (let i = 0; i < count; i++) {
    const q = 6 + 3 * i;
    header.components.push({ id: segment[q], h: segment[q + 1] >> 4, v: segment[q + 1] & 0x0f, tq: segment[q + 2] });
  }
  return true;
}

/** "4:2:0", "4:4:4", "4:2:2", "4:4:0", "grey" or "H1xV1,H2xV2,..." for anything else. */
export function chromaSubsampling(header: JpegHeader): string {
  const c = header.components;
  if (c.length === 1) return "grey";
  const [y, ...chroma] = c;
  if (c.length === 3 && chroma.every((k) => k.h === 1 && k.v === 1)) {
    const key = `${y.h}x${y.v}`;
    const names: Record<string, string> = { "1x1": "4:4:4", "2x2": "4:2:0", "2x1": "4:2:2", "1x2": "4:4:0" };
    if (names[key]) return names[key];
  }
  return c.map((k) => `${k.h}x${k.v}`).join(",");
}
