/**
 * Frechet distance between two Gaussians (Dowson & Landau 1982; the FID of Heusel et al. 2017):
 *
 *   FD = ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr((S1 S2)^(1/2))
 *
 * pytorch-fid and clean-fid take scipy's sqrtm of the non-symmetric product S1 S2: slow (8.5 s
 * at d = 2048 with scipy 1.17 on the 2-core dev machine, ~43 s with older scipy) and, when a
 * covariance is singular (fewer samples than dimensions), noisy: it turns the null space's
 * rounding into sqrt(eps)-sized terms (pytorch-fid is ~4e-6 off the exact value on the N = 32
 * fixtures). Here the trace term comes from a symmetric problem:
 *
 * - covariance route: S1 = L L^T (Cholesky; pivoted and rank-revealing when S1 is singular,
 *   cholesky.ts), then Tr((S1 S2)^(1/2)) = sum sqrt(eig(L^T S2 L)): L^T S2 L is symmetric
 *   positive semi-definite with the nonzero eigenvalues of S1 S2. With S1 of rank r < d, L is
 *   d x r and the eigenproblem r x r; what the pivoted factorisation drops is rounding-level.
 *   Eigenvalues from symmetric-eigenvalues.ts; tiny negative ones (rounding) count as 0.
 *   At d = 2048 (full rank) this takes ~2-3 s on the 2-core dev machine with onnxruntime for the
 *   GEMMs, and agrees with numpy's float64 eigh route within ~1e-14 relative.
 * - Gram route (features with n < d): with centred rows X1 (n1 x d), X2 (n2 x d),
 *   Tr((S1 S2)^(1/2)) = ||X1 X2^T||_* / sqrt((n1-1)(n2-1)) = sum sqrt(eig(H H^T)) / ..., H = X1 X2^T,
 *   an n x n problem instead of d x d.
 *
 * Covariances are taken as symmetric: the factored one is read from its upper triangle.
 * The result is clamped at 0 (`raw` keeps the unclamped value): a distance cannot be negative,
 * pytorch-fid's tiny negatives (e.g. -1e-13 for identical inputs) are rounding, and the clamp
 * moves a value by at most that rounding, far inside the 1e-5 agreement we test against it.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { choleskyUpperRegisters, pivotedCholeskyUpper, pivotTolerance, semidefiniteFactor } from "./cholesky.js";
import { gemmGraph, matmulGraph } from "./float64-graphs.js";
import { ortAvailable, ortExecute, ortFree } from "./ort-float64.js";
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
  const s1 = g1.sigma;
  const s2 = g2.sigma;
  // Factor the covariance of fewer samples: its rank (<= n - 1) bounds the eigenproblem's size.
  const swap = g2.n >= 2 && (g1.n < 2 || g2.n < g1.n);
  const { value: traceSqrt, rank } = swap ? traceSqrtProduct(s2, s1, d, g2.n) : traceSqrtProduct(s1, s2, d, g1.n);
  return assemble(squaredDistance(g1.mu, g2.mu), trace(s1, d), trace(s2, d), traceSqrt, rank, "covariance");
}

/** d from which the trace term runs on onnxruntime with the matrices kept in worker registers. */
const ORT_MIN_DIM = 256;
let registerSerial = 0;

/**
 * Tr((A B)^(1/2)) for symmetric positive semi-definite d x d matrices: sum sqrt(eig(U B U^T))
 * with A = U^T U (U r x d, r = numerical rank of A). `nA` (samples behind A, 0 if unknown) only
 * chooses the algorithm: fewer than d + 1 samples means A is singular, so go straight to the
 * pivoted factorisation.
 */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, d: number, nA = 0): { value: number; rank: number } {
  const singular = nA >= 2 && nA <= d; // rank <= nA - 1 < d: plain Cholesky would fail anyway
  if (d >= ORT_MIN_DIM && ortAvailable()) return traceSqrtProductRegisters(a, b, d, singular);
  const factor = singular ? pivotedCholeskyUpper(a, d, pivotTolerance(a, d)) : semidefiniteFactor(a, d);
  const r = factor.rank;
  if (r === 0) return { value: 0, rank: 0 };
  const bp = factor.perm ? permuted(b, d, factor.perm) : b;
  const u: Matrix = { rows: r, cols: d, data: factor.u };
  const ub = gemm(u, { rows: d, cols: d, data: bp });
  const m = gemm(ub, u, { transB: true });
  return { value: sumSqrt(symmetricEigenvalues(symmetrised(m.data, r), r)), rank: r };
}

/**
 * traceSqrtProduct with A, U, B, U B and M = U B U^T in worker registers, so that the d x d
 * matrices cross to the worker once (A and B) and never come back: at d = 2048 every copy of
 * one costs ~10-20 ms. M goes straight into the band reduction's register pipeline. M is
 * symmetric up to rounding (U B U^T by two GEMMs); the reduction reads both triangles, so the
 * eigenvalues are those of a matrix within rounding of its symmetric part.
 */
function traceSqrtProductRegisters(a: Float64Array, b: Float64Array, d: number, singular: boolean): { value: number; rank: number } {
  const id = `fd${registerSerial++}`;
  const [regA, regU, regB, regW, regM] = ["A", "U", "B", "W", "M"].map((x) => `${id}.${x}`);
  try {
    const tol = pivotTolerance(a, d);
    let rank = d;
    let perm: Int32Array | null = null;
    if (!singular) ortExecute([{ op: "put", register: regA, data: a }]);
    if (singular || !choleskyUpperRegisters(regA, regU, d, tol)) {
      const factor = pivotedCholeskyUpper(a, d, tol);
      if (factor.rank === 0) return { value: 0, rank: 0 };
      rank = factor.rank;
      perm = factor.perm;
      ortExecute([{ op: "put", register: regU, data: factor.u }]);
    }
    ortExecute([
      { op: "free", registers: [regA] },
      { op: "put", register: regB, data: perm ? permuted(b, d, perm) : b },
      { op: "run", graph: matmulGraph(), feeds: { A: [regU, [rank, d]], B: [regB, [d, d]] }, outputs: { Y: [regW, [rank, d]] } },
      { op: "run", graph: gemmGraph(false, true, 1, null), feeds: { A: [regW, [rank, d]], B: [regU, [rank, d]] }, outputs: { Y: [regM, [rank, rank]] } },
      { op: "free", registers: [regB, regW, regU] },
    ]);
    return { value: sumSqrt(symmetricEigenvalues({ register: regM }, rank)), rank };
  } finally {
    ortFree(regA, regU, regB, regW, regM);
  }
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
    throw new DiffevalError("E_FEATURE_DIM", `feature sets differ in dimension: ${x1.d} vs ${x2.d}`);
  }
  checkedRows(x1, "first");
  checkedRows(x2, "second");
  if (Math.min(x1.n, x2.n) >= x1.d) return frechetDistanceDetails(fitGaussian(x1), fitGaussian(x2));
  return gramRoute(x1, x2);
}

/** A side of a Frechet distance: its per-image features, its fitted Gaussian, or both. */
export type FrechetSide = { features: FeatureMatrix; gaussian?: Gaussian } | { features?: FeatureMatrix; gaussian: Gaussian };

/**
 * The Frechet distance of two sides, each given as features, an already fitted Gaussian, or both:
 * the Gram route when both have features and either has fewer rows than dimensions; otherwise
 * the covariance route on the Gaussians, reusing a side's fitted one (fitting a 2048-d Gaussian to
 * thousands of rows costs more than the distance itself) and fitting only a side that has none.
 */
export function frechetDistanceOfSides(a: FrechetSide, b: FrechetSide): FrechetDetails {
  if (a.features && b.features && Math.min(a.features.n, b.features.n) < a.features.d) {
    return frechetDistanceFromFeaturesDetails(a.features, b.features);
  }
  const gaussianOf = (s: FrechetSide, which: string) => s.gaussian ?? fitGaussian(checkedRows(s.features!, which));
  return frechetDistanceDetails(gaussianOf(a, "first"), gaussianOf(b, "second"));
}

/** `x`, refused when a row is not finite or when it has fewer than the 2 rows a covariance needs. */
function checkedRows(x: FeatureMatrix, which: string): FeatureMatrix {
  assertFiniteRows(x, 0, `${which} feature set:`);
  if (x.n < 2) throw new DiffevalError("E_TOO_FEW_SAMPLES", `a covariance needs at least 2 feature rows, got ${x.n}`);
  return x;
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
      "E_FEATURE_DIM",
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
