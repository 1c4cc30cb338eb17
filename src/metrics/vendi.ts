/**
 * The Vendi score (Friedman and Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
 * Learning", TMLR 2023): the exponential of the Shannon entropy of the eigenvalues of K / n, where
 * K is an n x n similarity matrix with K_ii = 1. It reads as an effective number of distinct
 * samples: 1 when all samples are alike, n when they are mutually orthogonal.
 *
 * Kernel: cosine similarity, K = X X^T with the rows of X scaled to unit L2 norm (the choice of
 * the Vendi package's `embedding_vendi_score` and of dgm-eval's Vendi on image features).
 * Entropy: -sum lambda log lambda with 0 log 0 = 0; eigenvalues that rounding pushes to or below
 * zero count as zero, as the Vendi package's `entropy_q` keeps only lambda > 0.
 *
 * Cost: X X^T / n (n x n) and X^T X / n (d x d) share their non-zero eigenvalues, so the smaller
 * one is formed (the package's `score_dual` does the same). At n = 10,000 and d = 2048 that is a
 * 2048 x 2048 matrix: an n d^2 GEMM (4.2e10 multiply-adds, onnxruntime's DGEMM via stats/gemm.ts)
 * plus one symmetric eigenvalue problem of order 2048: ~4 s in all on the 2-core machine.
 */
import { DiffevalError } from "../errors.js";
import { gemm } from "../stats/gemm.js";
import { symmetricEigenvalues } from "../stats/symmetric-eigenvalues.js";
import type { FeatureMatrix } from "../types.js";

export interface VendiResult {
  /** exp(entropy): between 1 and min(n, d). */
  score: number;
  /** -sum lambda log lambda (natural log) over the eigenvalues of K / n. */
  entropy: number;
  n: number;
  d: number;
  /** Order of the matrix whose eigenvalues were taken: n (Gram form) or d (when n > d). */
  kernelOrder: number;
}

/** Rows per block when accumulating X^T X: ~16 MiB of float64 at d = 2048. */
const BLOCK_ROWS = 1024;

/** Vendi score with the cosine kernel. Throws E_TOO_FEW_SAMPLES for n = 0, E_NONFINITE for an all-zero row. */
export function vendiScore(x: FeatureMatrix): VendiResult {
  const { n, d } = x;
  if (n < 1) throw new DiffevalError("E_TOO_FEW_SAMPLES", "the Vendi score needs at least one feature row, got none");
  const k = n <= d ? cosineGramOverN(x) : cosineCovarianceOverN(x);
  const order = Math.min(n, d);
  const entropy = spectralEntropy(symmetricEigenvalues(k, order));
  return { score: Math.exp(entropy), entropy, n, d, kernelOrder: order };
}

/** -sum lambda log lambda over the positive eigenvalues (0 log 0 = 0). */
export function spectralEntropy(eigenvalues: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < eigenvalues.length; i++) {
    const l = eigenvalues[i];
    if (l > 0) h -= l * Math.log(l);
  }
  return h;
}

/** Rows first..first+rows of x as float64, each scaled to unit L2 norm. */
function unitRows(x: FeatureMatrix, first: number, rows: number): Float64Array {
  const { d, data } = x;
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const src = (first + r) * d;
    let ss = 0;
    for (let j = 0; j < d; j++) ss += data[src + j] * data[src + j];
    if (!(ss > 0) || !Number.isFinite(ss)) {
      throw new DiffevalError(
        "E_NONFINITE",
        `feature row ${first + r} is ${ss > 0 ? "not finite" : "all zeros"}: the cosine kernel of the Vendi score needs a direction for every row`,
      );
    }
    const inv = 1 / Math.sqrt(ss);
    for (let j = 0; j < d; j++) out[r * d + j] = data[src + j] * inv;
  }
  return out;
}

/** X X^T / n (n x n) of the unit rows. */
function cosineGramOverN(x: FeatureMatrix): Float64Array {
  const { n, d } = x;
  const u = { rows: n, cols: d, data: unitRows(x, 0, n) };
  return gemm(u, u, { transB: true, alpha: 1 / n }).data;
}

/** X^T X / n (d x d) of the unit rows, accumulated over row blocks so memory stays at O(d^2). */
function cosineCovarianceOverN(x: FeatureMatrix): Float64Array {
  const { n, d } = x;
  const acc = { rows: d, cols: d, data: new Float64Array(d * d) };
  for (let first = 0; first < n; first += BLOCK_ROWS) {
    const rows = Math.min(BLOCK_ROWS, n - first);
    const block = { rows, cols: d, data: unitRows(x, first, rows) };
    // acc = block^T block / n + acc, written back into acc (gemm reads C before it writes out)
    gemm(block, block, { transA: true, alpha: 1 / n, c: acc, beta: 1 }, acc.data);
  }
  return acc.data;
}
