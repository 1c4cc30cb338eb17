/**
 * DINOv2's image preprocessing as dgm-eval applies it (its DINOv2 encoder's transform):
 * `Resize((224, 224), BICUBIC)` on the PIL image, which is Pillow's `Image.resize((224, 224),
 * BICUBIC)` on the 8-bit RGB image (aspect ratio not kept; Pillow's fixed-point 8-bit path, here
 * pil-resample.ts `resizePil8`), then `ToTensor` (float32 x / 255) and `Normalize` with the
 * ImageNet mean and std (float32 `(x - mean) / std`), channels first.
 */
import type { RgbImage } from "../io/decode.js";
import { normaliseChw } from "./clip.js";
import { resizePil8 } from "./pil-resample.js";

export const DINOV2_SIZE = 224;
/** timm's IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** The 8-bit image after the resize: HWC size x size x 3. */
export function dinov2Resize(img: RgbImage, size = DINOV2_SIZE): RgbImage {
  const data = img.width === size && img.height === size ? img.data : resizePil8(img.data, img.width, img.height, 3, size, size, "bicubic");
  return { width: size, height: size, data };
}

/** The model input: CHW 3 x size x size float32. */
export function preprocessDinov2(img: RgbImage, size = DINOV2_SIZE): Float32Array {
  const { data } = dinov2Resize(img, size);
  // ToTensor: uint8 -> float32, then a float32 division by 255 (correctly rounded: fround of the double quotient).
  return normaliseChw(data, size * size, IMAGENET_MEAN, IMAGENET_STD, (v) => Math.fround(v / 255));
}
