/**
 * CLIP score of image-prompt pairs (the `diffeval clipscore` command): the pairs CSV read
 * (io/csv.ts), the CLIP checkpoint opened (features/clip-model.ts: given, or the registry's
 * weights downloaded into the cache as for `--encoder clip`), each distinct prompt embedded once,
 * every image embedded, and torchmetrics' score (metrics/clip-score.ts). Prompts go through
 * OpenAI's tokenizer by default (the ids the original CLIP and torchmetrics' default checkpoints
 * were trained and evaluated with).
 */
import path from "node:path";
import { clipScore } from "../metrics/clip-score.js";
import { embedImages, embedTexts, openClipModel } from "../features/clip-model.js";
import { ensureEncoderWeights } from "../features/encoder-weights.js";
import { checkEncoderOptions, getEncoder } from "../features/encoders.js";
import { readPairsCsv } from "../io/csv.js";
import type { Env } from "../models/cache.js";
import { CLIP_CONVERTER_VERSION } from "../models/clip-onnx.js";
import type { DeviceName, ResolvedDevice } from "../models/session.js";
import type { ClipFlavour } from "../text/clip-tokenizer.js";

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
  /** One-line notices (downloads, conversions) for stderr. */
  log?: (line: string) => void;
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
  const clip = getEncoder("clip");
  checkEncoderOptions(clip, { weights: opts.weights, weightsId: opts.weightsId });
  const pairs = await readPairsCsv(opts.pairs);
  const weights = opts.weights ?? (await ensureEncoderWeights("clip", opts.weightsId ?? clip.defaultWeightsId, { env: opts.env, log: opts.log }));
  const model = await openClipModel(weights, { device: opts.device ?? "auto", log: opts.log, env: opts.env });
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
    await model.close();
  }
}
