/**
 * Frechet distance between two Gaussians (Dowson & Landau 1982; the FID of Heusel et al. 2017):
 *
 *   FD = ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr((S1 S2)^(1/2))
 *
 * pytorch-fid and clean-fid take scipy's sqrtm of the non-symmetric product S1 S2, which is slow
 * (~43 s at d = 2048) and, when a covariance is singular (fewer samples than dimensions), returns
 * complex noise that they discard. Here the trace term comes from a symmetric problem:
 *
 * - covariance route: S1 = L L^T (Cholesky; pivoted and rank-revealing when S1 is singular,
 *   cholesky.ts), then Tr((S1 S2)^(1/2)) = sum sqrt(eig(L^T S2 L)), because L^T S2 L is
 *   symmetric positive semi-definite and similar to S1 S2's nonzero part. Its eigenvalues come
 *   from symmetric-eigenvalues.ts. Tiny negative eigenvalues (rounding) are clamped to 0.
 * - Gram route (features with n < d): with centred rows X1 (n1 x d), X2 (n2 x d),
 *   Tr((S1 S2)^(1/2)) = ||X1 X2^T||_* / sqrt((n1-1)(n2-1)) = sum sqrt(eig(H H^T)) / ..., H = X1 X2^T,
 *   an n x n problem instead of d x d.
 *
 * The result is clamped at 0 (`raw` keeps the unclamped value): a distance cannot be negative,
 * pytorch-fid's tiny negatives (e.g. -1e-13 for identical inputs) are rounding, and the clamp
 * moves a value by at most that rounding, far inside the 1e-5 agreement we test against it.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { semidefiniteFactor, pivotedCholeskyUpper, pivotTolerance } from "./cholesky.js";
import { gemm, type Matrix } from "./gemm.js";
import { assertFiniteRows, fitGaussian } from "./gaussian.js";
import { symmetricEigenvalues } from "./symmetric-eigenvalues.js";

export interface FrechetDetails {
  /** max(0, raw): the Frechet distance. */
  value: number;
  /** meanTerm + trace1 + trace2 - 2 traceSqrt, unclamped. */
  raw: number;
  /** ||mu1 - mu2||^2 */
  meanTerm: number;
  /** Tr S1, Tr S2 */
  trace1: number;
  trace2: number;
  /** Tr((S1 S2)^(1/2)) */
  traceSqrt: number;
  /** Numerical rank of the symmetric problem whose eigenvalues gave traceSqrt. */
  rank: number;
  route: "covariance" | "gram";
}

/** The Frechet distance between two Gaussians (pytorch-fid's formula, computed stably). */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  return frechetDistanceDetails(g1, g2).value;
}

export function frechetDistanceDetails(g1: Gaussian, g2: Gaussian): FrechetDetails {
  const d = g1.mu.length;
  assertGaussian(g1, d, "first");
  assertGaussian(g2, d, "second");
  const s1 = symmetrised(g1.sigma, d);
  const s2 = symmetrised(g2.sigma, d);
  // Factor the covariance of fewer samples: its rank (<= n - 1) bounds the eigenproblem's size.
  const swap = g2.n >= 2 && (g1.n < 2 || g2.n < g1.n);
  const { value: traceSqrt, rank } = swap ? traceSqrtProduct(s2, s1, d, g2.n) : traceSqrtProduct(s1, s2, d, g1.n);
  return assemble(squaredDistance(g1.mu, g2.mu), trace(s1, d), trace(s2, d), traceSqrt, rank, "covariance");
}

/**
 * Tr((A B)^(1/2)) for symmetric positive semi-definite d x d matrices: sum sqrt(eig(U B U^T))
 * with A = U^T U (U r x d, r = numerical rank of A). `nA` (samples behind A, 0 if unknown) only
 * chooses the algorithm: fewer than d + 1 samples means A is singular, so go straight to the
 * pivoted factorisation.
 */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, d: number, nA = 0): { value: number; rank: number } {
  const factor = nA >= 2 && nA <= d ? pivotedCholeskyUpper(a, d, pivotTolerance(a, d)) : semidefiniteFactor(a, d);
  const r = factor.rank;
  if (r === 0) return { value: 0, rank: 0 };
  const bp = factor.perm ? permuted(b, d, factor.perm) : b;
  const u: Matrix = { rows: r, cols: d, data: factor.u };
  const ub = gemm(u, { rows: d, cols: d, data: bp });
  const m = gemm(ub, u, { transB: true });
  return { value: sumSqrt(symmetricEigenvalues(symmetrised(m.data, r), r)), rank: r };
}

/**
 * The Frechet distance between the Gaussians fitted to two feature sets (ddof = 1). When either
 * set has fewer rows than dimensions, the trace term comes from the n x n Gram form, which is
 * cheaper and avoids the singular d x d covariances; otherwise from the covariances.
 */
export function frechetDistanceFromFeatures(x1: FeatureMatrix, x2: FeatureMatrix): number {
  return frechetDistanceFromFeaturesDetails(x1, x2).value;
}

export function frechetDistanceFromFeaturesDetails(x1: FeatureMatrix, x2: FeatureMatrix): FrechetDetails {
  if (x1.d !== x2.d) {
    throw new DiffevalError("E_STATS_DIM", `feature sets differ in dimension: ${x1.d} vs ${x2.d}`);
  }
  assertFiniteRows(x1, 0, "first feature set:");
  assertFiniteRows(x2, 0, "second feature set:");
  for (const x of [x1, x2]) {
    if (x.n < 2) throw new DiffevalError("E_TOO_FEW_SAMPLES", `a covariance needs at least 2 feature rows, got ${x.n}`);
  }
  if (Math.min(x1.n, x2.n) >= x1.d) return frechetDistanceDetails(fitGaussian(x1), fitGaussian(x2));
  return gramRoute(x1, x2);
}

/** Rows of the feature set per chunk of the larger set in the Gram route (bounds memory to ~32 MiB). */
function chunkRows(d: number): number {
  return Math.max(16, Math.floor((4 << 20) / d));
}

/**
 * Gram route. Let A be the smaller set (nA < d). With centred rows, A has the all-ones vector
 * in its left null space; one Householder reflection mapping 1/sqrt(nA) to e1 turns A into a
 * zero row plus A' ((nA-1) x d) with A'^T A' = Ac^T Ac, and dropping that row removes an exact
 * zero eigenvalue that rounding would otherwise turn into sqrt(eps)-sized noise. Then
 * K = A' Bc^T Bc A'^T is accumulated over chunks of B, and Tr((S_A S_B)^(1/2)) =
 * sum sqrt(eig K) / sqrt((nA-1)(nB-1)).
 */
function gramRoute(x1: FeatureMatrix, x2: FeatureMatrix): FrechetDetails {
  const swap = x2.n < x1.n;
  const a = swap ? x2 : x1;
  const b = swap ? x1 : x2;
  const d = a.d;
  const muA = columnMeans(a);
  const muB = columnMeans(b);
  const { rows: ap, sumSquares: ssA } = helmertCentred(a, muA);
  const k = a.n - 1;
  let gram: Float64Array = new Float64Array(k * k);
  let ssB = 0;
  const step = chunkRows(d);
  for (let r0 = 0; r0 < b.n; r0 += step) {
    const rows = Math.min(step, b.n - r0);
    const chunk = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < d; j++) {
        const v = b.data[(r0 + r) * d + j] - muB[j];
        chunk[r * d + j] = v;
        ssB += v * v;
      }
    }
    const h = gemm(ap, { rows, cols: d, data: chunk }, { transB: true }); // k x rows
    gram = gemm(h, h, { transB: true, c: { rows: k, cols: k, data: gram }, beta: 1 }).data;
  }
  const traceSqrt = sumSqrt(symmetricEigenvalues(symmetrised(gram, k), k)) / Math.sqrt((a.n - 1) * (b.n - 1));
  const traceA = ssA / (a.n - 1);
  const traceB = ssB / (b.n - 1);
  const [t1, t2] = swap ? [traceB, traceA] : [traceA, traceB];
  return assemble(squaredDistance(muA, muB), t1, t2, traceSqrt, k, "gram");
}

/** Centred rows of x, reflected so the (zero) component along the ones vector is dropped: (n-1) x d. */
function helmertCentred(x: FeatureMatrix, mu: Float64Array): { rows: Matrix; sumSquares: number } {
  const { n, d } = x;
  const centred = new Float64Array(n * d);
  const colSum = new Float64Array(d);
  let sumSquares = 0;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) {
      const v = x.data[r * d + j] - mu[j];
      centred[r * d + j] = v;
      colSum[j] += v;
      sumSquares += v * v;
    }
  }
  // H = I - 2 w w^T / (w^T w), w = 1 + sqrt(n) e1: H 1 = -sqrt(n) e1. Rows i >= 1 of H Xc are
  // Xc_i - s / (n + sqrt n) with s = 1^T Xc + sqrt(n) Xc_0 (G&VL 5.1.2, with the sign that avoids cancellation).
  const rootN = Math.sqrt(n);
  const c = 1 / (n + rootN);
  const s = new Float64Array(d);
  for (let j = 0; j < d; j++) s[j] = (colSum[j] + rootN * centred[j]) * c;
  const out = new Float64Array((n - 1) * d);
  for (let r = 1; r < n; r++) for (let j = 0; j < d; j++) out[(r - 1) * d + j] = centred[r * d + j] - s[j];
  return { rows: { rows: n - 1, cols: d, data: out }, sumSquares };
}

function assemble(meanTerm: number, trace1: number, trace2: number, traceSqrt: number, rank: number, route: FrechetDetails["route"]): FrechetDetails {
  const raw = meanTerm + trace1 + trace2 - 2 * traceSqrt;
  return { value: Math.max(0, raw), raw, meanTerm, trace1, trace2, traceSqrt, rank, route };
}

function assertGaussian(g: Gaussian, d: number, which: string): void {
  if (g.mu.length !== d || g.sigma.length !== d * d) {
    throw new DiffevalError(
      "E_STATS_DIM",
      `the ${which} Gaussian has mu of length ${g.mu.length} and sigma of ${g.sigma.length} values; expected ${d} and ${d * d} (both Gaussians must have the same dimension)`,
    );
  }
  for (const [name, arr] of [["mu", g.mu], ["sigma", g.sigma]] as const) {
    for (let i = 0; i < arr.length; i++) {
      if (!Number.isFinite(arr[i])) {
        throw new DiffevalError("E_NONFINITE", `the ${which} Gaussian's ${name}[${i}] is ${arr[i]}; recompute the statistics`);
      }
    }
  }
}

/** (S + S^T) / 2: exact symmetry for the factorisations, which read one triangle. */
function symmetrised(s: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    out[i * d + i] = s[i * d + i];
    for (let j = i + 1; j < d; j++) {
      const v = (s[i * d + j] + s[j * d + i]) / 2;
      out[i * d + j] = v;
      out[j * d + i] = v;
    }
  }
  return out;
}

function permuted(s: Float64Array, d: number, perm: Int32Array): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const row = perm[i] * d;
    for (let j = 0; j < d; j++) out[i * d + j] = s[row + perm[j]];
  }
  return out;
}

function sumSqrt(eigenvalues: Float64Array): number {
  let s = 0;
  for (const v of eigenvalues) if (v > 0) s += Math.sqrt(v);
  return s;
}

function trace(s: Float64Array, d: number): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += s[i * d + i];
  return t;
}

function squaredDistance(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

function columnMeans(x: FeatureMatrix): Float64Array {
  const mu = new Float64Array(x.d);
  for (let r = 0; r < x.n; r++) for (let j = 0; j < x.d; j++) mu[j] += x.data[r * x.d + j];
  for (let j = 0; j < x.d; j++) mu[j] /= x.n;
  return mu;
}
