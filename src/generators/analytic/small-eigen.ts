/**
 * Eigen-decomposition of a small symmetric matrix (r <= ~20) by the cyclic Jacobi method (Golub &
 * Van Loan, "Matrix Computations", 4th ed., Alg. 8.5.3, with the stable rotation of 8.5.2). Used
 * once per mixture component to rotate the covariance factor U to orthogonal columns, so an r x r
 * problem: accuracy and simplicity matter, speed does not.
 */

export interface SmallEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Eigenvectors as the columns of an n x n row-major matrix, in the order of `values`. */
  vectors: Float64Array;
}

/** The eigenvalues and eigenvectors of the symmetric n x n row-major matrix `s`. */
export function symmetricEigenSmall(s: Float64Array, n: number): SmallEigen {
  const a = Float64Array.from(s);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100 && offDiagonalNorm(a, n) > 1e-30 * (frobeniusNorm(a) || 1); sweep++) {
    for (let p = 0; p < n - 1; p++) for (let q = p + 1; q < n; q++) rotate(a, v, n, p, q);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let i = 0; i < n; i++) vectors[i * n + dst] = v[i * n + src];
  });
  return { values, vectors };
}

/** One Jacobi rotation J(p, q, theta) zeroing a_pq: A <- J^T A J, V <- V J. */
function rotate(a: Float64Array, v: Float64Array, n: number, p: number, q: number): void {
  const apq = a[p * n + q];
  if (apq === 0) return;
  const tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
  const t = (tau >= 0 ? 1 : -1) / (Math.abs(tau) + Math.sqrt(1 + tau * tau));
  const c = 1 / Math.sqrt(1 + t * t);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    // columns p and q
    const akp = a[k * n + p];
    const akq = a[k * n + q];
    a[k * n + p] = c * akp - s * akq;
    a[k * n + q] = s * akp + c * akq;
  }
  for (let k = 0; k < n; k++) {
    // rows p and q
    const apk = a[p * n + k];
    const aqk = a[q * n + k];
    a[p * n + k] = c * apk - s * aqk;
    a[q * n + k] = s * apk + c * aqk;
  }
  for (let k = 0; k < n; k++) {
    const vkp = v[k * n + p];
    const vkq = v[k * n + q];
    v[k * n + p] = c * vkp - s * vkq;
    v[k * n + q] = s * vkp + c * vkq;
  }
}

function offDiagonalNorm(a: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) s += a[i * n + j] ** 2;
  return Math.sqrt(s);
}

function frobeniusNorm(a: Float64Array): number {
  let s = 0;
  for (const x of a) s += x * x;
  return Math.sqrt(s);
}
