/**
 * Centre crop to a square and resize, for reference sets stored at one resolution (the COCO-30k
 * protocol). The crop is the largest centred square, offset floor((w - s) / 2), floor((h - s) / 2)
 * with s = min(w, h) (the box `img.crop((left, top, left + s, top + s))` takes in Pillow). The
 * resize is Pillow's 8-bit BICUBIC (`Image.resize((r, r), Image.BICUBIC)` on the cropped RGB image),
 * reproduced exactly by pil-resample.ts, so a Python pipeline doing the same gets the same pixels.
 */
import type { RgbImage } from "../io/decode.js";
import { resizePil8 } from "./pil-resample.js";

/** The largest centred square: its top-left corner and side. */
export function centreSquare(width: number, height: number): { left: number; top: number; size: number } {
  const size = Math.min(width, height);
  return { left: Math.floor((width - size) / 2), top: Math.floor((height - size) / 2), size };
}

/** Crops `img` to its centred square and resizes it to `side` x `side` with Pillow's 8-bit bicubic. */
export function centreCropResize(img: RgbImage, side: number): RgbImage {
  const { left, top, size } = centreSquare(img.width, img.height);
  const cropped = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * img.width + left) * 3;
    cropped.set(img.data.subarray(from, from + size * 3), y * size * 3);
  }
  const data = size === side ? cropped : resizePil8(cropped, size, size, 3, side, side, "bicubic");
  return { width: side, height: side, data };
}
