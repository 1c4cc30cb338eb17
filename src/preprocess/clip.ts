/**
 * CLIP's image preprocessing, as Hugging Face `CLIPImageProcessor` in transformers 5 (the
 * torchvision-backed processor that made encoders/reference/clip_input_*.npy) computes it with the
 * `openai/clip-vit-*` `preprocessor_config.json`:
 *
 * 1. resize so the shortest edge is `size` (`get_resize_output_image_size(..., default_to_square=
 *    False)`: the short side becomes `size`, the long side `int(size * long / short)`, truncated)
 *    with torch's uint8 antialiased bicubic (`resizeTorchAa8`: Pillow's coefficients, but rounded
 *    to int16 with a per-dimension precision, so about 0.5% of pixels differ by one level from
 *    Pillow's 22-bit `resizePil8`; the fixtures confirm torch's: bit-exact vs off by 1/255);
 *    `resampler: "pil"` selects Pillow's 8-bit path (the pre-v5 slow processor) instead;
 * 2. centre crop `crop` x `crop`: torchvision `center_crop`, offsets `round((h - crop) / 2)`,
 *    `round((w - crop) / 2)` with Python's ties-to-even round ("pil" mode: numpy's floor);
 * 3. rescale and normalise fused as transformers does: float32 `(x - 255 mean) / (255 std)`;
 * 4. channels first: CHW float32, 3 x crop x crop.
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../io/decode.js";
import { describeJson } from "../io/read-json.js";
import { resizePil8 } from "./pil-resample.js";

export interface ClipPreprocessConfig {
  /** `size.shortest_edge`: the short side after the resize. */
  size: number;
  /** `crop_size`: the side of the square centre crop. */
  crop: number;
  /** Per-channel `image_mean` (RGB). */
  mean: readonly [number, number, number];
  /** Per-channel `image_std` (RGB). */
  std: readonly [number, number, number];
}

/** OpenAI CLIP's normalisation (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** The `openai/clip-vit-*-patch14` / `-patch32` processor: shortest edge 224, crop 224. */
export const CLIP_PREPROCESS_224: ClipPreprocessConfig = { size: 224, crop: 224, mean: CLIP_MEAN, std: CLIP_STD };

/** `openai/clip-vit-large-patch14-336` (CMMD's encoder): shortest edge 336, crop 336. */
export const CLIP_PREPROCESS_336: ClipPreprocessConfig = { size: 336, crop: 336, mean: CLIP_MEAN, std: CLIP_STD };

/** transformers' `rescale_factor` for 1/255, as the config stores it. */
const RESCALE = 0.00392156862745098;

/**
 * The largest `size.shortest_edge` and `crop_size` accepted: far beyond any CLIP processor (224
 * and 336 for OpenAI's, 384 for SigLIP-style ones), and equal to the vision tower's cap on
 * image_size (models/transformer-onnx.ts CONFIG_LIMITS.imageSide), which the crop must match.
 * The resize writes shortest_edge x (shortest_edge x aspect) pixels per image, so the cap also
 * bounds that work.
 */
export const CLIP_MAX_SIDE = 4096;

/**
 * The most pixels the shortest-edge resize may produce before the centre crop: 2^26 (200 MB of
 * 8-bit RGB). The resize keeps the aspect ratio, so a tiny 100000x1 image would otherwise become
 * 224 x 22,400,000 (15 GB) before being cropped to 224 x 224; within the cap any aspect ratio up
 * to about 1300:1 at 224 (4:1 at the largest shortest edge, 4096) still resizes as transformers does.
 */
export const CLIP_MAX_RESIZED_PIXELS = 2 ** 26;

/**
 * The config a Hugging Face `preprocessor_config.json` describes (`size.shortest_edge`,
 * `crop_size`, `image_mean`, `image_std`), `name` being the file. Refuses settings this module
 * does not reproduce and values out of range, naming the field (E_WEIGHTS_LAYOUT, as for an
 * unsupported config.json): sides integers from 1 to CLIP_MAX_SIDE, a square crop, mean finite,
 * std finite and positive, `rescale_factor` 1/255, bicubic (`resample` 3), every step on.
 *
 * For text that has not been parsed yet (a fuzz case, a file): `clipConfigFromPreprocessorJson(
 * parseJsonText(text, name, "E_WEIGHTS_FORMAT", "a CLIPImageProcessor preprocessor_config.json"), name)`.
 */
export function clipConfigFromPreprocessorJson(json: unknown, name = "preprocessor_config.json"): ClipPreprocessConfig {
  const fail = (what: string) =>
    new DiffevalError(
      "E_WEIGHTS_LAYOUT",
      `${name}: ${what}; not a CLIPImageProcessor configuration diffeval reproduces (shortest-edge bicubic resize, square centre crop, /255, mean/std)`,
    );
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw fail("not a JSON object");
  const j = json as Record<string, unknown>;
  const side = (v: unknown, key: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > CLIP_MAX_SIDE) {
      throw fail(`${key} is ${shown(v)}, expected an integer from 1 to ${CLIP_MAX_SIDE}`);
    }
    return v;
  };
  const size = side(typeof j.size === "number" ? j.size : field(j.size, "shortest_edge"), "size.shortest_edge");
  const crop = side(typeof j.crop_size === "number" ? j.crop_size : field(j.crop_size, "height"), "crop_size.height");
  if (typeof j.crop_size !== "number" && field(j.crop_size, "width") !== undefined && field(j.crop_size, "width") !== crop) {
    throw fail(`crop_size.width ${shown(field(j.crop_size, "width"))} differs from crop_size.height ${crop} (only square crops)`);
  }
  const mean = triple(j.image_mean, "image_mean", () => true, "finite numbers", fail);
  const std = triple(j.image_std, "image_std", (v) => v > 0, "finite positive numbers", fail);
  if (j.resample !== undefined && j.resample !== 3) throw fail(`resample ${shown(j.resample)} is not 3 (bicubic)`);
  for (const step of ["do_resize", "do_center_crop", "do_rescale", "do_normalize"]) {
    if (j[step] === false) throw fail(`${step} is false`);
  }
  if (j.rescale_factor !== undefined && !(typeof j.rescale_factor === "number" && Math.abs(j.rescale_factor - RESCALE) < 1e-15)) {
    throw fail(`rescale_factor ${shown(j.rescale_factor)} is not 1/255`);
  }
  return { size, crop, mean, std };
}

/** A value in an error message: a number as written, anything else by kind and excerpt. */
function shown(v: unknown): string {
  return typeof v === "number" ? String(v) : describeJson(v);
}

/** `obj[key]` when `obj` is a plain object, else undefined. */
function field(obj: unknown, key: string): unknown {
  return typeof obj === "object" && obj !== null && !Array.isArray(obj) ? (obj as Record<string, unknown>)[key] : undefined;
}

/** Three finite numbers passing `ok` (a per-channel RGB setting). */
function triple(
  v: unknown,
  key: string,
  ok: (x: number) => boolean,
  what: string,
  fail: (what: string) => Error,
): readonly [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x) && ok(x))) {
    throw fail(`${key} is ${shown(v)}, expected 3 ${what} (R, G, B)`);
  }
  return [v[0], v[1], v[2]];
}

/** The resize target of `get_resize_output_image_size(default_to_square=False)`: [width, height]. */
export function clipResizeSize(width: number, height: number, shortestEdge: number): [number, number] {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  // Python: int(size * long / short), double arithmetic then truncation.
  const newLong = Math.trunc((shortestEdge * long) / short);
  return width <= height ? [shortestEdge, newLong] : [newLong, shortestEdge];
}

/** The 8-bit image after the resize and the centre crop (HWC, crop x crop x 3). */
export function clipResizeCrop(img: RgbImage, cfg: ClipPreprocessConfig = CLIP_PREPROCESS_224, resampler: ClipResampler = "torch"): RgbImage {
  const [rw, rh] = clipResizeSize(img.width, img.height, cfg.size);
  if (rw * rh > CLIP_MAX_RESIZED_PIXELS) {
    throw new DiffevalError(
      "E_IMAGE_TOO_LARGE",
      `a ${img.width}x${img.height} image: CLIP's shortest-edge resize to ${cfg.size} would make it ${rw}x${rh}, ` +
        `over ${CLIP_MAX_RESIZED_PIXELS} pixels (an aspect ratio no photo has); crop the image or remove it from the source`,
    );
  }
  const same = rw === img.width && rh === img.height;
  const resized = same
    ? img.data
    : resampler === "pil"
      ? resizePil8(img.data, img.width, img.height, 3, rw, rh, "bicubic")
      : resizeTorchAa8(img.data, img.width, img.height, 3, rw, rh);
  return resampler === "pil" ? centreCrop8({ width: rw, height: rh, data: resized }, cfg.crop) : centreCrop8({ width: rw, height: rh, data: resized }, cfg.crop, true);
}

export type ClipResampler = "torch" | "pil";

interface AaCoefficients {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  /** int16 fixed-point weights, ksize per output. */
  weights: Int32Array;
  precision: number;
}

/** torch's antialiased bicubic kernel (a = -0.5), in its operation order. */
function torchAaCubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

function torchAaCoefficients(inSize: number, outSize: number): AaCoefficients {
  const scale = inSize / outSize;
  const support = scale >= 1.0 ? 2 * scale : 2;
  const invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const w = new Float64Array(outSize * ksize);
  let wtMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    let xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    xsize = Math.min(Math.max(xsize, 0), ksize);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const v = torchAaCubic((j + xmin - center + 0.5) * invscale);
      w[i * ksize + j] = v;
      total += v;
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) {
        w[i * ksize + j] /= total;
        wtMax = Math.max(wtMax, w[i * ksize + j]);
      }
    }
    start[i] = xmin;
    count[i] = xsize;
  }
  let precision = 0;
  for (; precision < 22; precision++) {
    const next = Math.trunc(0.5 + wtMax * 2 ** (precision + 1));
    if (next >= 1 << 15) break;
  }
  const weights = new Int32Array(outSize * ksize);
  for (let k = 0; k < w.length; k++) {
    const v = w[k] * 2 ** precision;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { ksize, start, count, weights, precision };
}

/**
 * torch's uint8 antialiased bicubic resize (`F.interpolate(x_uint8, mode="bicubic",
 * antialias=True)`, what torchvision's `resize` runs on uint8 CPU tensors): Pillow's coefficients
 * rounded to int16 with a per-dimension precision, horizontal pass then vertical, each rounded
 * and clipped to 0..255. HWC in, HWC out.
 */
export function resizeTorchAa8(src: Uint8Array, w: number, h: number, ch: number, outW: number, outH: number): Uint8Array {
  let img = src;
  let curW = w;
  if (outW !== w) {
    const c = torchAaCoefficients(w, outW);
    const out = new Uint8Array(outW * h * ch);
    const half = c.precision > 0 ? 1 << (c.precision - 1) : 0;
    for (let y = 0; y < h; y++) {
      const row = y * w * ch;
      for (let xx = 0; xx < outW; xx++) {
        const k = xx * c.ksize;
        const s = row + c.start[xx] * ch;
        for (let b = 0; b < ch; b++) {
          let ss = half;
          for (let x = 0; x < c.count[xx]; x++) ss += src[s + x * ch + b] * c.weights[k + x];
          const v = ss >> c.precision;
          out[(y * outW + xx) * ch + b] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
    }
    img = out;
    curW = outW;
  }
  if (outH !== h) {
    const c = torchAaCoefficients(h, outH);
    const rowLen = curW * ch;
    const out = new Uint8Array(rowLen * outH);
    const half = c.precision > 0 ? 1 << (c.precision - 1) : 0;
    for (let yy = 0; yy < outH; yy++) {
      const k = yy * c.ksize;
      for (let i = 0; i < rowLen; i++) {
        let ss = half;
        for (let y = 0; y < c.count[yy]; y++) ss += img[(c.start[yy] + y) * rowLen + i] * c.weights[k + y];
        const v = ss >> c.precision;
        out[yy * rowLen + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    img = out;
  }
  return img === src ? src.slice() : img;
}

/**
 * transformers `center_crop` on an HWC uint8 array: top = (h - crop) // 2, left = (w - crop) // 2;
 * where the image is smaller than the crop it is zero-padded around, centred the same way.
 */
function centreCrop8(img: RgbImage, crop: number, roundHalfEven = false): RgbImage {
  const { width: w, height: h } = img;
  const out = new Uint8Array(crop * crop * 3);
  if (w >= crop && h >= crop) {
    const off = (d: number) => (roundHalfEven ? roundHalfEvenInt(d / 2) : Math.floor(d / 2));
    const top = off(h - crop);
    const left = off(w - crop);
    for (let y = 0; y < crop; y++) {
      const from = ((top + y) * w + left) * 3;
      out.set(img.data.subarray(from, from + crop * 3), y * crop * 3);
    }
    return { width: crop, height: crop, data: out };
  }
  // Padding case (only for a shortest edge below the crop size): pad to at least crop x crop with
  // the image centred at top (H - h) // 2, left (W - w) // 2, then crop the centre.
  const H = Math.max(h, crop);
  const W = Math.max(w, crop);
  const padTop = Math.floor((H - h) / 2);
  const padLeft = Math.floor((W - w) / 2);
  const top = Math.floor((H - crop) / 2);
  const left = Math.floor((W - crop) / 2);
  for (let y = 0; y < crop; y++) {
    const sy = top + y - padTop;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < crop; x++) {
      const sx = left + x - padLeft;
      if (sx < 0 || sx >= w) continue;
      const s = (sy * w + sx) * 3;
      const o = (y * crop + x) * 3;
      out[o] = img.data[s];
      out[o + 1] = img.data[s + 1];
      out[o + 2] = img.data[s + 2];
    }
  }
  return { width: crop, height: crop, data: out };
}

/** Python's round() of a double to an integer (ties to even). */
function roundHalfEvenInt(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The model input: CHW 3 x crop x crop float32, `CLIPImageProcessor`'s `pixel_values[0]`. */
export function preprocessClip(img: RgbImage, cfg: ClipPreprocessConfig = CLIP_PREPROCESS_224): Float32Array {
  const { data } = clipResizeCrop(img, cfg);
  // transformers' torchvision processor fuses rescale and normalise: float32 mean / rescale and
  // std / rescale (x 255 in float32), then (x - mean255) / std255 on the float32 pixel values.
  const mean255 = cfg.mean.map((m) => Math.fround(Math.fround(m) * 255));
  const std255 = cfg.std.map((s) => Math.fround(Math.fround(s) * 255));
  return normaliseChw(data, cfg.crop * cfg.crop, mean255, std255, (v) => v);
}

/**
 * HWC uint8 to CHW float32: `scale(v)` gives the float32 value in [0, 1], then float32
 * `(x - mean) / std` with float32 mean and std (numpy and torch alike).
 */
export function normaliseChw(
  hwc: Uint8Array,
  plane: number,
  mean: readonly number[],
  std: readonly number[],
  scale: (v: number) => number,
): Float32Array {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = Math.fround(Math.fround(scale(v) - m) / s);
  }
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = table[hwc[i * 3]];
    out[plane + i] = table[256 + hwc[i * 3 + 1]];
    out[2 * plane + i] = table[512 + hwc[i * 3 + 2]];
  }
  return out;
}
