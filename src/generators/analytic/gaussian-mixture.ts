/**
 * Gaussian mixtures with low-rank-plus-isotropic covariances, and their exact noised score.
 *
 * A component is N(mu, Sigma) with Sigma = Q diag(lambda) Q^T + sigma^2 I, Q's r rows
 * orthonormal (the same matrix as U U^T + sigma^2 I with U = Q^T diag(sqrt(lambda)): the class
 * catalogue builds U from plausible variations, then rotates it to orthogonal columns once).
 *
 * Under the VP forward process x_t = a x_0 + sqrt(1 - a^2) eps (a = sqrt(alphaBar)), a Gaussian
 * mixture stays one: means a mu_k, covariances Sigma_k(t) = alphaBar Q diag(lambda) Q^T + c I with
 * c = alphaBar sigma^2 + 1 - alphaBar. The Woodbury identity (Woodbury 1950; Golub & Van Loan
 * 4th ed. 2.1.4) and the matrix determinant lemma, with Q orthonormal so the r x r capacitance
 * matrix is diagonal, give in O(d r) per component:
 *   Sigma_k(t)^-1 v = (v - sum_j g_j (q_j . v) q_j) / c,  g_j = alphaBar lambda_j / (alphaBar lambda_j + c)
 *   log det Sigma_k(t) = d log c + sum_j log(1 + alphaBar lambda_j / c)
 * and the score of the mixture is the responsibility-weighted sum of the components' scores:
 *   grad log p_t(x) = - sum_k w_k(x) Sigma_k(t)^-1 (x - a mu_k),  w_k = softmax_k(log pi_k + log N_k(x)).
 * The network's target eps(x_t, t) = -sqrt(1 - alphaBar) grad log p_t(x_t) (Ho et al. 2020,
 * eq. 11 read as a score: Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021).
 */
import type { Rng } from "../../random/rng.js";

export interface GaussianComponent {
  /** mu, length d. */
  readonly mean: Float64Array;
  /** Q: r x d row-major, orthonormal rows (the principal directions of the low-rank part). */
  readonly basis: Float64Array;
  /** lambda_j > 0: the variance along q_j on top of the isotropic part (length r). */
  readonly variances: Float64Array;
  /** sigma^2: the isotropic (pixel-noise) variance. */
  readonly noiseVariance: number;
  /** q_j . mu (length r), precomputed so that q_j . (x - a mu) costs one dot product with x. */
  readonly basisDotMean: Float64Array;
  /** |mu|^2. */
  readonly meanNormSq: number;
  /** [Q; mu^T]: (r + 1) x d, `basis` and `mean` are views of it. */
  readonly rows: Float64Array;
}

export interface GaussianMixture {
  readonly dim: number;
  readonly components: readonly GaussianComponent[];
  /** log pi_k, normalised (logsumexp = 0). */
  readonly logWeights: Float64Array;
}

/** A component from its mean, orthonormal basis rows and variances. */
export function gaussianComponent(mean: Float64Array, basis: Float64Array, variances: Float64Array, noiseVariance: number): GaussianComponent {
  const d = mean.length;
  const r = variances.length;
  if (basis.length !== r * d) throw new RangeError(`basis must be ${r} x ${d}, got ${basis.length} values`);
  // basis rows then the mean, in one buffer: one blocked pass computes all r + 1 dot products with x
  const rows = new Float64Array((r + 1) * d);
  rows.set(basis);
  rows.set(mean, r * d);
  const basisDotMean = new Float64Array(r);
  for (let j = 0; j < r; j++) basisDotMean[j] = dotRow(basis, j * d, mean, d);
  return {
    mean: rows.subarray(r * d),
    basis: rows.subarray(0, r * d),
    rows,
    variances,
    noiseVariance,
    basisDotMean,
    meanNormSq: dot(mean, mean),
  };
}

/** The same component with its low-rank variances times spread^2 (same directions: its dot products are shared through `rows`). */
export function looserTwin(comp: GaussianComponent, spread: number): GaussianComponent {
  return { ...comp, variances: comp.variances.map((v) => v * spread * spread) };
}

/** The mixture sum_k weights_k N(components_k) (weights need not be normalised). */
export function gaussianMixture(components: readonly GaussianComponent[], weights: readonly number[]): GaussianMixture {
  if (components.length === 0 || components.length !== weights.length) throw new RangeError("a mixture needs one positive weight per component");
  const total = weights.reduce((s, w) => s + w, 0);
  return { dim: components[0].mean.length, components, logWeights: Float64Array.from(weights, (w) => Math.log(w / total)) };
}

/** The mixture of mixtures sum_i weights_i M_i, flattened (the class prior over all classes). */
export function mixtureOfMixtures(parts: readonly GaussianMixture[], weights: readonly number[]): GaussianMixture {
  const components: GaussianComponent[] = [];
  const w: number[] = [];
  parts.forEach((m, i) => {
    m.components.forEach((c, k) => {
      components.push(c);
      w.push(weights[i] * Math.exp(m.logWeights[k]));
    });
  });
  return gaussianMixture(components, w);
}

/** Dot products with x per [Q; mu^T] buffer (q_1.x .. q_r.x, then mu.x), shared within one model evaluation by the conditional and unconditional mixtures and by a component and its looser twin. */
export type DotCache = Map<Float64Array, Float64Array>;

/** What one component contributes at (x, alphaBar): its log density and what its score needs. */
interface ComponentTerms {
  logDensity: number;
  /** c = alphaBar sigma^2 + 1 - alphaBar. */
  c: number;
  /** g_j p_j (p_j = q_j . (x - a mu), the Woodbury correction), then a: x - a mu - sum_j g_j p_j q_j = x - [Q; mu^T]^T correction. */
  correction: Float64Array;
}

function componentDots(x: Float64Array, comp: GaussianComponent, cache?: DotCache): Float64Array {
  const hit = cache?.get(comp.rows);
  if (hit) return hit;
  const d = x.length;
  const r = comp.variances.length;
  const out = new Float64Array(r + 1);
  dotRows(comp.rows, r + 1, x, d, out);
  cache?.set(comp.rows, out);
  return out;
}

/** log N(x; a mu, Sigma(t)) via the determinant lemma and Woodbury (see the file comment). */
function componentTerms(x: Float64Array, xNormSq: number, comp: GaussianComponent, ab: number, cache?: DotCache): ComponentTerms {
  const d = x.length;
  const r = comp.variances.length;
  const a = Math.sqrt(ab);
  const c = ab * comp.noiseVariance + 1 - ab;
  const dots = componentDots(x, comp, cache);
  // |x - a mu|^2 expanded: no d-length temporary per component
  const residualSq = Math.max(0, xNormSq - 2 * a * dots[r] + ab * comp.meanNormSq);
  let quad = residualSq;
  let logDet = d * Math.log(c);
  const correction = new Float64Array(r + 1);
  correction[r] = a;
  for (let j = 0; j < r; j++) {
    const p = dots[j] - a * comp.basisDotMean[j];
    const lam = ab * comp.variances[j];
    const g = lam / (lam + c);
    quad -= g * p * p;
    logDet += Math.log1p(lam / c);
    correction[j] = g * p;
  }
  const logDensity = -0.5 * (d * Math.log(2 * Math.PI) + logDet + quad / c);
  return { logDensity, c, correction };
}

function allTerms(x: Float64Array, ab: number, mixture: GaussianMixture, cache?: DotCache): { terms: ComponentTerms[]; logJoint: Float64Array; logSum: number } {
  const xNormSq = dot(x, x);
  const terms = mixture.components.map((comp) => componentTerms(x, xNormSq, comp, ab, cache));
  const logJoint = Float64Array.from(terms, (term, k) => term.logDensity + mixture.logWeights[k]);
  return { terms, logJoint, logSum: logSumExp(logJoint) };
}

/** log p_t(x) of the noised mixture at noise level alphaBar (exact, including the 2 pi constant). */
export function noisedLogDensity(x: Float64Array, ab: number, mixture: GaussianMixture): number {
  return allTerms(x, ab, mixture).logSum;
}

/** Posterior responsibilities below this are skipped in the score sum (their terms are < 1e-13 of it). */
const NEGLIGIBLE_RESPONSIBILITY = 1e-13;

/**
 * The exact eps(x_t, t) = -sqrt(1 - alphaBar) grad log p_t(x_t) of the noised mixture, written
 * into `out` (allocated when absent). `cache` shares dot products with another mixture that has
 * components in common (the conditional and the unconditional model).
 */
export function mixtureEps(x: Float64Array, ab: number, mixture: GaussianMixture, out?: Float64Array, cache?: DotCache): Float64Array {
  const d = x.length;
  if (d !== mixture.dim) throw new RangeError(`x has ${d} values, the model ${mixture.dim}`);
  const { terms, logJoint, logSum } = allTerms(x, ab, mixture, cache);
  const s = Math.sqrt(1 - ab);
  // eps = s sum_k (w_k / c_k) (x - a mu_k - sum_j g_j p_j q_j)
  const coefs = Float64Array.from(terms, (term, k) => {
    const w = Math.exp(logJoint[k] - logSum);
    return w < NEGLIGIBLE_RESPONSIBILITY ? 0 : (s * w) / term.c;
  });
  return weightedResiduals(x, mixture.components, terms, coefs, out ?? new Float64Array(d));
}

/**
 * out = sum_k coefs_k (x - a mu_k - sum_j g_j p_j q_j) = sum_k coefs_k c_k Sigma_k(t)^-1 (x - a mu_k),
 * components with a zero coefficient skipped: the x coefficient gathered, and the row coefficients
 * per distinct [Q; mu^T] buffer (a component and its looser twin share one).
 */
function weightedResiduals(x: Float64Array, components: readonly GaussianComponent[], terms: readonly ComponentTerms[], coefs: Float64Array, out: Float64Array): Float64Array {
  const d = x.length;
  let xCoef = 0;
  const rowCoefs = new Map<Float64Array, Float64Array>();
  for (let k = 0; k < terms.length; k++) {
    const scale = coefs[k];
    if (scale === 0) continue;
    xCoef += scale;
    const rows = components[k].rows;
    let coef = rowCoefs.get(rows);
    if (!coef) rowCoefs.set(rows, (coef = new Float64Array(terms[k].correction.length)));
    const corr = terms[k].correction;
    for (let j = 0; j < corr.length; j++) coef[j] -= scale * corr[j];
  }
  for (let i = 0; i < d; i++) out[i] = xCoef * x[i];
  for (const [rows, coef] of rowCoefs) addRows(rows, coef, 1, out, d);
  return out;
}

/**
 * The exact Bayes classifier over the classes of a model: p(y | x_t) = pi_y p_t(x_t | y) /
 * sum_k pi_k p_t(x_t | k), each p_t(. | k) the class's mixture noised in closed form (see the file
 * comment). What classifier guidance (Dhariwal & Nichol, "Diffusion Models Beat GANs on Image
 * Synthesis", NeurIPS 2021, Alg. 2 / eq. 14) differentiates, here without a trained classifier.
 */
export interface MixtureClassifier {
  readonly classes: readonly GaussianMixture[];
  /** log pi_y, normalised (logsumexp = 0). */
  readonly logPriors: Float64Array;
}

/** The classifier of `classes` with priors proportional to `weights`. */
export function mixtureClassifier(classes: readonly GaussianMixture[], weights: readonly number[]): MixtureClassifier {
  if (classes.length === 0 || classes.length !== weights.length) throw new RangeError("a classifier needs one positive prior weight per class");
  const total = weights.reduce((s, w) => s + w, 0);
  return { classes, logPriors: Float64Array.from(weights, (w) => Math.log(w / total)) };
}

/** Per class y and component k: log pi_y + log w_yk + log N_yk(x_t), and the component terms. */
function classJoints(x: Float64Array, ab: number, clf: MixtureClassifier, cache?: DotCache): Array<{ terms: ComponentTerms[]; logJoint: Float64Array }> {
  const xNormSq = dot(x, x);
  return clf.classes.map((mixture, y) => {
    if (x.length !== mixture.dim) throw new RangeError(`x has ${x.length} values, the model ${mixture.dim}`);
    const terms = mixture.components.map((comp) => componentTerms(x, xNormSq, comp, ab, cache));
    return { terms, logJoint: Float64Array.from(terms, (term, k) => term.logDensity + mixture.logWeights[k] + clf.logPriors[y]) };
  });
}

/** log p(y | x_t) of the exact classifier at noise level alphaBar. */
export function classLogPosterior(x: Float64Array, ab: number, clf: MixtureClassifier, y: number): number {
  const perClass = classJoints(x, ab, clf).map((c) => logSumExp(c.logJoint));
  return perClass[y] - logSumExp(Float64Array.from(perClass));
}

/**
 * grad_x log p(y | x_t) of the exact classifier, written into `out`. By Bayes it is
 * grad log p_t(x | y) - grad log p_t(x) with p_t = sum_k pi_k p_t(. | k); computed here in one
 * pass over every class's components, each component's score -Sigma_k(t)^-1 (x - a mu_k)
 * weighted by (its responsibility within class y) - (its responsibility in the whole mixture),
 * so it does not reuse mixtureEps: the test that CFG with the mixture as unconditional model
 * equals classifier guidance compares two computations, not one twice.
 */
export function classLogPosteriorGrad(x: Float64Array, ab: number, clf: MixtureClassifier, y: number, out?: Float64Array, cache?: DotCache): Float64Array {
  const joints = classJoints(x, ab, clf, cache);
  const logClass = Float64Array.from(joints, (c) => logSumExp(c.logJoint));
  const logAll = logSumExp(logClass);
  const components = clf.classes.flatMap((m) => m.components);
  const terms = joints.flatMap((c) => c.terms);
  const coefs = new Float64Array(terms.length);
  let k = 0;
  joints.forEach((c, cls) => {
    for (const lj of c.logJoint) {
      const inClass = cls === y ? Math.exp(lj - logClass[y]) : 0;
      const overall = Math.exp(lj - logAll);
      // score_k = -(x - a mu_k - ...) / c_k; skipped only where both responsibilities are negligible
      coefs[k] = inClass < NEGLIGIBLE_RESPONSIBILITY && overall < NEGLIGIBLE_RESPONSIBILITY ? 0 : -(inClass - overall) / terms[k].c;
      k++;
    }
  });
  return weightedResiduals(x, components, terms, coefs, out ?? new Float64Array(x.length));
}

/** One exact draw from the (clean) mixture: a component by its weight, then mu + Q diag(sqrt(lambda)) z + sigma e. */
export function sampleMixture(mixture: GaussianMixture, rng: Rng): Float64Array {
  return sampleComponent(mixture.components[drawIndex(mixture.logWeights, rng)], rng);
}

/** One exact draw from N(mu, Q diag(lambda) Q^T + sigma^2 I). */
export function sampleComponent(comp: GaussianComponent, rng: Rng): Float64Array {
  const d = comp.mean.length;
  const x = new Float64Array(d);
  const sigma = Math.sqrt(comp.noiseVariance);
  for (let i = 0; i < d; i++) x[i] = comp.mean[i] + sigma * rng.normal();
  for (let j = 0; j < comp.variances.length; j++) axpy(Math.sqrt(comp.variances[j]) * rng.normal(), comp.basis, j * d, x, d);
  return x;
}

function drawIndex(logWeights: Float64Array, rng: Rng): number {
  let u = rng.uniform();
  for (let k = 0; k < logWeights.length - 1; k++) {
    u -= Math.exp(logWeights[k]);
    if (u < 0) return k;
  }
  return logWeights.length - 1;
}

function logSumExp(v: Float64Array): number {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  let sum = 0;
  for (const x of v) sum += Math.exp(x - max);
  return max + Math.log(sum);
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * out[j] = row j of the row-major rows x d matrix m, dotted with v. Four rows per pass over v
 * (each v[i] loaded once, four independent sums): about twice the speed of one row at a time, and
 * these dot products are most of the model's cost.
 */
function dotRows(m: Float64Array, rows: number, v: Float64Array, d: number, out: Float64Array): void {
  let j = 0;
  for (; j + 4 <= rows; j += 4) {
    const o0 = j * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < d; i++) {
      const vi = v[i];
      s0 += m[o0 + i] * vi;
      s1 += m[o1 + i] * vi;
      s2 += m[o2 + i] * vi;
      s3 += m[o3 + i] * vi;
    }
    out[j] = s0;
    out[j + 1] = s1;
    out[j + 2] = s2;
    out[j + 3] = s3;
  }
  for (; j < rows; j++) out[j] = dotRow(m, j * d, v, d);
}

/** y += scale * sum_j coef[j] * (row j of m): four rows per pass over y. */
function addRows(m: Float64Array, coef: Float64Array, scale: number, y: Float64Array, d: number): void {
  const rows = coef.length;
  let j = 0;
  for (; j + 4 <= rows; j += 4) {
    const o0 = j * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    const c0 = scale * coef[j];
    const c1 = scale * coef[j + 1];
    const c2 = scale * coef[j + 2];
    const c3 = scale * coef[j + 3];
    for (let i = 0; i < d; i++) y[i] += c0 * m[o0 + i] + c1 * m[o1 + i] + c2 * m[o2 + i] + c3 * m[o3 + i];
  }
  for (; j < rows; j++) axpy(scale * coef[j], m, j * d, y, d);
}

/** Row j of a row-major matrix (starting at `offset`) dotted with v. */
function dotRow(m: Float64Array, offset: number, v: Float64Array, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) s += m[offset + i] * v[i];
  return s;
}

/** y += alpha * m[offset .. offset + d). */
function axpy(alpha: number, m: Float64Array, offset: number, y: Float64Array, d: number): void {
  for (let i = 0; i < d; i++) y[i] += alpha * m[offset + i];
}
