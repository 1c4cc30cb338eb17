/**
 * The preprocessing of the non-Inception encoders (CLIP, DINOv2) as protocol-like names, so that
 * the image-preparing worker threads (which only receive a name) can rebuild it, and so that the
 * feature cache and results record it. Names:
 *   `clip`                    CLIPImageProcessor at 224 with OpenAI's mean/std (CLIP_PREPROCESS_224)
 *   `clip-336`                the same at 336 (CLIP_PREPROCESS_336)
 *   `clip-<size>-<crop>-m<m0>,<m1>,<m2>-s<s0>,<s1>,<s2>`   any other preprocessor_config.json
 *   `dinov2` / `dinov2-<size>` dgm-eval's DINOv2 transform (square bicubic resize, ImageNet mean/std)
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../io/decode.js";
import { CLIP_PREPROCESS_224, CLIP_PREPROCESS_336, preprocessClip, type ClipPreprocessConfig } from "../preprocess/clip.js";
import { DINOV2_SIZE, preprocessDinov2 } from "../preprocess/dinov2.js";

function sameClip(a: ClipPreprocessConfig, b: ClipPreprocessConfig): boolean {
  return a.size === b.size && a.crop === b.crop && a.mean.every((v, i) => v === b.mean[i]) && a.std.every((v, i) => v === b.std[i]);
}

/** The protocol-like name of a CLIP preprocessing config. */
export function clipPreprocessName(cfg: ClipPreprocessConfig): string {
  if (sameClip(cfg, CLIP_PREPROCESS_224)) return "clip";
  if (sameClip(cfg, CLIP_PREPROCESS_336)) return "clip-336";
  return `clip-${cfg.size}-${cfg.crop}-m${cfg.mean.join(",")}-s${cfg.std.join(",")}`;
}

export function dinov2PreprocessName(size = DINOV2_SIZE): string {
  return size === DINOV2_SIZE ? "dinov2" : `dinov2-${size}`;
}

const NUM = "(\\d+(?:\\.\\d+)?(?:e-?\\d+)?)";
const TRIPLE = `${NUM},${NUM},${NUM}`;
const CLIP_RE = new RegExp(`^clip-(\\d+)-(\\d+)-m${TRIPLE}-s${TRIPLE}$`);

/** The config behind a `clip...` name, or undefined for a name that is not CLIP's. */
export function parseClipPreprocessName(name: string): ClipPreprocessConfig | undefined {
  if (name === "clip") return CLIP_PREPROCESS_224;
  if (name === "clip-336") return CLIP_PREPROCESS_336;
  const m = CLIP_RE.exec(name);
  if (!m) return undefined;
  const v = m.slice(1).map(Number);
  return { size: v[0], crop: v[1], mean: [v[2], v[3], v[4]], std: [v[5], v[6], v[7]] };
}

export function parseDinov2PreprocessName(name: string): number | undefined {
  if (name === "dinov2") return DINOV2_SIZE;
  const m = /^dinov2-(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function isEncoderPreprocessName(name: string): boolean {
  return parseClipPreprocessName(name) !== undefined || parseDinov2PreprocessName(name) !== undefined;
}

/** RGB image -> CHW float32 network input under an encoder preprocessing name. */
export function encoderPreprocess(name: string): (img: RgbImage) => Float32Array {
  const clip = parseClipPreprocessName(name);
  if (clip) return (img) => preprocessClip(img, clip);
  const size = parseDinov2PreprocessName(name);
  if (size !== undefined) return (img) => preprocessDinov2(img, size);
  throw new DiffevalError("E_PROTOCOL", `unknown encoder preprocessing '${name}'`);
}
