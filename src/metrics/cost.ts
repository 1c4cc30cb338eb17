/**
 * What a set of images cost to generate, from what the generator and the runner recorded per
 * image: the mean wall-clock seconds (every generator), and the mean number of denoiser
 * evaluations (built-in generators, which count their own passes: classifier-free guidance makes
 * two per step, one conditional and one unconditional, and none of the second at s = 1; Ho &
 * Salimans 2022, sec. 3.2). The second is left out unless every image reports a count, so a mean
 * never mixes counted and uncounted images.
 */

/** One generated image's cost as recorded (the sweep manifest's `seconds` and `model_evaluations`). */
export interface GenerationCost {
  seconds: number;
  modelEvaluations?: number;
}

export interface CostPerImage {
  seconds_per_image: number;
  model_evals_per_image?: number;
}

/** Mean seconds and (when every image counted them) mean model evaluations per image; undefined for no images. */
export function costPerImage(images: readonly GenerationCost[]): CostPerImage | undefined {
  if (images.length === 0) return undefined;
  const seconds = mean(images.map((x) => x.seconds));
  const counts = images.map((x) => x.modelEvaluations);
  const counted = counts.every((c): c is number => c !== undefined);
  return { seconds_per_image: seconds, ...(counted ? { model_evals_per_image: mean(counts) } : {}) };
}

function mean(xs: readonly number[]): number {
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}
