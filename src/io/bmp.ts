/**
 * A small BMP decoder: libvips (and so sharp) has no BMP loader, and both pytorch-fid and
 * clean-fid list .bmp among their image extensions. Reads what Pillow's BmpImagePlugin reads in
 * practice: uncompressed 1/4/8-bit palette, 16/24/32-bit, BI_BITFIELDS, bottom-up or top-down,
 * OS/2 (12-byte) and Windows (40+ byte) headers. RLE and embedded JPEG/PNG are refused.
 *
 * Conventions matching Pillow 9.4 `convert("RGB")`:
 * - palette images -> palette colours (Pillow's "P"/"L"/"1" modes all map through the palette);
 * - 32-bit -> the B, G, R bytes, the fourth byte ignored ("BGRX"/"BGRA" rawmodes, alpha dropped);
 * - 5- and 6-bit fields -> v * 255 / max, truncated (Unpack.c `ImagingUnpackBGR15` / `BGR16`).
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../types.js";

export function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d; // "BM"
}

interface BmpHeader {
  dataOffset: number;
  width: number;
  height: number;
  topDown: boolean;
  bpp: number;
  compression: number;
  masks: [number, number, number] | null;
  palette: Uint8Array | null; // RGB triplets
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/** The image size from the header alone, so a caller can refuse a huge image before it is decoded. */
export function bmpSize(buf: Uint8Array, name: string): { width: number; height: number } {
  const { width, height } = bmpHeader(buf, name);
  return { width, height };
}

export function decodeBmp(buf: Uint8Array, name: string): RgbImage {
  const h = bmpHeader(buf, name);
  const stride = Math.floor((h.bpp * h.width + 31) / 32) * 4;
  if (h.dataOffset + stride * h.height > buf.length) fail(name, "pixel data is truncated");
  const out = new Uint8Array(h.width * h.height * 3);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const px = pixelReader(h, buf, view, name);
  for (let y = 0; y < h.height; y++) {
    const row = h.dataOffset + stride * (h.topDown ? y : h.height - 1 - y);
    for (let x = 0; x < h.width; x++) px(row, x, out, (y * h.width + x) * 3);
  }
  return { width: h.width, height: h.height, data: out };
}

type PixelReader = (row: number, x: number, out: Uint8Array, o: number) => void;

function pixelReader(h: BmpHeader, buf: Uint8Array, view: DataView, name: string): PixelReader {
  if (h.bpp <= 8) {
    const pal = h.palette;
    if (!pal) return fail(name, "palette image without a palette");
    const perByte = 8 / h.bpp;
    const mask = (1 << h.bpp) - 1;
    return (row, x, out, o) => {
      const byte = buf[row + Math.floor(x / perByte)];
      const idx = (byte >> ((perByte - 1 - (x % perByte)) * h.bpp)) & mask;
      const p = Math.min(idx, pal.length / 3 - 1) * 3; // out-of-range index: Pillow pads with black; clamp
      out[o] = pal[p];
      out[o + 1] = pal[p + 1];
      out[o + 2] = pal[p + 2];
    };
  }
  if (h.bpp === 24) {
    return (row, x, out, o) => {
      const p = row + x * 3;
      out[o] = buf[p + 2];
      out[o + 1] = buf[p + 1];
      out[o + 2] = buf[p];
    };
  }
  const masks = h.masks ?? (h.bpp === 16 ? [0x7c00, 0x3e0, 0x1f] : [0xff0000, 0xff00, 0xff]);
  const fields = masks.map(maskField);
  const read = h.bpp === 16 ? (p: number) => view.getUint16(p, true) : (p: number) => view.getUint32(p, true);
  const bytes = h.bpp / 8;
  return (row, x, out, o) => {
    const v = read(row + x * bytes);
    for (let c = 0; c < 3; c++) out[o + c] = fields[c](v);
  };
}

/** Extracts one colour field and scales it to 8 bits the way Pillow's unpackers do. */
function maskField(mask: number): (v: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  const bits = Math.log2(max + 1);
  if (bits >= 8) {
    const drop = bits - 8;
    return (v) => ((v & mask) >>> shift) >>> drop;
  }
  return (v) => Math.floor((((v & mask) >>> shift) * 255) / max);
}

function bmpHeader(buf: Uint8Array, name: string): BmpHeader {
  if (buf.length < 26) fail(name, "file too short for a BMP header");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dataOffset = view.getUint32(10, true);
  const dibSize = view.getUint32(14, true);
  let width: number, height: number, bpp: number;
  let compression = BI_RGB;
  let colorsUsed = 0;
  let paletteEntry = 4;
  if (dibSize === 12) {
    width = view.getUint16(18, true);
    height = view.getInt16(20, true);
    bpp = view.getUint16(24, true);
    paletteEntry = 3;
  } else if (dibSize >= 40 && buf.length >= 14 + 40) {
    width = view.getInt32(18, true);
    height = view.getInt32(22, true);
    bpp = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    colorsUsed = view.getUint32(46, true);
  } else {
    return fail(name, `unsupported BMP header size ${dibSize}`);
  }
  if (width <= 0 || height === 0) fail(name, `bad BMP dimensions ${width}x${height}`);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) fail(name, `unsupported BMP bit depth ${bpp}`);
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (compression !== BI_RGB && !bitfields) {
    fail(name, `unsupported BMP compression ${compression} (RLE or embedded JPEG/PNG)`);
  }
  let masks: [number, number, number] | null = null;
  let afterHeader = 14 + dibSize;
  if (bitfields) {
    const at = 14 + 40; // masks follow the 40-byte header, or sit inside a V2+ header at the same place
    if (buf.length < at + 12) fail(name, "truncated BMP bitfield masks");
    masks = [view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true)];
    if (dibSize === 40) afterHeader += compression === BI_ALPHABITFIELDS ? 16 : 12;
  }
  let palette: Uint8Array | null = null;
  if (bpp <= 8) {
    const count = colorsUsed > 0 && colorsUsed <= 1 << bpp ? colorsUsed : 1 << bpp;
    if (afterHeader + count * paletteEntry > buf.length) fail(name, "truncated BMP palette");
    palette = new Uint8Array(count * 3);
    for (let i = 0; i < count; i++) {
      const p = afterHeader + i * paletteEntry;
      palette[i * 3] = buf[p + 2];
      palette[i * 3 + 1] = buf[p + 1];
      palette[i * 3 + 2] = buf[p];
    }
  }
  return { dataOffset, width, height: Math.abs(height), topDown: height < 0, bpp, compression, masks, palette };
}

function fail(name: string, what: string): never {
  throw new DiffevalError(
    "E_IMAGE_DECODE",
    `${name}: cannot decode image: ${what}. Re-export it as PNG or an uncompressed BMP, or remove it from the source`,
  );
}
