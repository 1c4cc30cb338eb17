/**
 * Subject fidelity of personalised generations (the `diffeval subject` command): DreamBooth's
 * CLIP-I, DINO (here in DINOv2's space) and CLIP-T (Ruiz et al. 2023; metrics/subject.ts).
 *
 * The reference photos and the generated images go through the encoder registry's extractors
 * (withExtraction: one CLIP pass and one DINOv2 pass over both folders, the feature cache shared
 * with `--encoder clip|dinov2`); the prompts, when given, through the same CLIP checkpoint's text
 * tower (features/clip-model.ts, as `clipscore` embeds them). CLIP-T pairs each generated image's
 * CLIP image embedding (the extractor's row) with its prompt's text embedding.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { embedTexts, openClipModel } from "../features/clip-model.js";
import { ensureEncoderWeights } from "../features/encoder-weights.js";
import { checkEncoderOptions, getEncoder, type EncoderName } from "../features/encoders.js";
import type { ExtractedFeatures } from "../features/extract.js";
import { readPairsCsv } from "../io/csv.js";
import { meanCrossCosine, meanPairedCosine } from "../metrics/subject.js";
import type { DeviceName, ResolvedDevice } from "../models/session.js";
import type { ClipFlavour } from "../text/clip-tokenizer.js";
import type { FeatureMatrix } from "../types.js";
import { VERSION } from "../version.js";
import { withExtraction } from "./with-extraction.js";

export interface SubjectOptions {
  /** The subject's reference photos (any image source). */
  reference: string;
  /** The generated images (any image source). */
  images: string;
  /** An `image,prompt` CSV (image paths relative to the CSV) or a file holding one prompt for every image. */
  prompts?: string;
  /** A Hugging Face CLIP folder; default: the clip encoder's registry weights, downloaded into the cache. */
  clipWeights?: string;
  /** A torch-hub DINOv2 .pth with its config.json (or their folder); default: the dinov2 encoder's registry weights. */
  dinov2Weights?: string;
  device?: DeviceName;
  batchSize?: number;
  threads?: number;
  cache?: boolean;
  /** Tokenizer clean-up for the prompts (default "openai", as clipscore). */
  flavour?: ClipFlavour;
  log?: (line: string) => void;
}

/** How one encoder's numbers were made. */
export interface SubjectSpace {
  weights_sha256: string;
  protocol: string;
  device: ResolvedDevice;
}

export interface SubjectReport {
  clip_i: number;
  dinov2_i: number;
  /** Only when prompts were given. */
  clip_t?: number;
  n_reference: number;
  n_images: number;
  reference: string;
  images: string;
  clip: SubjectSpace;
  dinov2: SubjectSpace;
  tokenizer?: ClipFlavour;
  seconds: number;
  version: string;
}

/** A prompts file: an `image,prompt` CSV (header required), or one prompt for every image. */
export type SubjectPrompts = { kind: "pairs"; byImage: Map<string, string>; file: string } | { kind: "one"; prompt: string };

export async function readSubjectPrompts(file: string): Promise<SubjectPrompts> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new DiffevalError("E_PAIRS_FORMAT", `${file}: cannot read the prompts file (${(e as Error).message})`);
  }
  const firstLine = text.replace(/^\ufeff/, "").split(/\r?\n/, 1)[0];
  const header = firstLine.split(",").map((h) => h.trim().replace(/^"|"$/g, "").toLowerCase());
  if (header.includes("image") && header.includes("prompt")) {
    const byImage = new Map<string, string>();
    for (const p of await readPairsCsv(file)) {
      // Keyed by the resolved path (a folder of images) and by the name as written (a zip, tar or list).
      byImage.set(p.imagePath, p.prompt);
      byImage.set(p.image, p.prompt);
    }
    return { kind: "pairs", byImage, file };
  }
  const lines = text.replace(/^\ufeff/, "").split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length !== 1) {
    throw new DiffevalError(
      "E_PAIRS_FORMAT",
      `${file}: ${lines.length} non-empty lines; a prompts file is either a CSV with the header 'image,prompt' or one line holding the prompt of every image`,
    );
  }
  return { kind: "one", prompt: lines[0].trim() };
}

/** Each generated image's prompt, in row order; an image the CSV names no prompt for is refused. */
function promptsOfImages(prompts: SubjectPrompts, imagesSpec: string, names: readonly string[]): string[] {
  if (prompts.kind === "one") return names.map(() => prompts.prompt);
  return names.map((name) => {
    const p = prompts.byImage.get(path.resolve(imagesSpec, name)) ?? prompts.byImage.get(name);
    if (p === undefined) throw new DiffevalError("E_PAIRS_FORMAT", `${prompts.file}: no row names the generated image '${name}' (paths are relative to the CSV)`);
    return p;
  });
}

interface SpaceFeatures {
  reference: ExtractedFeatures;
  images: ExtractedFeatures;
  space: SubjectSpace;
}

/** Both folders through one extractor of `encoder` (the registry's, as `--encoder` opens it). */
function extractBoth(encoder: EncoderName, weights: string | undefined, opts: SubjectOptions): Promise<SpaceFeatures> {
  return withExtraction(
    [opts.reference, opts.images],
    { encoder, weights, device: opts.device, batchSize: opts.batchSize, threads: opts.threads, cache: opts.cache, log: opts.log },
    async ([reference, images], extractor) => ({
      reference: await extractor.extract(reference!.items),
      images: await extractor.extract(images!.items),
      space: { weights_sha256: extractor.model.weightsSha256, protocol: extractor.protocol, device: extractor.device },
    }),
  );
}

/** Each image's prompt embedded by the checkpoint's text tower, distinct prompts once. */
async function promptEmbeddings(weights: string, prompts: readonly string[], opts: SubjectOptions): Promise<FeatureMatrix> {
  const model = await openClipModel(weights, { device: opts.device ?? "auto", log: opts.log });
  try {
    const d = model.config.projectionDim;
    const unique = [...new Set(prompts)];
    const index = new Map(unique.map((p, i) => [p, i]));
    const embeds = await embedTexts(model, unique, opts.flavour ?? "openai");
    const data = new Float32Array(prompts.length * d);
    prompts.forEach((p, i) => data.set(embeds.subarray(index.get(p)! * d, (index.get(p)! + 1) * d), i * d));
    return { n: prompts.length, d, data };
  } finally {
    await model.close();
  }
}

export async function runSubject(opts: SubjectOptions): Promise<SubjectReport> {
  const started = Date.now();
  checkEncoderOptions(getEncoder("clip"), { weights: opts.clipWeights });
  checkEncoderOptions(getEncoder("dinov2"), { weights: opts.dinov2Weights });
  // Read before any model loads, so a bad prompts file fails first.
  const prompts = opts.prompts === undefined ? undefined : await readSubjectPrompts(opts.prompts);
  const clipWeights = opts.clipWeights ?? (prompts ? await ensureEncoderWeights("clip", getEncoder("clip").defaultWeightsId, { log: opts.log }) : undefined);
  const clip = await extractBoth("clip", clipWeights, opts);
  const dino = await extractBoth("dinov2", opts.dinov2Weights, opts);
  const report: SubjectReport = {
    clip_i: meanCrossCosine(clip.images.embedding, clip.reference.embedding, "clip_i"),
    dinov2_i: meanCrossCosine(dino.images.embedding, dino.reference.embedding, "dinov2_i"),
    n_reference: clip.reference.embedding.n,
    n_images: clip.images.embedding.n,
    reference: opts.reference,
    images: opts.images,
    clip: clip.space,
    dinov2: dino.space,
    seconds: 0,
    version: VERSION,
  };
  if (prompts) {
    const texts = await promptEmbeddings(clipWeights!, promptsOfImages(prompts, opts.images, clip.images.names), opts);
    report.clip_t = meanPairedCosine(clip.images.embedding, texts, "clip_t");
    report.tokenizer = opts.flavour ?? "openai";
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}
