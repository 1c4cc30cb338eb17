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
