/**
 * CLIP score (Hessel et al., "CLIPScore", EMNLP 2021, with w = 100), as torchmetrics'
 * `clip_score` defines it: each image embedding and its prompt's text embedding are L2-normalised,
 * the per-pair score is 100 x their cosine, the result is the mean over pairs, clamped at 0 after
 * the mean (per-pair scores stay signed).
 *
 * Computed in float64 from the (float32) raw projected embeddings.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";

export interface ClipScoreResult {
  /** max(100 x mean cosine, 0). */
  score: number;
  /** 100 x cosine of each pair, unclamped. */
  perPair: Float64Array;
}

/** Row i of `imageEmbeds` is paired with row i of `textEmbeds`. */
export function clipScore(imageEmbeds: FeatureMatrix, textEmbeds: FeatureMatrix): ClipScoreResult {
  if (imageEmbeds.d !== textEmbeds.d) {
    throw new DiffevalError("E_FEATURE_DIM", `clip score: image embeddings are ${imageEmbeds.d}-d, text embeddings ${textEmbeds.d}-d`);
  }
  if (imageEmbeds.n !== textEmbeds.n) {
    throw new DiffevalError("E_USAGE", `clip score: ${imageEmbeds.n} image embeddings but ${textEmbeds.n} text embeddings (one per image expected)`);
  }
  const { n, d } = imageEmbeds;
  if (n < 1) throw new DiffevalError("E_TOO_FEW_SAMPLES", "clip score: no image-prompt pairs");
  const a = imageEmbeds.data;
  const b = textEmbeds.data;
  const perPair = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < d; k++) {
      ab += a[o + k] * b[o + k];
      aa += a[o + k] * a[o + k];
      bb += b[o + k] * b[o + k];
    }
    const denom = Math.sqrt(aa) * Math.sqrt(bb);
    if (!(denom > 0) || !Number.isFinite(denom) || !Number.isFinite(ab)) {
      throw new DiffevalError("E_NONFINITE", `clip score: pair ${i} has a zero or non-finite embedding`);
    }
    perPair[i] = (100 * ab) / denom;
    sum += perPair[i];
  }
  return { score: Math.max(sum / n, 0), perPair };
}

/** Per-pair embeddings: image row i against text row i. */
export interface PairedEmbeddings {
  images: FeatureMatrix;
  texts: FeatureMatrix;
}

/**
 * Negative-prompt adherence (issue 19): a cell's images scored against its negative prompt,
 * and, when the same prompts and seeds were also generated without a negative prompt, those
 * counterpart images against the same negative text.
 */
export interface NegativePromptPairs {
  cell: PairedEmbeddings;
  /** Row i: the counterpart of the cell's image i (same prompt, seed, s, other axes) against the same negative text. */
  withoutNegative?: PairedEmbeddings;
}

/**
 * `neg_clip`: the CLIP score (exactly `clipScore`'s definition) of the images against their
 * negative prompt; `neg_clip_delta`: neg_clip minus the same score of the counterparts generated
 * without it. Both lower when the negative prompt pushed its concept out of the images.
 */
export function negativeClipScores(p: NegativePromptPairs): { neg_clip: number; neg_clip_delta?: number } {
  const neg = clipScore(p.cell.images, p.cell.texts).score;
  if (!p.withoutNegative) return { neg_clip: neg };
  if (p.withoutNegative.images.n !== p.cell.images.n) {
    throw new DiffevalError("E_USAGE", `neg_clip_delta: ${p.cell.images.n} images but ${p.withoutNegative.images.n} counterparts without the negative prompt (one per image expected)`);
  }
  return { neg_clip: neg, neg_clip_delta: neg - clipScore(p.withoutNegative.images, p.withoutNegative.texts).score };
}
