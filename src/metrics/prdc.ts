/**
 * Precision and recall (Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
 * Generative Models", NeurIPS 2019) and density and coverage (Naeem et al., "Reliable Fidelity and
 * Diversity Metrics for Generative Models", ICML 2020), computed exactly as the `prdc` package's
 * `compute_prdc` (clovaai/generative-evaluation-prdc, prdc/prdc.py):
 *
 * - radius of a real (fake) sample: the distance to its k-th nearest other real (fake) sample,
 * - precision: fraction of fakes within the radius of at least one real,
 * - recall: fraction of reals within the radius of at least one fake,
 * - density: (1/k) x mean over fakes of the number of reals whose radius contains the fake,
 * - coverage: fraction of reals whose nearest fake lies within the real's radius.
 *
 * All comparisons are strict (`distance < radius`), on distances rounded as sklearn returns them
 * (see pairwise.ts). The papers use k = 3 for precision/recall and k = 5 for density/coverage;
 * compute_prdc uses one k for all four, so call twice to follow both papers.
 *
 * Memory: the real-vs-fake distances are reduced block by block, so a 10k x 10k comparison holds
 * one ~32 MiB block of distances plus the float64 copies of both feature sets.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";
import { forEachDistanceBlock, kthNearestDistances, type DistancePrecision } from "./pairwise.js";

export interface PrdcOptions {
  /** nearest_k of compute_prdc (default 5). */
  k?: number;
  /** Rounding of distances (pairwise.ts); "float32" reproduces prdc on float32 features. */
  precision?: DistancePrecision;
}

export interface PrdcResult {
  precision: number;
  recall: number;
  density: number;
  coverage: number;
  k: number;
}

export function prdc(real: FeatureMatrix, fake: FeatureMatrix, opts: PrdcOptions = {}): PrdcResult {
  const k = opts.k ?? 5;
  if (real.d !== fake.d) throw new DiffevalError("E_FEATURE_DIM", `real and fake features have different dimensions (${real.d} vs ${fake.d}); extract both with the same encoder`);
  if (real.n === 0 || fake.n === 0) throw new DiffevalError("E_TOO_FEW_SAMPLES", "precision/recall/density/coverage need at least one real and one fake sample");
  const pw = { precision: opts.precision };
  const realRadii = kthNearestDistances(real, k, pw);
  const fakeRadii = kthNearestDistances(fake, k, pw);
  const c = countNeighbourhoods(real, fake, realRadii, fakeRadii, pw.precision);
  // Same operation order as compute_prdc, so the float64 results agree to the last bit:
  // precision/recall/coverage are boolean means (count / n); density = (1/k) * mean(counts).
  return {
    precision: c.fakesInRealBalls / fake.n,
    recall: c.realsInFakeBalls / real.n,
    density: (1 / k) * (c.realBallsContainingFakes / fake.n),
    coverage: c.coveredReals / real.n,
    k,
  };
}

/**
 * For each fake: 1 when it lies within the k-NN radius of at least one real (`realRadii`, from
 * kthNearestDistances(real, k)), else 0. Precision is the mean of these (prdc's
 * `(distance_real_fake < real_nearest_neighbour_distances).any(axis=0).mean()`), so the mean over
 * any subset of fakes (one prompt's images) is that subset's precision against the same reals.
 */
export function insideRealManifold(real: FeatureMatrix, fake: FeatureMatrix, realRadii: Float64Array, precision?: DistancePrecision): Uint8Array {
  if (real.d !== fake.d) throw new DiffevalError("E_FEATURE_DIM", `real and fake features have different dimensions (${real.d} vs ${fake.d}); extract both with the same encoder`);
  const inside = new Uint8Array(fake.n);
  forEachDistanceBlock(
    real,
    fake,
    (block, r0, rows) => {
      for (let i = 0; i < rows; i++) {
        const radius = realRadii[r0 + i];
        const o = i * fake.n;
        for (let j = 0; j < fake.n; j++) if (block[o + j] < radius) inside[j] = 1;
      }
    },
    { precision },
  );
  return inside;
}

interface NeighbourhoodCounts {
  /** Fakes inside at least one real's radius. */
  fakesInRealBalls: number;
  /** Reals inside at least one fake's radius. */
  realsInFakeBalls: number;
  /** Sum over fakes of the number of reals whose radius contains it. */
  realBallsContainingFakes: number;
  /** Reals whose nearest fake is inside the real's radius. */
  coveredReals: number;
}

/** One streaming pass over the real-vs-fake distances (rows: reals, columns: fakes). */
function countNeighbourhoods(
  real: FeatureMatrix,
  fake: FeatureMatrix,
  realRadii: Float64Array,
  fakeRadii: Float64Array,
  precision: DistancePrecision | undefined,
): NeighbourhoodCounts {
  const nf = fake.n;
  const ballsPerFake = new Int32Array(nf);
  let realsInFakeBalls = 0;
  let coveredReals = 0;
  forEachDistanceBlock(
    real,
    fake,
    (block, r0, rows) => {
      for (let i = 0; i < rows; i++) {
        const radius = realRadii[r0 + i];
        const o = i * nf;
        let nearest = Infinity;
        let inFakeBall = false;
        for (let j = 0; j < nf; j++) {
          const dist = block[o + j];
          if (dist < radius) ballsPerFake[j]++;
          if (dist < fakeRadii[j]) inFakeBall = true;
          if (dist < nearest) nearest = dist;
        }
        if (inFakeBall) realsInFakeBalls++;
        if (nearest < radius) coveredReals++;
      }
    },
    { precision },
  );
  let fakesInRealBalls = 0;
  let realBallsContainingFakes = 0;
  for (let j = 0; j < nf; j++) {
    if (ballsPerFake[j] > 0) fakesInRealBalls++;
    realBallsContainingFakes += ballsPerFake[j];
  }
  return { fakesInRealBalls, realsInFakeBalls, realBallsContainingFakes, coveredReals };
}
