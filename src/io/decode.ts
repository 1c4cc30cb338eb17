/**
 * Image bytes -> 8-bit RGB pixels, the way the reference tools see them: pytorch-fid, clean-fid
 * and torch-fidelity all do `PIL.Image.open(path).convert("RGB")` (Pillow 9.4 made the fixtures).
 *
 * What that means, and how each case is reproduced with sharp (libvips):
 * - No colour management: Pillow ignores embedded ICC profiles -> sharp `ignoreIcc: true`.
 * - No EXIF rotation: Pillow's `open` never applies Orientation -> sharp `autoOrient: false`.
 * - 8-bit grey (L, 1-bit, 2/4-bit PNG) -> the grey value in all three channels (Convert.c `l2rgb`).
 * - Alpha (LA, RGBA, palette with tRNS) is dropped, never composited over a background
 *   (Convert.c `rgba2rgb` copies the colour bytes). sharp leaves alpha unpremultiplied when no
 *   resize/blur is asked for; we read the colour bands and ignore the alpha band.
 * - Palette images -> palette colours (libvips expands the palette exactly like Convert.c `p2rgb`).
 * - CMYK: Pillow's JPEG plugin reads CMYK JPEGs with rawmode "CMYK;I" (it assumes Adobe's inverted
 *   convention for every CMYK JPEG; libvips reads the same values), then Convert.c `cmyk2rgb`
 *   computes, per colour channel, `nk - MULDIV255(c, nk)` with `nk = 255 - k` (no ICC
 *   transform). sharp would push CMYK through an ICC profile, so we ask for the raw CMYK bands
 *   and apply Pillow's formula ourselves.
 * - 16-bit: Pillow 9.4 opens a 16-bit grey PNG as mode "I" and `convert("RGB")` clips it, so any
 *   value above 255 becomes 255 (white). That is a Pillow bug, not a convention worth keeping:
 *   diffeval scales 16-bit grey properly, `round(v / 257)`. 16-bit RGB(A) PNGs Pillow reads with
 *   rawmode "RGB;16B", which keeps the high byte (`v >> 8`); we do the same, so those images
 *   still match Pillow bit for bit.
 * - Truncated or corrupt data is an error (Pillow raises "image file is truncated"); sharp's
 *   `failOn: "error"` turns libjpeg/libpng errors and premature ends into errors while letting
 *   through the warnings Pillow also ignores (e.g. "extraneous bytes before marker").
 * - Decompression bombs: refused above `DEFAULT_MAX_PIXELS`, Pillow's DecompressionBombError
 *   threshold (2 x Image.MAX_IMAGE_PIXELS).
 * - BMP, which libvips cannot read, goes through the small decoder in `bmp.ts`.
 */
import sharp, { type Sharp } from "sharp";
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../types.js";
import { bmpSize, decodeBmp, isBmp } from "./bmp.js";

export type { RgbImage } from "../types.js";

export interface DecodeOptions {
  /** Refuse images with more pixels than this (default `DEFAULT_MAX_PIXELS`). */
  maxPixels?: number;
}

/**
 * Formats decoded through sharp, each checked pixel for pixel against Pillow 9.4. libvips also
 * renders SVG and PDF and reads AVIF/HEIF, which Pillow 9.4 does not open: a stray .svg renamed
 * .png must fail as it would in pytorch-fid. GIF is left out on purpose: libvips blanks the
 * colour of transparent GIF pixels where Pillow keeps the palette colour.
 */
const PILLOW_FORMATS = new Set(["jpeg", "png", "webp", "tiff"]);

/** Pillow's DecompressionBombError limit: 2 * Image.MAX_IMAGE_PIXELS (89,478,485). */
export const DEFAULT_MAX_PIXELS = 178_956_970;

export async function decodeImage(input: Uint8Array, name: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (input.length === 0) throw decodeError(name, "the file is empty");
  if (isBmp(input)) {
    const { width, height } = bmpSize(input, name); // refused before the pixels are allocated
    assertPixelLimit(width, height, name, maxPixels);
    return decodeBmp(input, name);
  }
  const meta = await sharpMetadata(input, name, maxPixels);
  if (!PILLOW_FORMATS.has(meta.format ?? "")) {
    throw decodeError(name, `${meta.format ?? "unknown"} data is not an image format the reference tools (Pillow) read`);
  }
  assertPixelLimit(meta.width, meta.height, name, maxPixels);
  try {
    if (meta.space === "cmyk") return await decodeCmyk(input, maxPixels);
    if (meta.depth === "ushort") return await decode16(input, maxPixels, meta.space === "grey16" || meta.space === "b-w");
    if (meta.space === "b-w") return await decodeGrey8(input, maxPixels);
    return await decodeRgb8(input, maxPixels);
  } catch (e) {
    throw sharpError(e, name, maxPixels);
  }
}

interface ImageHeader {
  width: number;
  height: number;
  space: string | undefined;
  depth: string | undefined;
  format: string | undefined;
}

/** `maxPixels` false: header only (metadata), where our own check names the dimensions. */
function sharpInput(input: Uint8Array, maxPixels: number | false): Sharp {
  return sharp(input, {
    failOn: "error",
    limitInputPixels: maxPixels,
    ignoreIcc: true,
    autoOrient: false,
  });
}

async function sharpMetadata(input: Uint8Array, name: string, maxPixels: number): Promise<ImageHeader> {
  try {
    const m = await sharpInput(input, false).metadata();
    if (!m.width || !m.height) throw new Error("no image dimensions in the header");
    return { width: m.width, height: m.height, space: m.space, depth: m.depth, format: m.format };
  } catch (e) {
    throw sharpError(e, name, maxPixels);
  }
}

interface RawPixels {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
  channels: number;
}

async function rawPixels(pipeline: Sharp, depth: "uchar" | "ushort"): Promise<RawPixels> {
  const { data, info } = await pipeline.raw({ depth }).toBuffer({ resolveWithObject: true });
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const pixels = depth === "ushort" ? new Uint16Array(bytes.slice().buffer) : bytes;
  return { data: pixels, width: info.width, height: info.height, channels: info.channels };
}

/** 8-bit colour (RGB, RGBA, palette): the first three bands, alpha ignored. */
async function decodeRgb8(input: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const raw = await rawPixels(sharpInput(input, maxPixels).toColourspace("srgb"), "uchar");
  if (raw.channels === 3) return { width: raw.width, height: raw.height, data: raw.data as Uint8Array };
  return firstBandsAsRgb(raw, (v) => v);
}

/** 8-bit grey (with or without alpha): band 0 replicated, as Convert.c `l2rgb` / `la2rgb`. */
async function decodeGrey8(input: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const raw = await rawPixels(sharpInput(input, maxPixels).toColourspace("b-w"), "uchar");
  return greyAsRgb(raw, (v) => v);
}

/** 16-bit: grey scaled by round(v / 257) (deliberately not Pillow's clipping); RGB by v >> 8 as Pillow. */
async function decode16(input: Uint8Array, maxPixels: number, grey: boolean): Promise<RgbImage> {
  if (grey) {
    const raw = await rawPixels(sharpInput(input, maxPixels).toColourspace("grey16"), "ushort");
    return greyAsRgb(raw, (v) => Math.round(v / 257));
  }
  const raw = await rawPixels(sharpInput(input, maxPixels).toColourspace("rgb16"), "ushort");
  return firstBandsAsRgb(raw, (v) => v >> 8);
}

/**
 * CMYK bands as stored (no ICC transform), then Pillow's formula. libvips reads CMYK JPEGs with
 * the same inversion as Pillow's "CMYK;I" rawmode, with or without Adobe's APP14 marker
 * (checked against Pillow 9.4 on files with and without it).
 */
async function decodeCmyk(input: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const pipeline = sharpInput(input, maxPixels).pipelineColourspace("cmyk").toColourspace("cmyk");
  return cmykToRgbPil(await rawPixels(pipeline, "uchar"));
}

/** Pillow Convert.c `cmyk2rgb`: out = CLIP8(nk - MULDIV255(c, nk)), nk = 255 - k. */
function cmykToRgbPil(raw: RawPixels): RgbImage {
  const n = raw.width * raw.height;
  const out = new Uint8Array(n * 3);
  const src = raw.data;
  const ch = raw.channels;
  for (let i = 0; i < n; i++) {
    const p = i * ch;
    const nk = 255 - src[p + 3];
    for (let c = 0; c < 3; c++) {
      out[i * 3 + c] = clip8(nk - mulDiv255(src[p + c], nk));
    }
  }
  return { width: raw.width, height: raw.height, data: out };
}

/** Pillow's MULDIV255 (ImPlatform.h): (a*b + 128) scaled by 257/65536, i.e. a*b/255 rounded. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

function clip8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function firstBandsAsRgb(raw: RawPixels, to8: (v: number) => number): RgbImage {
  const n = raw.width * raw.height;
  const out = new Uint8Array(n * 3);
  const ch = raw.channels;
  if (ch < 3) return greyAsRgb(raw, to8);
  for (let i = 0; i < n; i++) {
    out[i * 3] = to8(raw.data[i * ch]);
    out[i * 3 + 1] = to8(raw.data[i * ch + 1]);
    out[i * 3 + 2] = to8(raw.data[i * ch + 2]);
  }
  return { width: raw.width, height: raw.height, data: out };
}

function greyAsRgb(raw: RawPixels, to8: (v: number) => number): RgbImage {
  const n = raw.width * raw.height;
  const out = new Uint8Array(n * 3);
  const ch = raw.channels;
  for (let i = 0; i < n; i++) {
    const v = to8(raw.data[i * ch]);
    out[i * 3] = v;
    out[i * 3 + 1] = v;
    out[i * 3 + 2] = v;
  }
  return { width: raw.width, height: raw.height, data: out };
}

function assertPixelLimit(width: number, height: number, name: string, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new DiffevalError(
      "E_IMAGE_TOO_LARGE",
      `${name}: ${width}x${height} = ${width * height} pixels exceeds the limit of ${maxPixels} ` +
        `(a guard against decompression bombs, as Pillow's); resize the image or raise the limit`,
    );
  }
}

function decodeError(name: string, what: string, cause?: unknown): DiffevalError {
  return new DiffevalError(
    "E_IMAGE_DECODE",
    `${name}: cannot decode image: ${what}. The file is corrupt, truncated or not in a format ` +
      `diffeval reads (PNG, JPEG, WebP, TIFF, BMP); re-export it or remove it from the source`,
    { cause },
  );
}

function sharpError(e: unknown, name: string, maxPixels: number): DiffevalError {
  if (e instanceof DiffevalError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(msg)) {
    return new DiffevalError(
      "E_IMAGE_TOO_LARGE",
      `${name}: image exceeds the limit of ${maxPixels} pixels (a guard against decompression bombs); ` +
        `resize the image or raise the limit`,
      { cause: e },
    );
  }
  return decodeError(name, msg.replace(/\s+/g, " ").trim(), e);
}
