/**
 * The feature spaces diffeval can measure in ("encoders"), and how each one's weights become a
 * runnable ONNX model:
 *   inception  the FID Inception network (pool3, 2048-d; resolve-model.ts, unchanged)
 *   clip       a Hugging Face CLIPModel's vision tower + visual_projection: `image_embeds`, the raw
 *              (not normalised) projected embedding; input as CLIPImageProcessor makes it from the
 *              folder's preprocessor_config.json
 *   dinov2     a torch-hub DINOv2 ViT: the normalised class token (`x_norm_clstoken`); input as
 *              dgm-eval's DINOv2 transform makes it
 *
 * `--weights` for clip is a Hugging Face folder (config.json, model.safetensors,
 * preprocessor_config.json) or its model.safetensors; for dinov2 a .pth with a config.json (the
 * constructor arguments) next to it, or the folder holding both. The converted graph is cached at
 * `<cacheDir>/onnx/<encoder>-<sha12>-v<converter version>.onnx`, keyed by the sha256 of the weight
 * file, and the image preprocessing travels as a protocol-like name (encoder-preprocess.ts).
 *
 * Without `--weights`, the weights are those of a registry entry (models/registry.ts), chosen with
 * `--encoder-weights ID` (default: openai/clip-vit-large-patch14 for clip, dinov2_vitl14 for
 * dinov2), kept in `<cacheDir>/weights/<id with / as -->/`. Files missing there are downloaded
 * (with progress) into a staging folder and moved in only once every file has arrived, so a failed
 * download leaves nothing behind; each is verified where the registry knows its sha256, otherwise
 * reported as unverified with the sha256 of the copy. For DINOv2 the entry's constructor arguments
 * are written as config.json. $DIFFEVAL_ENCODER_BASE_URL replaces the upstream URLs with
 * `<base>/<id>/<file name>` (a mirror; the tests' local server).
 */
import { createHash } from "node:crypto";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { cacheDir, hashMemoPath } from "../models/cache.js";
import { buildClipVisionOnnx, CLIP_CONVERTER_VERSION, parseClipConfig, type ClipConfig } from "../models/clip-onnx.js";
import { buildDinov2Onnx, checkDinov2Layout, DINOV2_CONVERTER_VERSION, parseDinov2Config } from "../models/dinov2-onnx.js";
import { sha256WithMemo } from "../models/ensure-weights.js";
import { readStateDict, type StateDict } from "../models/pth.js";
import { downloadVerified, type ProgressCallback } from "../models/download.js";
import { getEncoderWeightsEntry, type EncoderWeightsEntry } from "../models/registry.js";
import { readSafetensors } from "../models/safetensors.js";
import { CLIP_PREPROCESS_224, CLIP_PREPROCESS_336, clipConfigFromPreprocessorJson, type ClipPreprocessConfig } from "../preprocess/clip.js";
import { DINOV2_SIZE } from "../preprocess/dinov2.js";
import { clipPreprocessName, dinov2PreprocessName } from "./encoder-preprocess.js";
import type { FeatureRunner } from "./extract.js";

export const ENCODER_NAMES = ["inception", "clip", "dinov2"] as const;
export type EncoderName = (typeof ENCODER_NAMES)[number];
export const DEFAULT_ENCODER: EncoderName = "inception";

export function parseEncoderName(name: string): EncoderName {
  const n = name.trim().toLowerCase();
  if (!(ENCODER_NAMES as readonly string[]).includes(n)) {
    throw new DiffevalError("E_USAGE", `unknown encoder '${name}': choose from ${ENCODER_NAMES.join(", ")}`);
  }
  return n as EncoderName;
}

/** A non-Inception encoder, ready to open a session on. */
export interface ResolvedEncoder {
  encoder: Exclude<EncoderName, "inception">;
  onnxPath: string;
  /** sha256 of the weight file (model.safetensors / the .pth): what results record. */
  weightsSha256: string;
  weightsPath: string;
  /** The preprocessing's protocol-like name (encoder-preprocess.ts). */
  protocol: string;
  inputName: string;
  inputSize: number;
  /** The output every metric uses, and its width. */
  outputName: string;
  dim: number;
}

export interface ResolveEncoderOptions {
  weights?: string;
  /** Registry id of the weights to use without `weights` (default DEFAULT_ENCODER_WEIGHTS). */
  weightsId?: string;
  /** Download missing registry files into the cache (default true). */
  allowDownload?: boolean;
  log?: (line: string) => void;
  onProgress?: ProgressCallback;
  env?: NodeJS.ProcessEnv;
}

/** The registry entry each encoder uses when neither --weights nor --encoder-weights is given. */
export const DEFAULT_ENCODER_WEIGHTS: Readonly<Record<"clip" | "dinov2", string>> = Object.freeze({
  clip: "openai/clip-vit-large-patch14",
  dinov2: "dinov2_vitl14",
});

/** Where a converted encoder graph is cached. */
/**
 * Where a converted encoder lives: keyed by the weights' sha256, the converter version and the
 * parsed model config (the same weights with another config.json build another graph, and must
 * go through the layout check again).
 */
export function encoderOnnxCachePath(
  encoder: string,
  weightsSha256: string,
  converterVersion: string | number,
  config: unknown,
): string {
  const configHash = createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 8);
  return path.join(cacheDir(), "onnx", `${encoder}-${weightsSha256.slice(0, 12).toLowerCase()}-v${converterVersion}-c${configHash}.onnx`);
}

export async function resolveEncoder(encoder: Exclude<EncoderName, "inception">, opts: ResolveEncoderOptions = {}): Promise<ResolvedEncoder> {
  if (opts.weights !== undefined && opts.weightsId !== undefined) {
    throw new DiffevalError("E_USAGE", "--weights and --encoder-weights exclude each other (the first names files, the second a registry id to download)");
  }
  return encoder === "clip" ? resolveClip(opts) : resolveDinov2(opts);
}

/** One batch through an encoder session: `{ [outputName]: n x dim }`. */
export function encoderRunner(session: ort.InferenceSession, enc: Pick<ResolvedEncoder, "inputName" | "inputSize" | "outputName">): FeatureRunner {
  if (!session.outputNames.includes(enc.outputName)) {
    throw new DiffevalError("E_MODEL_OUTPUTS", `the model has no '${enc.outputName}' output (it has ${session.outputNames.join(", ")})`);
  }
  return async (images, n) => {
    const input = new ort.Tensor("float32", images, [n, 3, enc.inputSize, enc.inputSize]);
    const out = await session.run({ [enc.inputName]: input });
    return { [enc.outputName]: out[enc.outputName].data as Float32Array };
  };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${p}: no such file or folder`);
  }
}

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read ${what} (${e.code ?? e.message})`);
  });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DiffevalError("E_WEIGHTS_FORMAT", `${file}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

async function readBytes(file: string): Promise<Uint8Array> {
  const buf = await readFile(file).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read the weight file (${e.code ?? e.message})`);
  });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

async function hashWeights(file: string): Promise<string> {
  const abs = path.resolve(file);
  return sha256WithMemo(abs, hashMemoPath(abs));
}

/** `<cacheDir>/weights/<id>/`, `/` in the id written as `--`. */
export function encoderWeightsFolder(id: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheDir(env), "weights", id.replace(/\//g, "--"));
}

/** Where a registry file is fetched from: its upstream URL, or `$DIFFEVAL_ENCODER_BASE_URL/<id>/<name>`. */
export function encoderFileUrl(entry: EncoderWeightsEntry, file: { name: string; url: string }, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.DIFFEVAL_ENCODER_BASE_URL?.trim();
  return base ? `${base.replace(/\/+$/, "")}/${entry.id}/${file.name}` : file.url;
}

/**
 * The folder of an encoder's weights when none was given: the registry entry's cache folder,
 * with its missing files downloaded (see the header comment).
 */
export async function ensureEncoderWeights(encoder: "clip" | "dinov2", opts: ResolveEncoderOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const entry = getEncoderWeightsEntry(opts.weightsId ?? DEFAULT_ENCODER_WEIGHTS[encoder]);
  if (entry.encoder !== encoder) {
    throw new DiffevalError("E_USAGE", `--encoder-weights ${entry.id} holds ${entry.encoder} weights, not ${encoder} ones`);
  }
  const dir = encoderWeightsFolder(entry.id, env);
  const missing = entry.files.filter((f) => !existsSync(path.join(dir, f.name)));
  const needConfig = entry.config !== undefined && !existsSync(path.join(dir, "config.json"));
  if (missing.length === 0 && !needConfig) return dir;
  if (opts.allowDownload === false) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `no ${encoder} weights: pass --weights FILE|DIR, or put ${entry.files.map((f) => f.name).join(", ")} ` +
        `(from ${entry.files.map((f) => encoderFileUrl(entry, f, env)).join(" ")}) into ${dir}` +
        (encoder === "dinov2" ? " with a config.json of the model's constructor arguments" : ""),
    );
  }
  // Everything lands in a staging folder first: an interrupted download leaves no partial set.
  const staging = path.join(path.dirname(dir), `.${path.basename(dir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging, { recursive: true });
  try {
    for (const f of missing) {
      const url = encoderFileUrl(entry, f, env);
      opts.log?.(`downloading ${entry.id}/${f.name} from ${url}`);
      const { sha256 } = await downloadVerified({
        url,
        dest: path.join(staging, f.name),
        sha256: f.sha256,
        unverified: f.sha256 === undefined,
        onProgress: opts.onProgress,
        manualHint: `or download it yourself into ${dir}, or pass --weights FILE|DIR.`,
      });
      opts.log?.(
        f.sha256 !== undefined
          ? `${entry.id}/${f.name}: sha256 ${sha256}, verified`
          : `${entry.id}/${f.name}: unverified (no published sha256 to check against); this copy's sha256 is ${sha256}`,
      );
    }
    if (needConfig) {
      await writeFileAtomic(path.join(staging, "config.json"), `${JSON.stringify(entry.config, null, 1)}\n`);
    }
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(staging)) await rename(path.join(staging, name), path.join(dir, name));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  opts.log?.(`${entry.id}: weights cached in ${dir}`);
  return dir;
}

async function convertOnce(onnxPath: string, source: string, log: ResolveEncoderOptions["log"], build: () => Promise<Uint8Array>): Promise<void> {
  if (existsSync(onnxPath)) return;
  log?.(`converting ${source} to ONNX (once; cached at ${onnxPath})`);
  await writeFileAtomic(onnxPath, await build());
}

// ---------------------------------------------------------------------------------------------
// CLIP

async function resolveClip(opts: ResolveEncoderOptions): Promise<ResolvedEncoder> {
  const given = opts.weights ?? (await ensureEncoderWeights("clip", opts));
  const dir = (await isDir(given)) ? given : path.dirname(given);
  const weightsPath = (await isDir(given)) ? path.join(dir, "model.safetensors") : given;
  const config: ClipConfig = parseClipConfig(await readJson(path.join(dir, "config.json"), "the CLIP config.json"));
  const pre = await clipPreprocessing(dir, config);
  const sha = await hashWeights(weightsPath).catch((e: NodeJS.ErrnoException) => {
    if (e instanceof DiffevalError) throw e;
    throw new DiffevalError("E_WEIGHTS_MISSING", `${weightsPath}: cannot read the weight file (${e.code ?? e.message})`);
  });
  const onnxPath = encoderOnnxCachePath("clip", sha, CLIP_CONVERTER_VERSION, config);
  await convertOnce(onnxPath, weightsPath, opts.log, async () => {
    const sd: StateDict = readSafetensors(await readBytes(weightsPath), weightsPath);
    return buildClipVisionOnnx(sd, config);
  });
  return {
    encoder: "clip",
    onnxPath,
    weightsSha256: sha,
    weightsPath,
    protocol: clipPreprocessName(pre),
    inputName: "pixel_values",
    inputSize: config.vision.imageSize,
    outputName: "image_embeds",
    dim: config.projectionDim,
  };
}

/** The folder's preprocessor_config.json, else OpenAI's defaults for the model's image size. */
async function clipPreprocessing(dir: string, config: ClipConfig): Promise<ClipPreprocessConfig> {
  const file = path.join(dir, "preprocessor_config.json");
  let pre: ClipPreprocessConfig;
  if (existsSync(file)) pre = clipConfigFromPreprocessorJson(await readJson(file, "preprocessor_config.json"), file);
  else if (config.vision.imageSize === 224) pre = CLIP_PREPROCESS_224;
  else if (config.vision.imageSize === 336) pre = CLIP_PREPROCESS_336;
  else throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: missing, and the model's image size ${config.vision.imageSize} has no default preprocessing`);
  if (pre.crop !== config.vision.imageSize) {
    throw new DiffevalError(
      "E_WEIGHTS_LAYOUT",
      `${file}: crops to ${pre.crop} pixels but the vision tower takes ${config.vision.imageSize}x${config.vision.imageSize} images`,
    );
  }
  return pre;
}

// ---------------------------------------------------------------------------------------------
// DINOv2

async function resolveDinov2(opts: ResolveEncoderOptions): Promise<ResolvedEncoder> {
  const given = opts.weights ?? (await ensureEncoderWeights("dinov2", opts));
  let weightsPath = given;
  if (await isDir(given)) {
    const pths = (await readdir(given)).filter((f) => /\.pth$/i.test(f)).sort();
    if (pths.length !== 1) {
      throw new DiffevalError(
        "E_WEIGHTS_MISSING",
        `${given}: expected exactly one .pth file (the DINOv2 state dict) next to config.json, found ${pths.length ? pths.join(", ") : "none"}`,
      );
    }
    weightsPath = path.join(given, pths[0]);
  }
  const configFile = path.join(path.dirname(weightsPath), "config.json");
  const json = await readJson(configFile, "the DINOv2 config.json");
  const config = parseDinov2Config(json);
  const dim = config.embedDim;
  const sha = await hashWeights(weightsPath).catch((e: NodeJS.ErrnoException) => {
    if (e instanceof DiffevalError) throw e;
    throw new DiffevalError("E_WEIGHTS_MISSING", `${weightsPath}: cannot read the weight file (${e.code ?? e.message})`);
  });
  const inputSize = DINOV2_SIZE;
  const onnxPath = encoderOnnxCachePath("dinov2", sha, DINOV2_CONVERTER_VERSION, { config, inputSize });
  await convertOnce(onnxPath, weightsPath, opts.log, async () => {
    const sd = readStateDict(await readBytes(weightsPath), weightsPath);
    checkDinov2Layout(sd, config);
    return buildDinov2Onnx(sd, config, { inputSize });
  });
  return {
    encoder: "dinov2",
    onnxPath,
    weightsSha256: sha,
    weightsPath,
    protocol: dinov2PreprocessName(inputSize),
    inputName: "pixel_values",
    inputSize,
    outputName: "features",
    dim,
  };
}
