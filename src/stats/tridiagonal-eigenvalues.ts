/**
 * Eigenvalues of a symmetric tridiagonal matrix by the implicit symmetric QR algorithm with
 * Wilkinson shifts (Golub & Van Loan, Matrix Computations 4th ed., Algorithms 8.3.2 and 8.3.3).
 * Eigenvalues only: O(n^2) work, no vectors. Backward stable: each eigenvalue is exact for a
 * matrix within a few ulps of ||T|| of the input, which is all the Frechet trace term needs.
 */

/** Ascending eigenvalues of the tridiagonal matrix with diagonal `diag` and off-diagonal `off` (n-1). */
export function tridiagonalEigenvalues(diag: Float64Array, off: Float64Array): Float64Array {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const e = Float64Array.from(off.subarray(0, Math.max(0, n - 1)));
  const eps = Number.EPSILON;
  let hi = n - 1;
  let steps = 0;
  while (hi > 0) {
    if (negligible(e[hi - 1], d[hi - 1], d[hi], eps)) {
      e[hi - 1] = 0;
      hi--;
      continue;
    }
    let lo = hi - 1;
    while (lo > 0 && !negligible(e[lo - 1], d[lo - 1], d[lo], eps)) lo--;
    if (lo > 0) e[lo - 1] = 0;
    qrStep(d, e, lo, hi);
    if (++steps > 50 * n) throw new Error("tridiagonalEigenvalues: QR iteration did not converge");
  }
  return d.sort();
}

/** Golub & Van Loan's deflation test (8.3.5): |e| <= eps (|d_i| + |d_i+1|). */
function negligible(e: number, a: number, b: number, eps: number): boolean {
  return Math.abs(e) <= eps * (Math.abs(a) + Math.abs(b));
}

/**
 * One implicit QR step with Wilkinson shift on the unreduced block lo..hi: Givens rotations
 * chase the bulge from the top of the block to the bottom (G&VL Algorithm 8.3.2).
 */
function qrStep(d: Float64Array, e: Float64Array, lo: number, hi: number): void {
  const mu = wilkinsonShift(d[hi - 1], e[hi - 1], d[hi]);
  let x = d[lo] - mu;
  let z = e[lo];
  for (let k = lo; k < hi; k++) {
    const r = Math.sqrt(x * x + z * z);
    const c = r === 0 ? 1 : x / r;
    const s = r === 0 ? 0 : -z / r;
    if (k > lo) e[k - 1] = r;
    const a = d[k];
    const b = e[k];
    const cc = d[k + 1];
    const cs = c * s;
    d[k] = c * c * a - 2 * cs * b + s * s * cc;
    d[k + 1] = s * s * a + 2 * cs * b + c * c * cc;
    e[k] = cs * (a - cc) + (c * c - s * s) * b;
    if (k < hi - 1) {
      x = e[k];
      z = -s * e[k + 1];
      e[k + 1] *= c;
    }
  }
}

/** The eigenvalue of [[a, b], [b, c]] closer to c (G&VL 8.3.4), written to avoid cancellation. */
function wilkinsonShift(a: number, b: number, c: number): number {
  const delta = (a - c) / 2;
  const sign = delta >= 0 ? 1 : -1;
  const denom = delta + sign * Math.hypot(delta, b);
  return denom === 0 ? c : c - (b * b) / denom;
}
