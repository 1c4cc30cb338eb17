/**
 * clean-fid's "clean" protocol (clean-fid 0.1.35 `resize.py`, `make_resizer("PIL", False,
 * "bicubic", (299, 299))`): each RGB channel becomes a float32 Pillow "F" image
 * (`Image.fromarray(x.astype(np.float32), mode="F")`), is resized with `Image.BICUBIC` (Pillow's
 * antialiased convolution, a = -0.5), clipped to [0, 255] (`np.asarray(img).clip(0, 255)`), and
 * the network input is `(x - 128) / 128` in float32 (clean-fid `inception_torchscript.py`,
 * `InceptionV3W.forward` with `resize_inside=False`).
 */
import type { RgbImage } from "../io/decode.js";
import { resizePilFloatRgb } from "./pil-resample.js";

export const CLEAN_SIZE = 299;

/** The resized image before normalisation: HWC, size x size x 3, float32 values in [0, 255]. */
export function resizeClean(img: RgbImage, size = CLEAN_SIZE): Float32Array {
  // Each band is resized independently, exactly as clean-fid's per-channel "F" images.
  const r = resizePilFloatRgb(img.data, img.width, img.height, size, size, "bicubic");
  for (let i = 0; i < r.length; i++) r[i] = r[i] < 0 ? 0 : r[i] > 255 ? 255 : r[i];
  return r;
}

/** The network input: CHW 3 x size x size, float32, (clip(resized) - 128) / 128. */
export function preprocessClean(img: RgbImage, size = CLEAN_SIZE): Float32Array {
  const hwc = resizeClean(img, size);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    // float32 subtraction (fround), then an exact division by a power of two
    out[i] = Math.fround(hwc[i * 3] - 128) / 128;
    out[plane + i] = Math.fround(hwc[i * 3 + 1] - 128) / 128;
    out[2 * plane + i] = Math.fround(hwc[i * 3 + 2] - 128) / 128;
  }
  return out;
}
