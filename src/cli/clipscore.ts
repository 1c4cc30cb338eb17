/**
 * `diffeval clipscore --pairs pairs.csv [--weights DIR] [--json]`: CLIP score of image-prompt pairs.
 * Without --weights the registry's CLIP weights are downloaded into the cache (as for --encoder clip).
 *
 * The CSV (RFC 4180: comma-separated, a header row, fields optionally in double quotes, `""` for a
 * quote inside a quoted field, quoted fields may hold commas and line breaks) has the columns
 * `image` and `prompt` (any order, other columns ignored); image paths are relative to the CSV's
 * folder. DIR is a Hugging Face CLIP checkpoint folder (`config.json`, `model.safetensors`,
 * `vocab.json`, `merges.txt`, `tokenizer_config.json`, `preprocessor_config.json`).
 *
 * Both towers are built from the safetensors weights once and cached as
 * `<cache>/onnx/clip-<sha12>-v<converter>-{vision,text}.onnx`. Images go through
 * CLIPImageProcessor's preprocessing, prompts through OpenAI's tokenizer (the ids the original CLIP
 * and torchmetrics' default checkpoints were trained and evaluated with); the score is
 * torchmetrics' (metrics/clip-score.ts).
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Command } from "commander";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";
import { parseDevice, openSession, type DeviceName, type ResolvedDevice } from "../models/session.js";
import { writeFileAtomic } from "../io/atomic.js";
import { decodeImage } from "../io/decode.js";
import { clipScore } from "../metrics/clip-score.js";
import { cacheDir, hashMemoPath, type Env } from "../models/cache.js";
import { buildClipTextOnnx, buildClipVisionOnnx, CLIP_CONVERTER_VERSION, parseClipConfig, type ClipConfig } from "../models/clip-onnx.js";
import { ensureEncoderWeights } from "../features/encoders.js";
import { sha256WithMemo } from "../models/ensure-weights.js";
import { readSafetensors } from "../models/safetensors.js";
import { clipConfigFromPreprocessorJson, preprocessClip, type ClipPreprocessConfig } from "../preprocess/clip.js";
import { loadClipTokenizer, type ClipFlavour, type ClipTokenizer } from "../text/clip-tokenizer.js";
import { positiveInt } from "./common-options.js";

// ---------------------------------------------------------------------------------------------
// CSV

/**
 * RFC 4180 records of `text`: fields split on commas, records on CRLF or LF (a lone CR too);
 * double-quoted fields may contain commas, line breaks and `""` (one quote). A leading BOM is
 * dropped, and so is a final empty line. Malformed quoting is refused with E_PAIRS_FORMAT.
 */
export function parseCsv(text: string, name = "CSV"): string[][] {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let i = 0;
  let line = 1;
  let atFieldStart = true;
  const endField = (): void => {
    record.push(field);
    field = "";
    atFieldStart = true;
  };
  const endRecord = (): void => {
    endField();
    records.push(record);
    record = [];
  };
  while (i < s.length) {
    const c = s[i];
    if (atFieldStart && c === '"') {
      // Quoted field: up to the closing quote not followed by another quote.
      const startLine = line;
      i++;
      for (;;) {
        if (i >= s.length) throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${startLine}: a quoted field is never closed`);
        const q = s[i];
        if (q === '"') {
          if (s[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === "\n") line++;
        field += q;
        i++;
      }
      atFieldStart = false;
      const next = s[i];
      if (i < s.length && next !== "," && next !== "\n" && next !== "\r") {
        throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${line}: unexpected ${JSON.stringify(next)} after a closing quote (write "" for a quote inside a quoted field)`);
      }
      continue;
    }
    if (c === ",") {
      endField();
      i++;
    } else if (c === "\r" || c === "\n") {
      endRecord();
      i += c === "\r" && s[i + 1] === "\n" ? 2 : 1;
      line++;
    } else {
      if (c === '"') throw new DiffevalError("E_PAIRS_FORMAT", `${name}: line ${line}: a quote inside an unquoted field (quote the whole field and write "" for the quote)`);
      field += c;
      atFieldStart = false;
      i++;
    }
  }
  if (!atFieldStart || record.length > 0) endRecord();
  return records;
}

export interface ImagePromptPair {
  /** The image path as the CSV writes it. */
  image: string;
  /** Resolved against the CSV's folder. */
  imagePath: string;
  prompt: string;
}

/** The `image,prompt` pairs of a CSV file (header required; blank lines skipped). */
export async function readPairsCsv(file: string): Promise<ImagePromptPair[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new DiffevalError("E_PAIRS_FORMAT", `${file}: cannot read the pairs file (${(e as Error).message})`);
  }
  const rows = parseCsv(text, file).filter((r) => !(r.length === 1 && r[0] === ""));
  if (rows.length === 0) throw new DiffevalError("E_PAIRS_FORMAT", `${file}: empty; expected a header row 'image,prompt' and one row per pair`);
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const ci = header.indexOf("image");
  const cp = header.indexOf("prompt");
  if (ci < 0 || cp < 0) {
    throw new DiffevalError("E_PAIRS_FORMAT", `${file}: the header must name the columns 'image' and 'prompt', got ${JSON.stringify(rows[0])}`);
  }
  const base = path.dirname(path.resolve(file));
  const pairs: ImagePromptPair[] = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== rows[0].length) {
      throw new DiffevalError("E_PAIRS_FORMAT", `${file}: record ${r + 1} has ${row.length} fields, the header ${rows[0].length}`);
    }
    const image = row[ci];
    if (image.trim() === "") throw new DiffevalError("E_PAIRS_FORMAT", `${file}: record ${r + 1} has an empty image path`);
    pairs.push({ image, imagePath: path.resolve(base, image), prompt: row[cp] });
  }
  if (pairs.length === 0) throw new DiffevalError("E_PAIRS_FORMAT", `${file}: no pairs after the header`);
  return pairs;
}

// ---------------------------------------------------------------------------------------------
// Model

export interface ClipModel {
  dir: string;
  weightsSha256: string;
  config: ClipConfig;
  preprocess: ClipPreprocessConfig;
  tokenizer: ClipTokenizer;
  vision: ort.InferenceSession;
  text: ort.InferenceSession;
  device: ResolvedDevice;
}

/** `<cache>/onnx/clip-<sha12>-v<ver>-<tower>.onnx`. */
export function clipOnnxCachePath(weightsSha256: string, tower: "vision" | "text", env: Env = process.env): string {
  if (!/^[0-9a-f]{64}$/.test(weightsSha256)) throw new DiffevalError("E_INTERNAL", `clipOnnxCachePath: not a sha256: ${weightsSha256}`);
  return path.join(cacheDir(env), "onnx", `clip-${weightsSha256.slice(0, 12)}-v${CLIP_CONVERTER_VERSION}-${tower}.onnx`);
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new DiffevalError("E_WEIGHTS_LAYOUT", `${file}: cannot read (${(e as Error).message}); a CLIP checkpoint folder holds config.json, model.safetensors, the tokenizer files and preprocessor_config.json`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DiffevalError("E_WEIGHTS_LAYOUT", `${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Loads a Hugging Face CLIP folder (or the folder of a given model.safetensors) and opens both towers. */
export async function loadClipModel(weights: string, device: DeviceName = "auto", env: Env = process.env): Promise<ClipModel> {
  const dir = existsSync(weights) && statSync(weights).isFile() ? path.dirname(weights) : weights;
  if (!existsSync(dir)) throw new DiffevalError("E_WEIGHTS_LAYOUT", `${dir}: no such CLIP checkpoint folder`);
  const config = parseClipConfig(await readJson(path.join(dir, "config.json")));
  const ppFile = path.join(dir, "preprocessor_config.json");
  let preprocess: ClipPreprocessConfig;
  try {
    preprocess = clipConfigFromPreprocessorJson(await readJson(ppFile), ppFile);
  } catch (e) {
    throw e instanceof DiffevalError ? e : new DiffevalError("E_WEIGHTS_LAYOUT", (e as Error).message);
  }
  if (preprocess.crop !== config.vision.imageSize) {
    throw new DiffevalError("E_WEIGHTS_LAYOUT", `${ppFile}: crop ${preprocess.crop} does not match the vision tower's image_size ${config.vision.imageSize}`);
  }
  const tokenizer = await loadClipTokenizer(dir);
  const st = path.join(dir, "model.safetensors");
  if (!existsSync(st)) throw new DiffevalError("E_WEIGHTS_LAYOUT", `${st}: missing (only the safetensors layout of CLIP checkpoints is read)`);
  const weightsSha256 = await sha256WithMemo(st, hashMemoPath(st, env));
  const paths = { vision: clipOnnxCachePath(weightsSha256, "vision", env), text: clipOnnxCachePath(weightsSha256, "text", env) };
  if (!existsSync(paths.vision) || !existsSync(paths.text)) {
    const sd = readSafetensors(new Uint8Array(await readFile(st)), st);
    // Build (and so validate) both before writing either.
    const vision = buildClipVisionOnnx(sd, config);
    const text = buildClipTextOnnx(sd, config);
    await writeFileAtomic(paths.vision, vision);
    await writeFileAtomic(paths.text, text);
  }
  const v = await openSession(paths.vision, device);
  const t = await openSession(paths.text, v.device);
  return { dir, weightsSha256, config, preprocess, tokenizer, vision: v.session, text: t.session, device: v.device };
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
    const r = await model.vision.run({ pixel_values: new ort.Tensor("float32", pixels, [chunk.length, 3, side, side]) });
    out.set(r.image_embeds.data as Float32Array, s * dim);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Command

export interface ClipScoreOptions {
  pairs: string;
  /** A CLIP checkpoint folder; default: the registry's CLIP weights, downloaded into the cache. */
  weights?: string;
  /** Registry id of the CLIP weights to use when `weights` is absent. */
  weightsId?: string;
  device?: DeviceName;
  batchSize?: number;
  /** Tokenizer clean-up (default "openai"). */
  flavour?: ClipFlavour;
  env?: Env;
}

export interface ClipScoreReport {
  clip_score: number;
  n: number;
  per_image: { image: string; prompt: string; score: number }[];
  weights: string;
  weights_sha256: string;
  converter_version: number;
  tokenizer: ClipFlavour;
  device: ResolvedDevice;
  seconds: number;
}

export async function runClipScore(opts: ClipScoreOptions): Promise<ClipScoreReport> {
  const started = Date.now();
  const flavour = opts.flavour ?? "openai";
  const pairs = await readPairsCsv(opts.pairs);
  const weights = opts.weights ?? (await ensureEncoderWeights("clip", { weightsId: opts.weightsId, env: opts.env }));
  const model = await loadClipModel(weights, opts.device ?? "auto", opts.env);
  try {
    const dim = model.config.projectionDim;
    // Each distinct prompt is encoded once.
    const unique = [...new Set(pairs.map((p) => p.prompt))];
    const index = new Map(unique.map((p, i) => [p, i]));
    const uniqueEmbeds = await embedTexts(model, unique, flavour);
    const textData = new Float32Array(pairs.length * dim);
    pairs.forEach((p, i) => {
      const u = index.get(p.prompt)!;
      textData.set(uniqueEmbeds.subarray(u * dim, (u + 1) * dim), i * dim);
    });
    const imageData = await embedImages(model, pairs.map((p) => p.imagePath), opts.batchSize ?? 16);
    const { score, perPair } = clipScore({ n: pairs.length, d: dim, data: imageData }, { n: pairs.length, d: dim, data: textData });
    return {
      clip_score: score,
      n: pairs.length,
      per_image: pairs.map((p, i) => ({ image: p.image, prompt: p.prompt, score: perPair[i] })),
      weights: path.resolve(model.dir),
      weights_sha256: model.weightsSha256,
      converter_version: CLIP_CONVERTER_VERSION,
      tokenizer: flavour,
      device: model.device,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await model.vision.release();
    await model.text.release();
  }
}

interface ClipScoreFlags {
  pairs: string;
  weights?: string;
  encoderWeights?: string;
  json?: boolean;
  device: string;
  batchSize: string;
  tokenizer: string;
}

export function clipscoreCommand(): Command {
  return new Command("clipscore")
    .description("CLIP score (torchmetrics' definition: 100 x cosine per image-prompt pair, mean, clamped at 0) of a pairs CSV")
    .requiredOption("--pairs <csv>", "CSV with a header and columns image,prompt (image paths relative to the CSV)")
    .option("--weights <dir>", "Hugging Face CLIP checkpoint folder (config.json, model.safetensors, tokenizer files, preprocessor_config.json)")
    .option("--encoder-weights <id>", "registry id of the CLIP weights to download when --weights is absent (default openai/clip-vit-large-patch14)")
    .option("--json", "print one JSON object instead of the human summary")
    .option("--device <device>", "auto, cpu, cuda or webgpu", "auto")
    .option("--batch-size <n>", "images per inference batch", "16")
    .option("--tokenizer <flavour>", "prompt clean-up: openai (OpenAI's, with HTML unescaping) or hf (Hugging Face's without ftfy)", "openai")
    .action(async (flags: ClipScoreFlags) => {
      if (flags.tokenizer !== "openai" && flags.tokenizer !== "hf") {
        throw new DiffevalError("E_USAGE", `--tokenizer must be openai or hf, got '${flags.tokenizer}'`);
      }
      const r = await runClipScore({
        pairs: flags.pairs,
        weights: flags.weights,
        weightsId: flags.encoderWeights,
        device: parseDevice(flags.device),
        batchSize: positiveInt(flags.batchSize, "--batch-size"),
        flavour: flags.tokenizer,
      });
      process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : humanReport(r));
    });
}

function humanReport(r: ClipScoreReport): string {
  return (
    `CLIP score  ${r.clip_score.toFixed(4)}\n` +
    `weights ${r.weights_sha256.slice(0, 12)} (${r.weights}), tokenizer ${r.tokenizer}, n ${r.n}, device ${r.device}, ${r.seconds.toFixed(1)} s\n`
  );
}
