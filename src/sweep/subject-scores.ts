/**
 * Subject fidelity and prompt fidelity of a sweep's cells (spec.subject; issue 20): DreamBooth's
 * metrics (Ruiz et al. 2023, sec. 4.1; metrics/subject.ts) with the numbers `diffeval subject`
 * gives for a cell's folder (pipeline/subject.ts):
 *
 *   clip_i    mean cosine of every image's CLIP embedding with every reference photo's, the
 *             embeddings the CLIP score already makes (evaluate-cells.ts addClipScores)
 *   clip_t    mean cosine of each image's CLIP embedding with its own prompt's text embedding
 *   dinov2_i  as clip_i in DINOv2's space, from the sweep's own features when its encoder is
 *             dinov2 (the reference photos through the same extractor); other encoders have no
 *             DINOv2 model open, so there is no dinov2_i
 */
import { stat } from "node:fs/promises";
import { DiffevalError, isDiffevalError } from "../errors.js";
import type { Extractor } from "../features/extractor.js";
import { openImageSource } from "../io/sources.js";
import { meanCrossCosine, meanPairedCosine } from "../metrics/subject.js";
import type { FeatureMatrix } from "../types.js";
import type { SubjectSpec } from "./spec.js";

/**
 * The reference photos' paths (the folder's images, in the order `diffeval subject` reads them);
 * a missing path, a file or an empty folder is refused naming spec.subject.reference. Called
 * before any image is generated (run-sweep.ts) and again when the cells are scored.
 */
export async function subjectReferenceFiles(subject: SubjectSpec): Promise<string[]> {
  const st = await stat(subject.reference).catch(() => null);
  if (!st?.isDirectory()) {
    throw new DiffevalError("E_SOURCE", `spec.subject.reference: ${subject.reference} is not a folder; give a folder of the subject's reference photos (relative paths start at the spec's folder)`);
  }
  try {
    const source = await openImageSource(subject.reference);
    await source.close();
    return source.items.map((item) => item.location);
  } catch (e) {
    if (isDiffevalError(e)) throw new DiffevalError(e.code, `spec.subject.reference: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The reference photos through the sweep's extractor (its DINOv2 features), or undefined for another encoder. */
export async function dinov2Reference(subject: SubjectSpec | undefined, extractor: Extractor): Promise<FeatureMatrix | undefined> {
  if (!subject || extractor.encoder !== "dinov2") return undefined;
  const source = await openImageSource(subject.reference);
  try {
    return (await extractor.extract(source.items)).embedding;
  } finally {
    await source.close();
  }
}

/** clip_i and clip_t of one cell from its CLIP image embeddings and, row for row, its prompts' text embeddings. */
export function clipSubjectScores(images: FeatureMatrix, prompts: FeatureMatrix, reference: FeatureMatrix): { clip_i: number; clip_t: number } {
  return { clip_i: meanCrossCosine(images, reference, "clip_i"), clip_t: meanPairedCosine(images, prompts, "clip_t") };
}
