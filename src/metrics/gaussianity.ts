/**
 * How Gaussian is a feature distribution? The Frechet distance models each feature set as a
 * Gaussian; this check says how far that model is from the data, in a form that stays cheap at
 * d = 2048 (a full multivariate normality test would not).
 *
 * Statistic: centre the features, project them on `projections` seeded random unit directions
 * (Gaussian components, normalised: uniform on the sphere), and for each direction take the
 * Kolmogorov-Smirnov distance sup |F_n(t) - Phi(t / s)| between the empirical CDF of the projected
 * values and the normal CDF with the fitted variance s^2 = u^T Sigma u (Sigma with ddof = 1, the
 * covariance the FID uses). With mean and variance estimated from the same data this is
 * Lilliefors' statistic (J. Amer. Statist. Assoc. 62, 1967), whose null distribution depends on
 * n but not on the Gaussian: hence the yardstick below instead of a p-value table. Projections
 * onto random directions: by the Cramer-Wold theorem a distribution is Gaussian iff all its 1-D
 * projections are. What random directions see well is structure shared across coordinates
 * (clusters, modes, heavy common tails); coordinate-wise non-normality of many independent
 * features averages out along a random direction (central limit theorem), so a pass here does not
 * make each feature Gaussian.
 *
 * Yardstick: the same statistic on an equally large sample (same n, same directions) from the
 * fitted N(mu, Sigma): what a truly Gaussian feature set of this size and covariance scores.
 * The sample is drawn directly in projection space: for x ~ N(mu, Sigma) the projections U^T x
 * are exactly N(U^T mu, C) with C = U^T Sigma U (k x k, k = projections), and C = P^T P / (n - 1)
 * from the centred projections P = Xc U. So y = F^T g with C = F^T F (pivoted Cholesky, which
 * also covers singular C, e.g. n <= k) and g ~ N(0, I): the same distribution as sampling the
 * d-dimensional Gaussian and projecting it, for k n rank(C) work instead of n d^2. Sigma itself
 * (singular when n < d) is never formed. The yardstick sample is then re-centred and refitted
 * exactly as the data are.
 *
 * Cost at n = 10,000, d = 2048, k = 128: the n x d x k projection GEMM (2.6e9 multiply-adds,
 * onnxruntime's DGEMM via stats/gemm.ts), 2 k sorts of n values, 2 n k normal CDFs: 1.4 s measured
 * on the 2-core machine.
 */
import { DiffevalError } from "../errors.js";
import { semidefiniteFactor } from "../stats/cholesky.js";
import { gemm } from "../stats/gemm.js";
import type { FeatureMatrix } from "../types.js";
import { createRng, fillNormal, type Rng } from "../random/rng.js";

export interface GaussianityOptions {
  /** Random directions (default 128). */
  projections?: number;
  /** Seed of the directions and of the yardstick sample (default 0). */
  seed?: number;
}

export interface KsSummary {
  /** Median over directions of the KS distance. */
  medianKs: number;
  /** Largest KS distance over the directions. */
  maxKs: number;
}

export interface GaussianityResult extends KsSummary {
  /** The same statistics on a sample of the fitted Gaussian of the same size. */
  yardstick: KsSummary;
  projections: number;
  n: number;
  d: number;
}

/** Rows per block of the projection GEMM: ~16 MiB of float64 at d = 2048. */
const BLOCK_ROWS = 1024;

export function gaussianity(x: FeatureMatrix, opts: GaussianityOptions = {}): GaussianityResult {
  const { projections: k = 128, seed = 0 } = opts;
  const { n, d } = x;
  if (n < 3) throw new DiffevalError("E_TOO_FEW_SAMPLES", `a Gaussianity check needs at least 3 feature rows, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw new DiffevalError("E_USAGE", `projections must be a positive integer, got ${k}`);
  const rng = createRng(seed);
  const directions = randomDirections(rng, k, d);
  const p = centredProjections(x, directions, k);
  const data = ksSummary(p, n, k);
  const yardstick = ksSummary(gaussianProjections(rng, p, n, k), n, k);
  return { ...data, yardstick, projections: k, n, d };
}

/** k unit vectors in R^d (k x d row-major): normalised standard normal vectors. */
function randomDirections(rng: Rng, k: number, d: number): Float64Array {
  const u = fillNormal(rng, new Float64Array(k * d));
  for (let i = 0; i < k; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += u[i * d + j] ** 2;
    const inv = 1 / Math.sqrt(ss);
    for (let j = 0; j < d; j++) u[i * d + j] *= inv;
  }
  return u;
}

/** P = (X - mean) U^T, n x k row-major, in row blocks. */
function centredProjections(x: FeatureMatrix, u: Float64Array, k: number): Float64Array {
  const { n, d, data } = x;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const p = new Float64Array(n * k);
  const dirs = { rows: k, cols: d, data: u };
  for (let r0 = 0; r0 < n; r0 += BLOCK_ROWS) {
    const rows = Math.min(BLOCK_ROWS, n - r0);
    const block = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < d; j++) {
        const v = data[(r0 + r) * d + j];
        if (!Number.isFinite(v)) throw new DiffevalError("E_NONFINITE", `feature row ${r0 + r} holds a NaN or infinite value`);
        block[r * d + j] = v - mean[j];
      }
    }
    gemm({ rows, cols: d, data: block }, dirs, { transB: true }, p.subarray(r0 * k, (r0 + rows) * k));
  }
  return p;
}

/**
 * n rows of k projections drawn from N(0, C), C = P^T P / (n - 1) the covariance of the data's
 * projections: y = F^T g with C = F^T F (F rank x k, semidefiniteFactor) and g ~ N(0, I_rank).
 */
function gaussianProjections(rng: Rng, p: Float64Array, n: number, k: number): Float64Array {
  const pm = { rows: n, cols: k, data: p };
  const c = gemm(pm, pm, { transA: true, alpha: 1 / (n - 1) }).data;
  const f = semidefiniteFactor(c, k);
  const out = new Float64Array(n * k);
  const g = new Float64Array(f.rank);
  for (let i = 0; i < n; i++) {
    fillNormal(rng, g);
    const row = i * k;
    for (let r = 0; r < f.rank; r++) {
      const gr = g[r];
      const fr = r * k;
      for (let j = 0; j < k; j++) out[row + j] += gr * f.u[fr + j];
    }
  }
  return f.perm ? unpermuteColumns(out, n, k, f.perm) : out;
}

/** Column j of the factor belongs to variable perm[j]: scatter the columns back in place order. */
function unpermuteColumns(y: Float64Array, n: number, k: number, perm: Int32Array): Float64Array {
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) out[i * k + perm[j]] = y[i * k + j];
  return out;
}

/** Median and maximum over the k columns of the KS distance to the fitted normal. */
function ksSummary(p: Float64Array, n: number, k: number): KsSummary {
  const ks = new Float64Array(k);
  const col = new Float64Array(n);
  for (let j = 0; j < k; j++) {
    for (let i = 0; i < n; i++) col[i] = p[i * k + j];
    ks[j] = ksToFittedNormal(col);
  }
  ks.sort();
  const mid = k >> 1;
  return { medianKs: k % 2 === 1 ? ks[mid] : (ks[mid - 1] + ks[mid]) / 2, maxKs: ks[k - 1] };
}

/**
 * sup_t |F_n(t) - Phi((t - m) / s)| with m the sample mean and s^2 the sample variance (ddof = 1)
 * of `values` (which it sorts in place). Over the sorted values v_(1..n) the supremum is
 * max_i max(i/n - Phi_i, Phi_i - (i-1)/n), the standard two-sided KS formula.
 */
export function ksToFittedNormal(values: Float64Array): number {
  const n = values.length;
  let m = 0;
  for (let i = 0; i < n; i++) m += values[i];
  m /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - m) ** 2;
  const s = Math.sqrt(ss / (n - 1));
  if (!(s > 0)) {
    throw new DiffevalError("E_DEGENERATE_FEATURES", "the features do not vary along a projection (all rows identical?): no normal fit exists");
  }
  values.sort();
  let dmax = 0;
  for (let i = 0; i < n; i++) {
    const f = normalCdf((values[i] - m) / s);
    dmax = Math.max(dmax, (i + 1) / n - f, f - i / n);
  }
  return dmax;
}

/** The standard normal CDF Phi(z) = erfc(-z / sqrt 2) / 2, accurate to ~1e-16 absolute. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** Below this |x| erf comes from its power series, above it erfc from its continued fraction. */
const SERIES_LIMIT = 2;

/**
 * The complementary error function. |x| < 2: 1 - erf(x), erf from the everywhere-positive series
 * erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1*3*...*(2n+1)) (Abramowitz and Stegun 7.1.6;
 * no cancellation, relative error ~1e-16; erfc then has absolute error ~1e-16, relative < 1e-13
 * since erfc(2) = 4.7e-3). x >= 2: the continued fraction
 * erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) (A&S 7.1.14 rewritten),
 * evaluated by the modified Lentz method (Numerical Recipes 3rd ed. 5.2): at most ~60 terms for
 * x >= 2 (fewer further out), full relative accuracy into the far tail. x <= -2: 2 - erfc(-x).
 * Checked against scipy.special.erf/erfc/ndtr in the tests.
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x >= SERIES_LIMIT) return erfcContinuedFraction(x);
  if (x <= -SERIES_LIMIT) return 2 - erfcContinuedFraction(-x);
  return 1 - erfSeries(x);
}

/** erf(x), same accuracy notes as erfc. */
export function erf(x: number): number {
  if (Math.abs(x) < SERIES_LIMIT) return erfSeries(x);
  return x > 0 ? 1 - erfcContinuedFraction(x) : erfcContinuedFraction(-x) - 1;
}

function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

/** x > 0 (used for x >= 2): f = x + a_1/(x + a_2/(x + ...)), a_m = m/2; erfc = e^{-x^2} / (sqrt(pi) f). */
function erfcContinuedFraction(x: number): number {
  if (x === Infinity) return 0;
  const tiny = 1e-300;
  let f = x;
  let c = f;
  let d = 0;
  for (let m = 1; m < 500; m++) {
    const a = m / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}
