/**
 * Eigenvalues of a dense symmetric matrix: two-stage reduction to tridiagonal form
 * (band-reduction.ts) and the implicit QR algorithm on the tridiagonal (tridiagonal-eigenvalues.ts).
 * No eigenvectors: the Frechet distance needs only the spectrum of one symmetric matrix.
 */
import { bandToTridiagonal, reduceToBand, type DenseSource } from "./band-reduction.js";
import { ortExecute } from "./ort-float64.js";
import { tridiagonalEigenvalues } from "./tridiagonal-eigenvalues.js";

/**
 * Half-bandwidth of the intermediate band matrix. Wider bands make stage 1 (GEMM on
 * onnxruntime) more efficient and stage 2 (bulge chasing in JavaScript, ~7 b n^2 flops) slower.
 * At n = 2048 on the 2-core dev machine (stage 1 + stage 2, seconds): b = 16 with 8-panel
 * groups 1.08 + 0.35; b = 24: 1.0 + 0.6; b = 32 with 4-panel groups 1.1 + 0.68.
 */
export const DEFAULT_BANDWIDTH = 16;

/**
 * Ascending eigenvalues of the symmetric n x n matrix `a` (row-major). An array is read, not
 * modified; a worker register (see ort-float64.ts) is consumed.
 */
export function symmetricEigenvalues(a: DenseSource, n: number, opts: { bandwidth?: number } = {}): Float64Array {
  if (a instanceof Float64Array && a.length < n * n) throw new Error(`symmetricEigenvalues: ${a.length} values for a ${n}x${n} matrix`);
  if (n === 0) return new Float64Array(0);
  if (n === 1) return a instanceof Float64Array ? Float64Array.of(a[0]) : registerScalar(a.register);
  const b = Math.max(1, Math.min(opts.bandwidth ?? DEFAULT_BANDWIDTH, n - 1));
  const t = bandToTridiagonal(reduceToBand(a, n, b));
  return tridiagonalEigenvalues(t.diag, t.off);
}

function registerScalar(register: string): Float64Array {
  const out = new Float64Array(1);
  ortExecute([{ op: "get", register, out }]);
  return out;
}
