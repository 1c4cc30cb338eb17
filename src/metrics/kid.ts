/**
 * Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018): the unbiased
 * estimate of the squared MMD between real and fake features under the polynomial kernel
 * k(x, y) = (x.y / d + 1)^3, averaged over random subsets of size m = min(subsetSize, n_real,
 * n_fake) drawn without replacement:
 *
 *   MMD^2_u = [sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)] / (m (m - 1))
 *             - 2 sum_{i, j} k(x_i, y_j) / m^2.
 *
 * Both reference tools compute this same estimator; they differ in small ways this module follows
 * per `convention`:
 * - clean-fid (`kernel_distance` in cleanfid/fid.py, called as kernel_distance(real, fake)):
 *   per subset it draws fake indices then real indices with the global `np.random`
 *   (`choice(n, m, replace=False)`), accumulates t += (sum_{i!=j}(Kxx + Kyy)_{ij}) / (m - 1) -
 *   2 sum Kxy / m and returns t / subsets / m; the kernel divides by d. It returns no spread.
 * - torch-fidelity (`kid_features_to_metric` in torch_fidelity/metric_kid.py): one
 *   `np.random.RandomState(rng_seed)` (default 2020) draws input 1's indices then input 2's per
 *   subset, `mmd2` as written above, the kernel multiplies by gamma = 1/d; it reports
 *   np.mean and np.std (population, ddof = 0) of the per-subset values. torch-fidelity refuses
 *   subset sizes larger than the sample counts; here the size is clamped instead, as clean-fid does.
 *   Inputs are taken as input1 = fake, input2 = real (its documented `input1=generator` usage).
 *
 * The index stream is numpy's (numpy-random.ts): with the same seed the subsets are the ones
 * torch-fidelity draws, and the ones clean-fid draws after `np.random.seed(seed)`. `std` is the
 * population std over subsets for both conventions (clean-fid has none of its own).
 *
 * Precision: everything here runs in float64 (float32 features, exact float64 products, float64
 * sums), which is what both formulas give on float64 features (clean-fid's, on the fixtures: within
 * 1e-16). Both tools as shipped hand numpy float32 features (clean-fid's get_folder_features and
 * torch-fidelity's `.cpu().numpy()`), so their matmul, kernel and sums round in float32 and each
 * per-subset value carries ~1e-7 of rounding noise that depends on the BLAS build: on the fixtures
 * torch-fidelity's 100 permutations of the same 32 rows scatter with std 1.2e-7 (exactly 0 here)
 * and its mean sits 4.2e-8 from the float64 value. Neither a float32 emulation with sequential nor
 * with blocked sums reproduces that noise, so none is attempted.
 */
import { DiffevalError } from "../errors.js";
import type { FeatureMatrix } from "../types.js";
import { NumpyRandomState } from "../random/numpy-random.js";
import { gramMatrices, releaseGramMatrices, type GramMatrices } from "./pairwise.js";

export type KidConvention = "clean-fid" | "torch-fidelity";

export interface KidOptions {
  /** Number of subsets (default 100, both tools). */
  subsets?: number;
  /** Largest subset size (default 1000, both tools); clamped to the sample counts. */
  subsetSize?: number;
  /** numpy RandomState seed for the subset draws (default 2020, torch-fidelity's rng_seed). */
  seed?: number;
  /** Whose formula and operation order to follow (default "clean-fid"). */
  convention?: KidConvention;
}

export interface KidResult {
  mean: number;
  /** Population std (ddof = 0) over the per-subset estimates, as torch-fidelity reports it. */
  std: number;
  subsets: number;
  subsetSize: number;
}

export const KID_DEFAULT_SEED = 2020;

export function kid(real: FeatureMatrix, fake: FeatureMatrix, opts: KidOptions = {}): KidResult {
  const subsets = opts.subsets ?? 100;
  const convention = opts.convention ?? "clean-fid";
  const m = Math.min(opts.subsetSize ?? 1000, real.n, fake.n);
  checkInputs(real, fake, subsets, m, convention);
  const rng = new NumpyRandomState(opts.seed ?? KID_DEFAULT_SEED);
  const d = real.d;
  const x = new Float64Array(m * d); // fake subset (clean-fid's x, torch-fidelity's features_1)
  const y = new Float64Array(m * d); // real subset
  const gram: GramMatrices = { xx: new Float64Array(m * m), yy: new Float64Array(m * m), xy: new Float64Array(m * m) };
  const values = new Float64Array(subsets);
  let t = 0; // clean-fid's running sum
  try {
    for (let s = 0; s < subsets; s++) {
      gatherRows(fake, rng.choiceWithoutReplacement(fake.n, m), x);
      gatherRows(real, rng.choiceWithoutReplacement(real.n, m), y);
      gramMatrices(x, m, y, m, d, gram);
      const sums = kernelSums(gram, m, d, convention);
      if (convention === "clean-fid") {
        const ts = sums.offDiagonal / (m - 1) - (sums.cross * 2) / m;
        t += ts;
        values[s] = ts / m;
      } else {
        values[s] = sums.offDiagonal / (m * (m - 1)) - (2 * sums.cross) / (m * m);
      }
    }
  } finally {
    releaseGramMatrices();
  }
  const mean = convention === "clean-fid" ? t / subsets / m : meanOf(values);
  return { mean, std: populationStd(values, meanOf(values)), subsets, subsetSize: m };
}

function checkInputs(real: FeatureMatrix, fake: FeatureMatrix, subsets: number, m: number, convention: string): void {
  if (convention !== "clean-fid" && convention !== "torch-fidelity") {
    throw new DiffevalError("E_USAGE", `unknown KID convention "${convention}"; use "clean-fid" or "torch-fidelity"`);
  }
  if (real.d !== fake.d) throw new DiffevalError("E_FEATURE_DIM", `real and fake features have different dimensions (${real.d} vs ${fake.d}); extract both with the same encoder`);
  if (!Number.isInteger(subsets) || subsets < 1) throw new DiffevalError("E_USAGE", `KID subsets must be a positive integer, got ${subsets}`);
  if (!Number.isInteger(m) || m < 2) {
    throw new DiffevalError("E_TOO_FEW_SAMPLES", `KID needs subsets of at least 2 samples (got size ${m} from ${real.n} real and ${fake.n} fake samples)`);
  }
}

function gatherRows(src: FeatureMatrix, rows: Int32Array, out: Float64Array): void {
  const d = src.d;
  for (let i = 0; i < rows.length; i++) {
    const o = rows[i] * d;
    for (let p = 0; p < d; p++) out[i * d + p] = src.data[o + p];
  }
}

interface KernelSums {
  /** sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j). */
  offDiagonal: number;
  /** sum_{i, j} k(x_i, y_j). */
  cross: number;
}

/**
 * The polynomial-kernel sums of one subset. clean-fid scales the dot product as `x @ y.T / n`,
 * torch-fidelity as `matmul(X, Y.T) * gamma` with gamma = 1.0 / d; they round differently unless d
 * is a power of two (2048 is), so each is reproduced as written. Row sums first, then their total
 * (numpy sums pairwise; a flat running sum of 10^6 terms would lose more).
 */
function kernelSums(g: GramMatrices, m: number, d: number, convention: KidConvention): KernelSums {
  const gamma = 1.0 / d;
  const byDivision = convention === "clean-fid";
  const k = (dot: number) => {
    const v = (byDivision ? dot / d : dot * gamma) + 1;
    return v * v * v;
  };
  let offDiagonal = 0;
  let cross = 0;
  for (let i = 0; i < m; i++) {
    let rowXX = 0;
    let rowYY = 0;
    let rowXY = 0;
    const o = i * m;
    for (let j = 0; j < m; j++) {
      if (j !== i) {
        rowXX += k(g.xx[o + j]);
        rowYY += k(g.yy[o + j]);
      }
      rowXY += k(g.xy[o + j]);
    }
    offDiagonal += rowXX + rowYY;
    cross += rowXY;
  }
  return { offDiagonal, cross };
}

function meanOf(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  return s / v.length;
}

/** np.std(v) (ddof = 0). */
function populationStd(v: Float64Array, mean: number): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] - mean) ** 2;
  return Math.sqrt(s / v.length);
}
