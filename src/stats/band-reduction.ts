/**
 * Two-stage reduction of a dense symmetric matrix to tridiagonal form, eigenvalues only:
 *
 * 1. dense -> band of half-bandwidth b by blocked Householder similarity transforms, each panel
 *    a QR factorisation in compact WY form and a two-sided rank-2b update of the trailing matrix
 *    (Bischof, Lang & Sun, "A framework for symmetric band reduction", ACM TOMS 26, 2000;
 *    Golub & Van Loan 4th ed. 5.1.6 for the WY form). All O(n^3) work is GEMM, which runs on
 *    onnxruntime's DGEMM (float64-graphs.ts: bandStepGraph) with the trailing matrix kept in a
 *    worker register, so only the n x b panels travel.
 * 2. band -> tridiagonal by Householder bulge chasing (Lang's column-by-column variant of the
 *    Schwarz/Rutishauser reduction, as in the SBR toolbox's b -> 1 step): O(b n^2) work on small
 *    blocks that stay in cache, done in JavaScript.
 *
 * Why not one-stage tridiagonalisation (LAPACK dsytrd, or ml-matrix's JAMA tred2): half of its
 * 4/3 n^3 flops are symmetric matrix-vector products, one per column, that re-read the whole
 * trailing matrix; they are memory-bound and cannot be batched into GEMMs. In JavaScript that
 * route took ~11 s at n = 2048 (ml-matrix EVD with vectors: far longer); this one ~1-2 s.
 */
import { dotProductsNT, gemmJs, type Matrix } from "./gemm.js";
import { bandStepGraph } from "./float64-graphs.js";
import { ortAvailable, ortExecute } from "./ort-float64.js";

/** A symmetric band matrix in lower storage with room for bulges: A[i][j] at data[w*(i+1) + j], i-w <= j <= i. */
export interface BandMatrix {
  n: number;
  /** Half-bandwidth of the matrix. */
  b: number;
  /** Storage half-width (2b: the bulges of stage 2 reach 2b-1 below the diagonal). */
  w: number;
  data: Float64Array;
}

/** Tridiagonal form: diagonal (n) and sub-diagonal (n-1). */
export interface Tridiagonal {
  diag: Float64Array;
  off: Float64Array;
}

/** Below this order the whole reduction runs in JavaScript (the worker round trips would dominate). */
const ORT_MIN_ORDER = 256;

/**
 * The trailing matrix of the dense-to-band reduction: where it lives (JavaScript array or
 * worker register) is hidden behind these three operations.
 */
interface TrailingMatrix {
  /** Current order m. */
  size(): number;
  /** The first `cols` columns, all m rows, row-major (m x cols). */
  leadingColumns(cols: number): Float64Array;
  /** Replaces the matrix (m x m) by Q^T A[b:, b:] Q, Q = I - V T V^T (V: m-b x b, T: b x b). */
  transform(v: Matrix, t: Matrix): void;
  /** Releases worker memory. */
  dispose(): void;
}

/** Reduces the symmetric n x n matrix `a` (row-major, full storage, not modified) to band form. */
export function reduceToBand(a: Float64Array, n: number, b: number): BandMatrix {
  const w = 2 * b;
  const band: BandMatrix = { n, b, w, data: new Float64Array(n * (w + 1)) };
  const trailing = n >= ORT_MIN_ORDER && ortAvailable() ? registerTrailing(a, n) : arrayTrailing(a, n);
  try {
    let k = 0; // global index of the trailing matrix's first row
    for (;;) {
      const m = trailing.size();
      if (m <= b + 1) {
        storeLowerBlock(band, k, k, trailing.leadingColumns(m), m, m, m);
        break;
      }
      const cols = trailing.leadingColumns(b); // m x b: diagonal block, then the panel below it
      storeLowerBlock(band, k, k, cols, b, b, b);
      const panel = cols.subarray(b * b); // (m-b) x b
      const { v, t, r } = panelQr(panel, m - b, b);
      storeUpperBlock(band, k + b, k, r, Math.min(b, m - b), b);
      trailing.transform(v, t);
      k += b;
    }
  } finally {
    trailing.dispose();
  }
  return band;
}

/**
 * Householder QR of the m x b panel (row-major) in compact WY form: P = Q [R; 0] with
 * Q = H_0 ... H_{b-1} = I - V T V^T (Schreiber & Van Loan 1989; LAPACK dgeqr2 + dlarft).
 * Returns V (m x b, unit lower trapezoidal), T (b x b upper triangular) and R (min(m,b) x b).
 */
export function panelQr(panel: Float64Array, m: number, b: number): { v: Matrix; t: Matrix; r: Float64Array } {
  // Column-major copy: the reflections run down columns.
  const col = new Float64Array(m * b);
  for (let i = 0; i < m; i++) for (let j = 0; j < b; j++) col[j * m + i] = panel[i * b + j];
  const tau = new Float64Array(b);
  const steps = Math.min(m, b);
  for (let j = 0; j < steps; j++) {
    const { beta, mu } = householder(col, j * m + j, m - j);
    tau[j] = beta;
    col[j * m + j] = mu;
    if (beta !== 0) reflectColumns(col, m, j, j + 1, b, beta);
  }
  const r = new Float64Array(steps * b);
  for (let i = 0; i < steps; i++) for (let j = i; j < b; j++) r[i * b + j] = col[j * m + i];
  // Explicit reflector vectors, column-major (unit diagonal, zeros above), then row-major V.
  const vc = new Float64Array(m * b);
  for (let j = 0; j < steps; j++) {
    vc[j * m + j] = 1;
    vc.set(col.subarray(j * m + j + 1, (j + 1) * m), j * m + j + 1);
  }
  const v = new Float64Array(m * b);
  for (let j = 0; j < b; j++) for (let i = j; i < m; i++) v[i * b + j] = vc[j * m + i];
  const gram = new Float64Array(b * b);
  dotProductsNT(vc, vc, gram, b, b, m);
  return { v: { rows: m, cols: b, data: v }, t: { rows: b, cols: b, data: triangularFactor(gram, tau, b) }, r };
}

/**
 * Applies H = I - beta v v^T (v = column j from row j down, v_j = 1 implicit) to columns
 * c0..c1-1 of the column-major m-row matrix, four columns per pass over v.
 */
function reflectColumns(col: Float64Array, m: number, j: number, c0: number, c1: number, beta: number): void {
  const x = j * m;
  let c = c0;
  for (; c + 3 < c1; c += 4) {
    const y0 = c * m;
    const y1 = y0 + m;
    const y2 = y1 + m;
    const y3 = y2 + m;
    let s0 = col[y0 + j];
    let s1 = col[y1 + j];
    let s2 = col[y2 + j];
    let s3 = col[y3 + j];
    for (let i = j + 1; i < m; i++) {
      const vi = col[x + i];
      s0 += vi * col[y0 + i];
      s1 += vi * col[y1 + i];
      s2 += vi * col[y2 + i];
      s3 += vi * col[y3 + i];
    }
    s0 *= beta;
    s1 *= beta;
    s2 *= beta;
    s3 *= beta;
    col[y0 + j] -= s0;
    col[y1 + j] -= s1;
    col[y2 + j] -= s2;
    col[y3 + j] -= s3;
    for (let i = j + 1; i < m; i++) {
      const vi = col[x + i];
      col[y0 + i] -= s0 * vi;
      col[y1 + i] -= s1 * vi;
      col[y2 + i] -= s2 * vi;
      col[y3 + i] -= s3 * vi;
    }
  }
  for (; c < c1; c++) {
    const y = c * m;
    let s0 = col[y + j];
    for (let i = j + 1; i < m; i++) s0 += col[x + i] * col[y + i];
    s0 *= beta;
    col[y + j] -= s0;
    for (let i = j + 1; i < m; i++) col[y + i] -= s0 * col[x + i];
  }
}

/**
 * G&VL Algorithm 5.1.1 on x = data[o .. o+len): makes v (v_0 = 1, stored over x_1..) and beta
 * with (I - beta v v^T) x = mu e_1, mu = ||x|| >= 0. beta = 0 when x is already mu e_1.
 */
function householder(data: Float64Array, o: number, len: number): { beta: number; mu: number } {
  const x0 = data[o];
  let sigma = 0;
  for (let i = 1; i < len; i++) sigma += data[o + i] * data[o + i];
  if (sigma === 0) return { beta: 0, mu: x0 };
  const mu = Math.sqrt(x0 * x0 + sigma);
  const v0 = x0 <= 0 ? x0 - mu : -sigma / (x0 + mu); // the second form avoids cancellation
  const beta = (2 * v0 * v0) / (sigma + v0 * v0);
  const inv = 1 / v0;
  for (let i = 1; i < len; i++) data[o + i] *= inv;
  return { beta, mu };
}

/**
 * LAPACK dlarft (forward, columnwise): T with H_0 ... H_{b-1} = I - V T V^T, from tau and the
 * Gram matrix V^T V: T[j][j] = tau_j, T[0:j, j] = -tau_j T[0:j, 0:j] (V^T v_j)[0:j].
 */
function triangularFactor(gram: Float64Array, tau: Float64Array, b: number): Float64Array {
  const t = new Float64Array(b * b);
  for (let j = 0; j < b; j++) {
    t[j * b + j] = tau[j];
    if (tau[j] === 0) continue;
    for (let i = 0; i < j; i++) {
      let s = 0;
      for (let c = i; c < j; c++) s += t[i * b + c] * gram[c * b + j];
      t[i * b + j] = -tau[j] * s;
    }
  }
  return t;
}

/** Copies the lower triangle of the leading rows x cols block of `src` (row length ld) into the band at (i0, j0). */
function storeLowerBlock(band: BandMatrix, i0: number, j0: number, src: Float64Array, rows: number, cols: number, ld: number): void {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j <= Math.min(i, cols - 1); j++) band.data[band.w * (i0 + i + 1) + j0 + j] = src[i * ld + j];
  }
}

/** Copies the upper triangle of the rows x cols matrix r into the band at (i0, j0) (entries i <= j). */
function storeUpperBlock(band: BandMatrix, i0: number, j0: number, r: Float64Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) for (let j = i; j < cols; j++) band.data[band.w * (i0 + i + 1) + j0 + j] = r[i * cols + j];
}

/** The trailing matrix as a JavaScript array, updated with the JavaScript GEMM kernel. */
function arrayTrailing(a: Float64Array, n: number): TrailingMatrix {
  let m = n;
  let data: Float64Array = Float64Array.from(a.subarray(0, n * n));
  return {
    size: () => m,
    leadingColumns(cols) {
      const out = new Float64Array(m * cols);
      for (let i = 0; i < m; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = data[i * m + j];
      return out;
    },
    transform(v, t) {
      const b = t.rows;
      const k = m - b;
      const a2 = new Float64Array(k * k);
      for (let i = 0; i < k; i++) a2.set(data.subarray((i + b) * m + b, (i + b) * m + m), i * k);
      data = twoSidedUpdate({ rows: k, cols: k, data: a2 }, v, t);
      m = k;
    },
    dispose() {},
  };
}

/** Q^T A Q = A - Y V^T - V Y^T with X = A V T, Y = X - 1/2 V (T^T V^T X) (the bandStepGraph formula). */
function twoSidedUpdate(a: Matrix, v: Matrix, t: Matrix): Float64Array {
  const x = gemmJs(a, gemmJs(v, t));
  const s = gemmJs(t, gemmJs(v, x, { transA: true }), { transA: true });
  const y = gemmJs(v, s, { alpha: -0.5, c: x, beta: 1 });
  const k = a.rows;
  const b = v.cols;
  const yv = new Float64Array(k * 2 * b);
  const vy = new Float64Array(k * 2 * b);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < b; j++) {
      yv[i * 2 * b + j] = y.data[i * b + j];
      yv[i * 2 * b + b + j] = v.data[i * b + j];
      vy[i * 2 * b + j] = v.data[i * b + j];
      vy[i * 2 * b + b + j] = y.data[i * b + j];
    }
  }
  const left = { rows: k, cols: 2 * b, data: yv };
  const right = { rows: k, cols: 2 * b, data: vy };
  return gemmJs(left, right, { transB: true, alpha: -1, c: a, beta: 1 }).data;
}

let registerSerial = 0;

/** The trailing matrix in worker registers (ping-pong between two), updated by bandStepGraph. */
function registerTrailing(a: Float64Array, n: number): TrailingMatrix {
  const id = `band${registerSerial++}`;
  const regs = [`${id}.0`, `${id}.1`];
  let cur = 0;
  let m = n;
  ortExecute([{ op: "put", register: regs[cur], data: n * n === a.length ? a : a.subarray(0, n * n) }]);
  return {
    size: () => m,
    leadingColumns(cols) {
      const out = new Float64Array(m * cols);
      ortExecute([{ op: "get", register: regs[cur], out, block: { ld: m, r0: 0, r1: m, c0: 0, c1: cols } }]);
      return out;
    },
    transform(v, t) {
      const k = m - t.rows;
      const next = 1 - cur;
      ortExecute([
        { op: "put", register: `${id}.V`, data: v.data },
        { op: "put", register: `${id}.T`, data: t.data },
        {
          op: "run",
          graph: bandStepGraph(),
          feeds: { W: [regs[cur], [m, m]], V: [`${id}.V`, [k, v.cols]], T: [`${id}.T`, [t.rows, t.cols]] },
          outputs: { Out: [regs[next], [k, k]] },
        },
      ]);
      cur = next;
      m = k;
    },
    dispose() {
      if (ortAvailable()) ortExecute([{ op: "free", registers: [...regs, `${id}.V`, `${id}.T`] }]);
    },
  };
}

/**
 * Band -> tridiagonal by Householder bulge chasing, eigenvalues only (no transforms kept).
 * Sweep j annihilates column j below the sub-diagonal with a reflector on rows j+1..j+b; the
 * fill it creates below the band is pushed down by further reflectors, each annihilating only
 * the first column of its bulge (the rest is removed by sweep j+1, which passes the same place;
 * Bischof, Lang & Sun 2000, Lang 1993). Every reflector touches three b x b blocks.
 */
export function bandToTridiagonal(band: BandMatrix): Tridiagonal {
  const { n, b, w } = band;
  const a = band.data;
  const v = new Float64Array(b);
  const p = new Float64Array(b);
  for (let j = 0; j < n - 2; j++) {
    let c = j;
    let s = j + 1;
    while (s < n - 1) {
      const e = Math.min(s + b - 1, n - 1);
      const len = e - s + 1;
      const beta = columnReflector(a, w, c, s, len, v);
      if (beta !== 0) {
        reflectRowsLeft(a, w, c + 1, s, len, v, beta);
        reflectSymmetricBlock(a, w, s, len, v, p, beta);
        reflectColumnsRight(a, w, e + 1, Math.min(e + b, n - 1), s, len, v, beta);
      }
      c = s;
      s = e + 1;
    }
  }
  const diag = new Float64Array(n);
  const off = new Float64Array(Math.max(0, n - 1));
  for (let i = 0; i < n; i++) diag[i] = a[w * (i + 1) + i];
  for (let i = 0; i + 1 < n; i++) off[i] = a[w * (i + 2) + i];
  return { diag, off };
}

/** Householder reflector for column c, rows s..s+len-1; applies it to that column. Returns beta (v in `v`). */
function columnReflector(a: Float64Array, w: number, c: number, s: number, len: number, v: Float64Array): number {
  const x0 = a[w * (s + 1) + c];
  let sigma = 0;
  for (let r = 1; r < len; r++) {
    const x = a[w * (s + r + 1) + c];
    sigma += x * x;
  }
  if (sigma === 0) return 0;
  const mu = Math.sqrt(x0 * x0 + sigma);
  const v0 = x0 <= 0 ? x0 - mu : -sigma / (x0 + mu);
  v[0] = 1;
  for (let r = 1; r < len; r++) {
    v[r] = a[w * (s + r + 1) + c] / v0;
    a[w * (s + r + 1) + c] = 0;
  }
  a[w * (s + 1) + c] = mu;
  return (2 * v0 * v0) / (sigma + v0 * v0);
}

/** Rows s..s+len-1, columns c0..s-1: A <- H A (the rest of the bulge, left of the diagonal block). */
function reflectRowsLeft(a: Float64Array, w: number, c0: number, s: number, len: number, v: Float64Array, beta: number): void {
  for (let col = c0; col < s; col++) {
    let t = 0;
    for (let r = 0; r < len; r++) t += v[r] * a[w * (s + r + 1) + col];
    t *= beta;
    for (let r = 0; r < len; r++) a[w * (s + r + 1) + col] -= t * v[r];
  }
}

/** Diagonal block rows/columns s..s+len-1 (lower storage): A <- H A H = A - v q^T - q v^T (G&VL 8.3.1). */
function reflectSymmetricBlock(a: Float64Array, w: number, s: number, len: number, v: Float64Array, p: Float64Array, beta: number): void {
  // p = beta A v from the lower triangle.
  for (let r = 0; r < len; r++) p[r] = 0;
  for (let r = 0; r < len; r++) {
    const row = w * (s + r + 1) + s;
    let acc = 0;
    const vr = v[r];
    for (let q = 0; q < r; q++) {
      const x = a[row + q];
      acc += x * v[q];
      p[q] += x * vr;
    }
    p[r] += acc + a[row + r] * vr;
  }
  let pv = 0;
  for (let r = 0; r < len; r++) {
    p[r] *= beta;
    pv += p[r] * v[r];
  }
  const k = (beta * pv) / 2;
  for (let r = 0; r < len; r++) p[r] -= k * v[r];
  for (let r = 0; r < len; r++) {
    const row = w * (s + r + 1) + s;
    const vr = v[r];
    const qr = p[r];
    for (let q = 0; q <= r; q++) a[row + q] -= vr * p[q] + qr * v[q];
  }
}

/** Rows i0..i1, columns s..s+len-1: A <- A H (this creates the next bulge below the band). */
function reflectColumnsRight(a: Float64Array, w: number, i0: number, i1: number, s: number, len: number, v: Float64Array, beta: number): void {
  for (let i = i0; i <= i1; i++) {
    const row = w * (i + 1) + s;
    let t = 0;
    for (let r = 0; r < len; r++) t += a[row + r] * v[r];
    t *= beta;
    for (let r = 0; r < len; r++) a[row + r] -= t * v[r];
  }
}
