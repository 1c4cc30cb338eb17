/**
 * Subject fidelity and prompt fidelity as DreamBooth measures them (Ruiz et al., "DreamBooth:
 * Fine Tuning Text-to-Image Diffusion Models for Subject-Driven Generation", CVPR 2023, sec. 4.1):
 *
 *   CLIP-I / DINO   the mean cosine similarity between the embeddings of every generated image and
 *                   every real (reference) image of the subject, in CLIP's or DINO's space
 *   CLIP-T          the mean cosine similarity between each generated image's CLIP embedding and
 *                   its prompt's CLIP text embedding
 *
 * Cosines in [-1, 1] as the paper reports them (not CLIPScore's x100). Pure: embedding matrices in
 * (raw, not normalised: each row is normalised here), numbers out, float64 arithmetic.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";

/** Each row's 1 / L2 norm, refusing a zero or non-finite row (its cosine has no value). */
function inverseNorms(x: FeatureMatrix, what: string): Float64Array {
  const inv = new Float64Array(x.n);
  for (let i = 0; i < x.n; i++) {
    let ss = 0;
    for (let k = 0, o = i * x.d; k < x.d; k++) ss += x.data[o + k] * x.data[o + k];
    const norm = Math.sqrt(ss);
    if (!(norm > 0) || !Number.isFinite(norm)) throw new DiffevalError("E_NONFINITE", `${what}: row ${i} is a zero or non-finite embedding`);
    inv[i] = 1 / norm;
  }
  return inv;
}

function checkWidths(a: FeatureMatrix, b: FeatureMatrix, what: string): void {
  if (a.d !== b.d) throw new DiffevalError("E_FEATURE_DIM", `${what}: embeddings of ${a.d} and ${b.d} dimensions cannot be compared`);
  if (a.n < 1 || b.n < 1) throw new DiffevalError("E_TOO_FEW_SAMPLES", `${what}: needs at least one embedding on each side, got ${a.n} and ${b.n}`);
}

/**
 * The mean cosine similarity over all pairs (generated i, reference j): DreamBooth's CLIP-I with CLIP
 * image embeddings, its DINO score with DINO (here also DINOv2) embeddings.
 */
export function meanCrossCosine(generated: FeatureMatrix, reference: FeatureMatrix, what = "subject fidelity"): number {
  checkWidths(generated, reference, what);
  const ig = inverseNorms(generated, `${what} (generated)`);
  const ir = inverseNorms(reference, `${what} (reference)`);
  const { d } = generated;
  let sum = 0;
  for (let i = 0; i < generated.n; i++) {
    for (let j = 0; j < reference.n; j++) {
      let dot = 0;
      for (let k = 0, a = i * d, b = j * d; k < d; k++) dot += generated.data[a + k] * reference.data[b + k];
      sum += dot * ig[i] * ir[j];
    }
  }
  return sum / (generated.n * reference.n);
}

/** The mean cosine similarity of row i of `images` with row i of `texts`: DreamBooth's CLIP-T. */
export function meanPairedCosine(images: FeatureMatrix, texts: FeatureMatrix, what = "prompt fidelity"): number {
  checkWidths(images, texts, what);
  if (images.n !== texts.n) throw new DiffevalError("E_USAGE", `${what}: ${images.n} image embeddings but ${texts.n} prompt embeddings (one per image expected)`);
  const ii = inverseNorms(images, `${what} (images)`);
  const it = inverseNorms(texts, `${what} (prompts)`);
  const { d } = images;
  let sum = 0;
  for (let i = 0; i < images.n; i++) {
    let dot = 0;
    for (let k = 0, o = i * d; k < d; k++) dot += images.data[o + k] * texts.data[o + k];
    sum += dot * ii[i] * it[i];
  }
  return sum / images.n;
}
