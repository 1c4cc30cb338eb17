/**
 * Factorisations S = L L^T of a covariance matrix, written as S = U^T U with U = L^T upper
 * triangular so that the rows of U (the columns of L) are contiguous in row-major storage.
 *
 * - `choleskyUpper`: blocked right-looking Cholesky (LAPACK dpotrf's structure; Golub & Van Loan
 *   4th ed. 4.2.9) on arrays, and `choleskyUpperRegisters`, its left-looking twin on onnxruntime
 *   with everything in worker registers. Both give up at the first pivot that is not clearly
 *   positive.
 * - `pivotedCholeskyUpper`: Cholesky with diagonal pivoting for positive SEMI-definite matrices
 *   (LAPACK dpstrf; Higham, "Analysis of the Cholesky decomposition of a semi-definite matrix",
 *   1990): P^T S P = U^T U with U r x n, stopping when the largest remaining pivot is below
 *   n * eps * max(diag S) (dpstrf's default tolerance). The rank r it finds is the numerical
 *   rank; the dropped Schur complement is at rounding level. Singular covariances (fewer samples
 *   than dimensions) take this path.
 */
import { gemm, type Matrix } from "./gemm.js";
import { gemmGraph } from "./float64-graphs.js";
import { ortExecute, ortFree, type OrtOp } from "./ort-float64.js";

/** S = P U^T U P^T: `u` is rank x n (row-major), column j of U belongs to variable perm[j]. */
export interface SemidefiniteFactor {
  n: number;
  rank: number;
  u: Float64Array;
  /** null: the identity permutation. */
  perm: Int32Array | null;
}

/**
 * Panel width: the panels' JavaScript work grows as n^2 NB, the number of GEMM round trips as
 * n / NB. At n = 2048 on onnxruntime: NB = 32 took ~0.5 s, 64 ~0.33 s, 96 ~0.38 s.
 */
const NB = 64;

/** dpstrf's default threshold for "zero" pivots: n * eps * max(diag). */
export function pivotTolerance(a: Float64Array, n: number): number {
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, a[i * n + i]);
  return n * Number.EPSILON * maxDiag;
}

/** The factor of a positive semi-definite matrix: plain Cholesky when it is clearly definite, pivoted otherwise. */
export function semidefiniteFactor(a: Float64Array, n: number): SemidefiniteFactor {
  const tol = pivotTolerance(a, n);
  const u = choleskyUpper(a, n, tol);
  return u ? { n, rank: n, u, perm: null } : pivotedCholeskyUpper(a, n, tol);
}

/**
 * Upper Cholesky factor U (n x n row-major, A = U^T U) of the symmetric matrix `a` (not modified),
 * or null when a pivot falls to `tol` or below (singular or indefinite to working precision).
 */
export function choleskyUpper(a: Float64Array, n: number, tol: number): Float64Array | null {
  const u = new Float64Array(n * n);
  const trailing = arrayTrailing(a, n);
  for (let k = 0; k < n; k += NB) {
    const m = n - k;
    const nb = Math.min(NB, m);
    const rows = trailing.leadingRows(nb); // nb x m
    for (let j = 0; j < nb; j++) {
      if (!factorRow(rows, j, m, tol)) return null;
    }
    for (let j = 0; j < nb; j++) u.set(rows.subarray(j * m + j, (j + 1) * m), (k + j) * n + k + j);
    if (m > nb) trailing.update(rows, nb, m);
  }
  return u;
}

/**
 * choleskyUpper with the matrix and the factor in worker registers: `aReg` holds A (n x n, read
 * only), `uReg` receives U (n x n, zero below the diagonal). Left-looking (G&VL 4.2.8's gaxpy
 * form, blocked): panel rows k..k+nb of U need A[k:k+nb, :] - U[0:k, k:k+nb]^T U[0:k, :], one
 * GEMM that reads the finished rows of U once and writes only nb x n values. The right-looking
 * form would rewrite the whole trailing matrix per panel, and memory traffic, not flops, is what
 * costs here (one pass over 32 MiB takes ~10 ms). Returns false when a pivot is <= tol.
 */
export function choleskyUpperRegisters(aReg: string, uReg: string, n: number, tol: number): boolean {
  const id = `chol${registerSerial++}`;
  let pendingPut: OrtOp[] = [{ op: "alloc", register: uReg, length: n * n }];
  try {
    for (let k = 0; k < n; k += NB) {
      const m = n - k;
      const nb = Math.min(NB, m);
      const rows = new Float64Array(nb * n);
      const ops: OrtOp[] = [...pendingPut];
      if (k === 0) {
        ops.push({ op: "get", register: aReg, out: rows, block: { ld: n, r0: 0, r1: nb, c0: 0, c1: n } });
      } else {
        ops.push(
          { op: "block", out: `${id}.G`, src: { register: uReg, ld: n, r0: 0, c0: k }, rows: k, cols: nb },
          {
            op: "run",
            graph: gemmGraph(true, false, -1, 1),
            feeds: { A: [`${id}.G`, [k, nb]], B: [uReg, [k, n]], C: [aReg, [nb, n], k * n] },
            outputs: { Y: [`${id}.rows`, [nb, n]] },
          },
          { op: "get", register: `${id}.rows`, out: rows },
        );
      }
      ortExecute(ops);
      const panel = new Float64Array(nb * m);
      for (let j = 0; j < nb; j++) panel.set(rows.subarray(j * n + k, (j + 1) * n), j * m);
      for (let j = 0; j < nb; j++) if (!factorRow(panel, j, m, tol)) return false;
      const full = new Float64Array(nb * n); // rows of U, zero left of the diagonal
      for (let j = 0; j < nb; j++) full.set(panel.subarray(j * m + j, (j + 1) * m), j * n + k + j);
      pendingPut = [{ op: "put", register: uReg, data: full, offset: k * n }];
    }
    ortExecute(pendingPut);
    return true;
  } finally {
    ortFree(`${id}.G`, `${id}.rows`);
  }
}

/**
 * Row j of the panel (nb x m, rows 0..j-1 already factor rows): U[j, j:] = (A[j, j:] -
 * sum_{c<j} U[c, j] U[c, j:]) / sqrt(pivot). Returns false when the pivot is <= tol.
 */
function factorRow(rows: Float64Array, j: number, m: number, tol: number): boolean {
  const rj = j * m;
  let c = 0;
  for (; c + 3 < j; c += 4) {
    const r0 = c * m;
    const r1 = r0 + m;
    const r2 = r1 + m;
    const r3 = r2 + m;
    const u0 = rows[r0 + j];
    const u1 = rows[r1 + j];
    const u2 = rows[r2 + j];
    const u3 = rows[r3 + j];
    for (let i = j; i < m; i++) rows[rj + i] -= u0 * rows[r0 + i] + u1 * rows[r1 + i] + u2 * rows[r2 + i] + u3 * rows[r3 + i];
  }
  for (; c < j; c++) {
    const r0 = c * m;
    const u0 = rows[r0 + j];
    for (let i = j; i < m; i++) rows[rj + i] -= u0 * rows[r0 + i];
  }
  const pivot = rows[rj + j];
  if (!(pivot > tol)) return false;
  const ujj = Math.sqrt(pivot);
  rows[rj + j] = ujj;
  const inv = 1 / ujj;
  for (let i = j + 1; i < m; i++) rows[rj + i] *= inv;
  return true;
}

interface CholeskyTrailing {
  /** The first `count` rows of the current trailing matrix (count x m). */
  leadingRows(count: number): Float64Array;
  /** A <- A[nb:, nb:] - P^T P, P = rows[:, nb:] (the panel's factor rows right of the diagonal block). */
  update(rows: Float64Array, nb: number, m: number): void;
}

function panelRight(rows: Float64Array, nb: number, m: number): Matrix {
  const k = m - nb;
  const p = new Float64Array(nb * k);
  for (let j = 0; j < nb; j++) p.set(rows.subarray(j * m + nb, (j + 1) * m), j * k);
  return { rows: nb, cols: k, data: p };
}

function arrayTrailing(a: Float64Array, n: number): CholeskyTrailing {
  let m = n;
  let data: Float64Array = Float64Array.from(a.subarray(0, n * n));
  return {
    leadingRows: (count) => data.slice(0, count * m),
    update(rows, nb) {
      const p = panelRight(rows, nb, m);
      const k = m - nb;
      const c = new Float64Array(k * k);
      for (let i = 0; i < k; i++) c.set(data.subarray((i + nb) * m + nb, (i + nb + 1) * m), i * k);
      data = gemm(p, p, { transA: true, alpha: -1, c: { rows: k, cols: k, data: c }, beta: 1 }).data;
      m = k;
    },
  };
}

let registerSerial = 0;

/**
 * Pivoted Cholesky of a positive semi-definite matrix (dpstrf's algorithm, left-looking within
 * panels of NB columns, the trailing matrix updated by GEMM after each panel). Pivot rows and
 * columns are swapped in the trailing matrix as they are chosen; dpstrf stops when the largest
 * remaining diagonal of the Schur complement is <= tol.
 */
export function pivotedCholeskyUpper(a: Float64Array, n: number, tol = pivotTolerance(a, n)): SemidefiniteFactor {
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const u = new Float64Array(n * n);
  let work: Float64Array = Float64Array.from(a.subarray(0, n * n)); // trailing matrix, m x m
  let rank = 0;
  for (let k = 0; k < n; ) {
    const m = n - k;
    const nb = Math.min(NB, m);
    const d = new Float64Array(m); // diagonal of the Schur complement, updated column by column
    for (let i = 0; i < m; i++) d[i] = work[i * m + i];
    const rows = new Float64Array(nb * m);
    let done = 0;
    for (let j = 0; j < nb; j++) {
      let q = j;
      for (let i = j + 1; i < m; i++) if (d[i] > d[q]) q = i;
      if (!(d[q] > tol)) break;
      if (q !== j) swapPivot(work, m, rows, j, q, d, u, n, k, perm);
      rows.set(work.subarray(j * m, (j + 1) * m), j * m);
      if (!factorRow(rows, j, m, 0)) break; // d[q] and the recomputed pivot differ by rounding only
      for (let i = j + 1; i < m; i++) d[i] -= rows[j * m + i] * rows[j * m + i];
      done++;
    }
    for (let j = 0; j < done; j++) u.set(rows.subarray(j * m + j, (j + 1) * m), (k + j) * n + k + j);
    rank += done;
    if (done < nb || m === nb) break;
    const p = panelRight(rows, nb, m);
    const kk = m - nb;
    const c = new Float64Array(kk * kk);
    for (let i = 0; i < kk; i++) c.set(work.subarray((i + nb) * m + nb, (i + nb + 1) * m), i * kk);
    work = gemm(p, p, { transA: true, alpha: -1, c: { rows: kk, cols: kk, data: c }, beta: 1 }).data;
    k += nb;
  }
  return { n, rank, u: u.slice(0, rank * n), perm };
}

/**
 * Symmetric swap of trailing indices j and q (j < q): rows and columns of the trailing matrix,
 * the pending diagonal, the panel rows computed so far, the finished rows of U, and perm.
 */
function swapPivot(
  work: Float64Array,
  m: number,
  rows: Float64Array,
  j: number,
  q: number,
  d: Float64Array,
  u: Float64Array,
  n: number,
  k: number,
  perm: Int32Array,
): void {
  swapRange(work, j * m, q * m, m);
  for (let i = 0; i < m; i++) swap(work, i * m + j, i * m + q);
  swap(d, j, q);
  for (let c = 0; c < j; c++) swap(rows, c * m + j, c * m + q);
  for (let r = 0; r < k; r++) swap(u, r * n + k + j, r * n + k + q);
  const t = perm[k + j];
  perm[k + j] = perm[k + q];
  perm[k + q] = t;
}

function swapRange(a: Float64Array, x: number, y: number, len: number): void {
  for (let i = 0; i < len; i++) swap(a, x + i, y + i);
}

function swap(a: Float64Array, x: number, y: number): void {
  const t = a[x];
  a[x] = a[y];
  a[y] = t;
}
