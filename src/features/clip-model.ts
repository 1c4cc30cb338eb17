/**
 * The one CLIP model of diffeval: a Hugging Face `CLIPModel` checkpoint folder read once, its
 * towers converted to ONNX once, and the embeddings CMMD (`--encoder clip`), `diffeval clipscore`
 * and a sweep's `clip_score` are computed from. All three go through `readClipCheckpoint`, so they
 * accept the same folders, refuse the same ones and share the converted graphs.
 *
 * Checkpoint: a folder holding `config.json`, `model.safetensors` and `preprocessor_config.json`
 * (plus `vocab.json`, `merges.txt`, `tokenizer_config.json` for the text tower), or the path of
 * the weight file in such a folder.
 *
 * preprocessor_config.json is required. The image preprocessing is part of what a CLIP number
 * means, and transformers itself refuses a folder without it (`CLIPImageProcessor.from_pretrained`
 * raises, so there is no reference value to match); a default guessed from the image size would
 * label a fine-tuned model's features `clip` although its processor may differ. The message says
 * where to get the file.
 *
 * Converted graphs: `<cache>/onnx/clip-<sha12>-v<converter>-c<config8>.onnx` for the vision tower
 * (the name `--encoder clip` has always used, so its caches stay valid) and the same name with
 * `-text` before `.onnx` for the text tower. `sha12` is the start of the weights' sha256 and
 * `config8` of the parsed config.json's: the same weights under another config build other graphs.
 * A tower is converted only when its file is missing, so the encoder's vision graph is reused by
 * clipscore (which then converts only the text tower), and the other way round.
 *
 * Embeddings are the raw projected ones (`image_embeds`, `text_embeds`, not normalised); the
 * scores normalise them (metrics/clip-score.ts, metrics/cmmd.ts).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";
import { CACHE_FILE, writeFileAtomic } from "../io/atomic.js";
import { decodeImage } from "../io/decode.js";
import type { Env } from "../models/cache.js";
import { buildClipTextOnnx, buildClipVisionOnnx, CLIP_CONVERTER_VERSION, parseClipConfig, type ClipConfig, type ClipTower } from "../models/clip-onnx.js";
import { readSafetensors } from "../models/safetensors.js";
import { openSession, type DeviceName, type ResolvedDevice } from "../models/session.js";
import { clipConfigFromPreprocessorJson, preprocessClip, type ClipPreprocessConfig } from "../preprocess/clip.js";
import { loadClipTokenizer, type ClipFlavour, type ClipTokenizer } from "../text/clip-tokenizer.js";
import { encoderOnnxCachePath, hashWeightsFile, isFolder, readWeightsBytes, readWeightsJson } from "./encoder-weights.js";

/** The vision graph's input and output (clip-onnx.ts). */
export const CLIP_VISION_INPUT = "pixel_values";
export const CLIP_IMAGE_OUTPUT = "image_embeds";

/** A CLIP checkpoint folder, read and checked; no graph built yet. */
export interface ClipCheckpoint {
  /** The folder holding config.json, preprocessor_config.json and the tokenizer files. */
  dir: string;
  /** The safetensors weight file. */
  weightsPath: string;
  /** sha256 of the weight file: what results record. */
  weightsSha256: string;
  config: ClipConfig;
  preprocess: ClipPreprocessConfig;
}

/** A checkpoint with both towers open, for scoring image-prompt pairs. */
export interface ClipModel extends ClipCheckpoint {
  tokenizer: ClipTokenizer;
  vision: ort.InferenceSession;
  text: ort.InferenceSession;
  device: ResolvedDevice;
  close(): Promise<void>;
}

export interface ClipOpenOptions {
  device?: DeviceName;
  /** One-line notices (conversions) for stderr. */
  log?: (line: string) => void;
  env?: Env;
}

/** The checkpoint folder at `weights` (a folder, or the weight file inside one). */
export async function readClipCheckpoint(weights: string, env: Env = process.env): Promise<ClipCheckpoint> {
  const folder = await isFolder(weights);
  const dir = folder ? weights : path.dirname(weights);
  const weightsPath = folder ? path.join(dir, "model.safetensors") : weights;
  const configFile = path.join(dir, "config.json");
  const config = parseClipConfig(await readWeightsJson(configFile, "a Hugging Face CLIPModel config.json"), configFile);
  const preprocess = await readClipPreprocessing(dir, config);
  if (!existsSync(weightsPath)) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `${weightsPath}: missing; a CLIP checkpoint folder holds config.json, model.safetensors (only the safetensors layout is read) and preprocessor_config.json`,
    );
  }
  return { dir, weightsPath, weightsSha256: await hashWeightsFile(weightsPath, env), config, preprocess };
}

/** The folder's preprocessor_config.json (required: see the header), checked against the vision tower. */
async function readClipPreprocessing(dir: string, config: ClipConfig): Promise<ClipPreprocessConfig> {
  const file = path.join(dir, "preprocessor_config.json");
  if (!existsSync(file)) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `${file}: missing. The image preprocessing of a CLIP model comes from this file (transformers refuses the folder without it too); ` +
        `copy the preprocessor_config.json of the checkpoint the model was trained from, e.g. ` +
        `https://huggingface.co/openai/clip-vit-large-patch14/resolve/main/preprocessor_config.json for a ViT-L/14 at 224`,
    );
  }
  const pre = clipConfigFromPreprocessorJson(await readWeightsJson(file, "a CLIPImageProcessor preprocessor_config.json"), file);
  if (pre.crop !== config.vision.imageSize) {
    throw new DiffevalError(
      "E_WEIGHTS_LAYOUT",
      `${file}: crops to ${pre.crop} pixels but the vision tower takes ${config.vision.imageSize}x${config.vision.imageSize} images (config.json vision_config.image_size)`,
    );
  }
  return pre;
}

/** `<cache>/onnx/clip-<sha12>-v<ver>-c<config8>.onnx` (vision), `...-text.onnx` (text). */
export function clipOnnxCachePath(weightsSha256: string, tower: ClipTower, config: ClipConfig, env: Env = process.env): string {
  if (!/^[0-9a-f]{64}$/i.test(weightsSha256)) throw new DiffevalError("E_INTERNAL", `clipOnnxCachePath: not a sha256: ${weightsSha256}`);
  const vision = encoderOnnxCachePath("clip", weightsSha256, CLIP_CONVERTER_VERSION, config, env);
  return tower === "vision" ? vision : vision.replace(/\.onnx$/, "-text.onnx");
}

/**
 * The converted graphs of `towers`, building the missing ones from the safetensors file (read
 * once; every missing tower is built, and so validated, before any is written).
 */
export async function ensureClipOnnx(
  ckpt: ClipCheckpoint,
  towers: readonly ClipTower[],
  opts: Pick<ClipOpenOptions, "log" | "env"> = {},
): Promise<Record<ClipTower, string | undefined>> {
  const paths: Record<ClipTower, string | undefined> = { vision: undefined, text: undefined };
  for (const t of towers) paths[t] = clipOnnxCachePath(ckpt.weightsSha256, t, ckpt.config, opts.env);
  const missing = towers.filter((t) => !existsSync(paths[t]!));
  if (missing.length === 0) return paths;
  const what = `${missing.join(" and ")} tower${missing.length > 1 ? "s" : ""}`;
  opts.log?.(`converting ${ckpt.weightsPath} (${what}) to ONNX (once; cached in ${path.dirname(paths[missing[0]]!)})`);
  const sd = readSafetensors(await readWeightsBytes(ckpt.weightsPath), ckpt.weightsPath);
  const built = missing.map((t) => ({ t, bytes: t === "vision" ? buildClipVisionOnnx(sd, ckpt.config) : buildClipTextOnnx(sd, ckpt.config) }));
  for (const { t, bytes } of built) await writeFileAtomic(paths[t]!, bytes, CACHE_FILE);
  return paths;
}

/** The checkpoint at `weights` with both towers open on `device` (the text tower follows the vision tower's device). */
export async function openClipModel(weights: string, opts: ClipOpenOptions = {}): Promise<ClipModel> {
  const ckpt = await readClipCheckpoint(weights, opts.env);
  const tokenizer = await loadClipTokenizer(ckpt.dir);
  const paths = await ensureClipOnnx(ckpt, ["vision", "text"], opts);
  const v = await openSession(paths.vision!, opts.device ?? "auto");
  let t;
  try {
    t = await openSession(paths.text!, v.device);
  } catch (e) {
    await v.session.release();
    throw e;
  }
  const text = t.session;
  return {
    ...ckpt,
    tokenizer,
    vision: v.session,
    text,
    device: v.device,
    async close() {
      await v.session.release();
      await text.release();
    },
  };
}

/** Raw projected text embeddings, `texts.length x projection_dim`. */
export async function embedTexts(model: ClipModel, texts: readonly string[], flavour: ClipFlavour = "openai", batchSize = 64): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const ctx = model.tokenizer.contextLength;
  if (ctx !== model.config.text.maxPositionEmbeddings) {
    throw new DiffevalError("E_WEIGHTS_LAYOUT", `${model.dir}: tokenizer context ${ctx} differs from max_position_embeddings ${model.config.text.maxPositionEmbeddings}`);
  }
  const out = new Float32Array(texts.length * dim);
  for (let s = 0; s < texts.length; s += batchSize) {
    const chunk = texts.slice(s, s + batchSize);
    const ids = model.tokenizer.encodeBatch(chunk, { flavour });
    const big = BigInt64Array.from(ids, (v) => BigInt(v));
    const r = await model.text.run({ input_ids: new ort.Tensor("int64", big, [chunk.length, ctx]) });
    out.set(r.text_embeds.data as Float32Array, s * dim);
  }
  return out;
}

/** Raw projected image embeddings of image files, `files.length x projection_dim`. */
export async function embedImages(model: ClipModel, files: readonly string[], batchSize = 16): Promise<Float32Array> {
  const dim = model.config.projectionDim;
  const side = model.preprocess.crop;
  const per = 3 * side * side;
  const out = new Float32Array(files.length * dim);
  for (let s = 0; s < files.length; s += batchSize) {
    const chunk = files.slice(s, s + batchSize);
    const pixels = new Float32Array(chunk.length * per);
    for (let i = 0; i < chunk.length; i++) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(chunk[i]));
      } catch (e) {
        throw new DiffevalError("E_IMAGE_DECODE", `${chunk[i]}: cannot read (${(e as Error).message})`);
      }
      pixels.set(preprocessClip(await decodeImage(bytes, chunk[i]), model.preprocess), i * per);
    }
    const r = await model.vision.run({ [CLIP_VISION_INPUT]: new ort.Tensor("float32", pixels, [chunk.length, 3, side, side]) });
    out.set(r[CLIP_IMAGE_OUTPUT].data as Float32Array, s * dim);
  }
  return out;
}
