/**
 * Images for self-contained reports: `data:` URIs, PNG encoding of decoded pixels, and
 * enlarged crops. Crops are enlarged by pixel replication (sharp's `nearest` kernel), so every
 * source pixel becomes a visible square and no interpolation invents or smooths detail.
 */
import sharp from "sharp";
import type { RgbImage } from "../io/decode.js";

export function dataUri(bytes: Uint8Array, mime: string): string {
  return `data:${mime};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")}`;
}

/** Lossless PNG bytes of RGB pixels. */
export async function pngBytes(img: RgbImage): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** PNG bytes of a crop, each pixel replicated `scale` x `scale` times. */
export async function enlargedCropPng(img: RgbImage, box: CropBox, scale: number): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .extract(box)
    .resize({ width: box.width * scale, height: box.height * scale, kernel: "nearest" })
    .png()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
