/**
 * The sample-based metrics at Inception's d = 2048 on synthetic features, 10k real vs 10k fake
 * (BENCH_METRICS_N, BENCH_METRICS_D to change):
 * - prdc_s: precision/recall/density/coverage (k = 5): three 10k x 10k distance matrices
 *   (~1.2 TFLOP of float64 products), streamed block by block,
 * - prdc_rss_before_mb / prdc_rss_after_mb: the process's peak RSS (worker threads included)
 *   before and after, so the difference bounds what PRDC added to the peak,
 * - kid_s: KID with 100 subsets of 1000 (~1.2 TFLOP of float64 products).
 */
import { kid } from "../src/metrics/kid.js";
import { prdc } from "../src/metrics/prdc.js";
import { ortStatus } from "../src/stats/ort-float64.js";
import type { FeatureMatrix } from "../src/types.js";
import { xorshift32 } from "../test/helpers/xorshift.js";

const N = Number(process.env.BENCH_METRICS_N ?? 10_000);
const D = Number(process.env.BENCH_METRICS_D ?? 2048);

export async function benchMetrics(): Promise<Record<string, number>> {
  const real = benchFeatures(N, D, 1, 0);
  const fake = benchFeatures(N, D, 2, 0.02);
  prdc(benchFeatures(64, D, 3, 0), benchFeatures(64, D, 4, 0)); // warm-up: starts the onnxruntime worker

  const rssBefore = peakRssMb();
  let t = performance.now();
  const p = prdc(real, fake, { k: 5 });
  const prdcSeconds = (performance.now() - t) / 1000;
  const rssAfter = peakRssMb();

  t = performance.now();
  const k = kid(real, fake, { subsets: 100, subsetSize: 1000 });
  const kidSeconds = (performance.now() - t) / 1000;

  return {
    n: N,
    d: D,
    onnxruntime: ortStatus() === "" ? 1 : 0,
    prdc_s: prdcSeconds,
    prdc_rss_before_mb: rssBefore,
    prdc_rss_after_mb: rssAfter,
    precision: p.precision,
    recall: p.recall,
    density: p.density,
    coverage: p.coverage,
    kid_s: kidSeconds,
    kid_mean: k.mean,
    kid_std: k.std,
    rss_after_kid_mb: peakRssMb(),
  };
}

/** Peak resident set size of the process so far, in MB (maxRSS is in kilobytes). */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Non-negative, unevenly scaled rows from a seeded xorshift generator (pool3 features are
 * averages of ReLUs): x_j = exp(-2 j / d) * u + shift, u uniform in [0, 1).
 */
function benchFeatures(n: number, d: number, seed: number, shift: number): FeatureMatrix {
  const next = xorshift32(seed * 2654435761);
  const data = new Float32Array(n * d);
  const scale = Float32Array.from({ length: d }, (_, j) => Math.exp((-2 * j) / d));
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) {
      const s = next();
      data[r * d + j] = scale[j] * (s / 4294967296) + shift;
    }
  }
  return { n, d, data };
}
