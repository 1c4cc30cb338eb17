/**
 * Inception Score (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016):
 * IS = exp(E_x KL(p(y|x) || p(y))), computed on each of `splits` consecutive chunks of the samples
 * (rows i*N//splits .. (i+1)*N//splits, as torch-fidelity and the original code slice them) with
 * p(y) the mean of p(y|x) over the chunk; reported as the mean and population std (np.std,
 * ddof = 0) of the per-split scores.
 *
 * This follows torch-fidelity's `isc_features_to_metric` (torch_fidelity/metric_isc.py):
 * - the input is its "logits_unbiased" feature: pool3 @ fc.weight^T, the Inception fc layer
 *   WITHOUT its bias, over all 1008 classes (the FID Inception's 1008-way head, not the 1000
 *   ImageNet classes); the features/ stage must produce exactly that for the numbers to match,
 * - rows are first shuffled with `np.random.RandomState(rng_seed).permutation(N)` (torch-fidelity's
 *   defaults: shuffle on, seed 2020; pass `shuffleSeed: 2020` to reproduce it; leave it out to
 *   split in the given order),
 * - everything after the shuffle runs in float64: softmax p, log_softmax log p, q = mean of p over
 *   the split, KL_i = sum_c p_ic (log p_ic - log q_c), score = exp(mean_i KL_i).
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";
import { NumpyRandomState } from "../random/numpy-random.js";
import { gemm } from "../stats/gemm.js";

/** torch-fidelity's default `rng_seed` for the shuffle before the splits (metric_isc.py). */
export const TORCH_FIDELITY_SHUFFLE_SEED = 2020;

/**
 * torch-fidelity's Inception Score input: pool3 @ fc.weight^T, all 1008 classes, without the fc
 * bias ("logits_unbiased"). Computed in float64.
 */
export function unbiasedLogits(pool3: FeatureMatrix, fcWeight: Float32Array): FeatureMatrix {
  const classes = fcWeight.length / pool3.d;
  const y = gemm(
    { rows: pool3.n, cols: pool3.d, data: Float64Array.from(pool3.data) },
    { rows: classes, cols: pool3.d, data: Float64Array.from(fcWeight) },
    { transB: true },
  );
  return { n: pool3.n, d: classes, data: Float32Array.from(y.data) };
}

export interface InceptionScoreOptions {
  /** Number of splits (default 10). */
  splits?: number;
  /** Shuffle rows with numpy's RandomState(seed).permutation first (torch-fidelity: 2020). */
  shuffleSeed?: number;
}

export interface InceptionScoreResult {
  mean: number;
  /** Population std (ddof = 0) of the per-split scores. */
  std: number;
  splits: number;
}

export function inceptionScore(logits: FeatureMatrix, opts: InceptionScoreOptions = {}): InceptionScoreResult {
  const splits = opts.splits ?? 10;
  const { n, d } = logits;
  if (!Number.isInteger(splits) || splits < 1) throw new DiffevalError("E_USAGE", `Inception Score splits must be a positive integer, got ${splits}`);
  if (n < splits) throw new DiffevalError("E_TOO_FEW_SAMPLES", `Inception Score with ${splits} splits needs at least ${splits} samples, got ${n}`);
  if (d < 1) throw new DiffevalError("E_FEATURE_DIM", "Inception Score needs logits with at least one class");
  const order = opts.shuffleSeed === undefined ? null : new NumpyRandomState(opts.shuffleSeed).permutation(n);
  const logP = logSoftmaxRows(logits, order);
  const scores = new Float64Array(splits);
  for (let s = 0; s < splits; s++) {
    // Python's i * N // splits on non-negative integers.
    const r0 = Math.floor((s * n) / splits);
    const r1 = Math.floor(((s + 1) * n) / splits);
    scores[s] = splitScore(logP, r0, r1, d);
  }
  let mean = 0;
  for (const v of scores) mean += v;
  mean /= splits;
  let v2 = 0;
  for (const v of scores) v2 += (v - mean) ** 2;
  return { mean, std: Math.sqrt(v2 / splits), splits };
}

/** log_softmax of each row in float64 (torch: x - max - log(sum(exp(x - max)))), rows in `order`. */
function logSoftmaxRows(logits: FeatureMatrix, order: Int32Array | null): Float64Array {
  const { n, d, data } = logits;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const src = (order ? order[i] : i) * d;
    let max = -Infinity;
    for (let c = 0; c < d; c++) max = Math.max(max, data[src + c]);
    let sum = 0;
    for (let c = 0; c < d; c++) sum += Math.exp(data[src + c] - max);
    const logSum = Math.log(sum);
    for (let c = 0; c < d; c++) out[i * d + c] = data[src + c] - max - logSum;
  }
  return out;
}

/** exp(mean over rows r0..r1 of KL(p(y|x) || mean p(y|x))). */
function splitScore(logP: Float64Array, r0: number, r1: number, d: number): number {
  const rows = r1 - r0;
  const q = new Float64Array(d);
  for (let i = r0; i < r1; i++) for (let c = 0; c < d; c++) q[c] += Math.exp(logP[i * d + c]);
  const logQ = q.map((v) => Math.log(v / rows));
  let klSum = 0;
  for (let i = r0; i < r1; i++) {
    let kl = 0;
    for (let c = 0; c < d; c++) {
      const lp = logP[i * d + c];
      kl += Math.exp(lp) * (lp - logQ[c]);
    }
    klSum += kl;
  }
  return Math.exp(klSum / rows);
}
