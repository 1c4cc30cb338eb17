/**
 * Gaussian statistics and the Frechet distance at Inception's d = 2048, on synthetic features
 * (N = 5000 rows per set, so both covariances are full rank):
 * - fit_rows_per_s: fitGaussian throughput (rows/s),
 * - frechet_s: frechetDistance between the two fits (seconds: Cholesky of S1 and eigenvalues of
 *   L1^T S2 L1), warm; frechet_first_s: the first call, which also creates the onnxruntime
 *   sessions and worker buffers,
 * - frechet_rel_diff_swapped: relative difference from the same distance computed the other way
 *   round (Cholesky of S2 and eigenvalues of L2^T S1 L2: a different factorisation and a
 *   different symmetric matrix with the same spectrum), an accuracy check that needs no
 *   reference library. (Checked once against numpy: the float64 eigh route agreed within 1.2e-14
 *   relative, scipy's sqrtm as pytorch-fid calls it within 1.7e-14; sqrtm took 8.5 s.)
 * Timings are only meaningful on an otherwise idle machine.
 */
import { frechetDistanceDetails, traceSqrtProduct } from "../src/stats/frechet.js";
import { fitGaussian } from "../src/stats/gaussian.js";
import { ortStatus } from "../src/stats/ort-float64.js";
import type { FeatureMatrix } from "../src/types.js";
import { xorshift32 } from "../test/helpers/xorshift.js";

const D = Number(process.env.BENCH_STATS_D ?? 2048);
const N = Number(process.env.BENCH_STATS_N ?? 5000);

export async function benchStats(): Promise<Record<string, number>> {
  const x1 = syntheticFeatures(N, D, 1, 0);
  const x2 = syntheticFeatures(N, D, 2, 0.05);
  fitGaussian(syntheticFeatures(64, D, 3, 0)); // starts the onnxruntime worker

  const fit = timed(() => fitGaussian(x1));
  const g1 = fit.value;
  const g2 = fitGaussian(x2);
  const first = timed(() => frechetDistanceDetails(g1, g2));
  const swapped = timed(() => traceSqrtProduct(g2.sigma, g1.sigma, D).value);
  const warm = timed(() => frechetDistanceDetails(g1, g2));
  const fd = warm.value;
  const swappedRaw = fd.meanTerm + fd.trace1 + fd.trace2 - 2 * swapped.value;

  return {
    d: D,
    n: N,
    onnxruntime: ortStatus() === "" ? 1 : 0,
    fit_seconds: fit.seconds,
    fit_rows_per_s: N / fit.seconds,
    frechet_s: warm.seconds,
    frechet_first_s: first.seconds,
    frechet_swapped_s: swapped.seconds,
    frechet_value: fd.value,
    frechet_rel_diff_swapped: Math.abs(fd.raw - swappedRaw) / Math.abs(fd.raw),
    trace_sqrt_rel_diff_swapped: Math.abs(fd.traceSqrt - swapped.value) / fd.traceSqrt,
  };
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const t = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - t) / 1000 };
}

/**
 * Non-negative, correlated, unevenly scaled rows (pool3 features are averages of ReLUs):
 * x_j = scale_j * |z_j + 0.5 z_{j-1}| + shift, from a seeded xorshift generator.
 */
export function syntheticFeatures(n: number, d: number, seed: number, shift: number): FeatureMatrix {
  const next = xorshift32(seed * 2654435761);
  const uniform = () => {
    const s = next();
    return (s + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const data = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    let prev = normal();
    for (let j = 0; j < d; j++) {
      const z = normal();
      data[r * d + j] = Math.exp(-2 * (j / d)) * Math.abs(z + 0.5 * prev) + shift;
      prev = z;
    }
  }
  return { n, d, data };
}
