/**
 * Two-stage reduction of a dense symmetric matrix to tridiagonal form, eigenvalues only:
 *
 * 1. dense -> band of half-bandwidth b by blocked Householder similarity transforms, each panel
 *    a QR factorisation in compact WY form and a two-sided rank-2b update of the trailing matrix
 *    (Bischof, Lang & Sun, "A framework for symmetric band reduction", ACM TOMS 26, 2000;
 *    Golub & Van Loan 4th ed. 5.1.6 for the WY form). All O(n^3) work is GEMM, which runs on
 *    onnxruntime's DGEMM with the trailing matrix kept in a worker register, so only the n x b
 *    panels travel; updates are applied once per group of panels (see reduceInRegisters).
 * 2. band -> tridiagonal by Householder bulge chasing (Lang's column-by-column variant of the
 *    Schwarz/Rutishauser reduction, as in the SBR toolbox's b -> 1 step): O(b n^2) work on small
 *    blocks that stay in cache, done in JavaScript.
 *
 * Why not one-stage tridiagonalisation (LAPACK dsytrd, or ml-matrix's EVD, which is JAMA's
 * tred2 + tql2): half of its 4/3 n^3 flops are symmetric matrix-vector products, one per column,
 * each re-reading the whole trailing matrix; they are memory-bound and cannot be batched into
 * GEMMs, so they cannot use onnxruntime. ml-matrix's EVD (which always forms eigenvectors too)
 * measured 1.6 s at n = 512, 9.2 s at 1024 and 72 s at 2048 on the 2-core dev machine; this
 * route takes ~1.3 s at n = 2048 (stage 1 ~0.9 s, stage 2 ~0.35 s, tridiagonal QR ~0.1 s).
 */
import { dotProductsNT, gemmJs, transpose, type Matrix } from "./gemm.js";
import { gemmGraph, panelUpdateFactorGraph } from "./float64-graphs.js";
import { ortAvailable, ortExecute, ortFree, type OrtOp, type RegisterRef } from "./ort-float64.js";

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
 * Panels per group in the register pipeline: the trailing matrix is rewritten once per group
 * (one rank-2gb update) instead of once per panel. On this VM one pass over a 2048^2 float64
 * matrix costs ~10 ms, as much as the panel's GEMM flops, so fewer passes is what pays.
 */
const GROUP_PANELS = 8;

/** A dense matrix: a row-major array, or a worker register holding one (see ort-float64.ts). */
export type DenseSource = Float64Array | { register: string };

/**
 * Reduces the symmetric n x n matrix `a` (row-major, full storage) to band form. An array is
 * not modified; a register is consumed (overwritten) and must hold a symmetric matrix.
 */
export function reduceToBand(a: DenseSource, n: number, b: number): BandMatrix {
  const band: BandMatrix = { n, b, w: 2 * b, data: new Float64Array(n * (2 * b + 1)) };
  if (!(a instanceof Float64Array)) reduceInRegisters(a.register, band);
  else if (n >= ORT_MIN_ORDER && ortAvailable()) reduceInRegisters(putMatrix(a, n), band);
  else reduceInArrays(a, band);
  return band;
}

/** The JavaScript route: one panel at a time, trailing update with the JavaScript GEMM. */
function reduceInArrays(a: Float64Array, band: BandMatrix): void {
  const { n, b } = band;
  let m = n;
  let work = Float64Array.from(a.subarray(0, n * n)) as Float64Array;
  for (let k = 0; ; k += b) {
    if (m <= b + 1) {
      storeLowerBlock(band, k, k, work, m, m, m);
      return;
    }
    storeLowerBlock(band, k, k, work, b, b, m);
    const panel = new Float64Array((m - b) * b);
    for (let i = b; i < m; i++) panel.set(work.subarray(i * m, i * m + b), (i - b) * b);
    const { v, t, r } = panelQr(panel, m - b, b);
    storeUpperBlock(band, k + b, k, r, Math.min(b, m - b), b);
    const kk = m - b;
    const a2 = new Float64Array(kk * kk);
    for (let i = 0; i < kk; i++) a2.set(work.subarray((i + b) * m + b, (i + b) * m + m), i * kk);
    work = twoSidedUpdate({ rows: kk, cols: kk, data: a2 }, v, t);
    m = kk;
  }
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

/** Q^T A Q = A - Y V^T - V Y^T with X = A V T, Y = X - 1/2 V (T^T V^T X) (as in panelUpdateFactorGraph). */
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

function putMatrix(a: Float64Array, n: number): string {
  const register = `band${registerSerial++}.in`;
  ortExecute([{ op: "put", register, data: a.length === n * n ? a : a.subarray(0, n * n) }]);
  return register;
}

/**
 * The onnxruntime route, with the trailing matrix A_g (m x m) in a worker register and the
 * updates of a group of panels applied lazily, as LAPACK's dlatrd does for dsytrd: panel p of a
 * group sees A^(p) = A_g - sum_{q<p} (Y_q V_q^T + V_q Y_q^T) without that matrix being formed.
 * With Z = [Y_0 V_0 Y_1 V_1 ...] and Z' = [V_0 Y_0 V_1 Y_1 ...] (stored transposed, so a panel
 * appends rows), A^(p) = A_g - Z Z'^T, and per panel:
 *   columns:  A^(p)[:, panel] = A_g[:, panel] - Z (Z'[panel, :])^T          (one small GEMM)
 *   Y_p from X_p = A^(p) [0; V_p T_p] = A_g [0; V_p T_p] - Z (Z'^T [0; V_p T_p]) (reads A_g once)
 * and once per group A_g <- (A_g - Z Z'^T)[G:, G:] (one GEMM with inner dimension 2G and one
 * subtraction pass). Two worker round trips per panel; the panel QR runs in JavaScript.
 */
function reduceInRegisters(input: string, band: BandMatrix): void {
  const { n, b } = band;
  const id = `band${registerSerial++}`;
  const regs = [input, `${id}.1`];
  const [regZ, regZs, regCol, regE, regVT, regV, regT, regX, regP] = ["Z", "Zs", "col", "E", "VT", "V", "T", "X", "P"].map((x) => `${id}.${x}`);
  let cur = 0;
  let m = n; // order of A_g
  let k = 0; // global index of A_g's first row
  let pending: OrtOp[] = [];
  try {
    for (;;) {
      const panels: { v: Float64Array; y: Float64Array }[] = []; // padded to m rows, row-major m x b
      for (let p = 0; p < GROUP_PANELS; p++) {
        const c0 = p * b; // panel columns c0..c0+b-1 of A_g
        if (m - c0 <= b + 1) break;
        const cols = panelColumns(p, c0, panels);
        storeLowerBlock(band, k + c0, k + c0, cols.subarray(c0 * b), b, b, b);
        const below = m - c0 - b;
        const { v, t, r } = panelQr(cols.subarray((c0 + b) * b), below, b);
        storeUpperBlock(band, k + c0 + b, k + c0, r, Math.min(b, below), b);
        const vPad = new Float64Array(m * b);
        vPad.set(v.data, (c0 + b) * b);
        const y = panelY(p, vPad, t, c0 + b);
        panels.push({ v: vPad, y });
        pending.push(...appendPanel(p, vPad, y));
      }
      const g = panels.length * b;
      if (g === 0) break;
      // A_g <- (A_g - Z Z'^T)[g:, g:]
      const next = 1 - cur;
      ortExecute([
        ...pending,
        { op: "run", graph: gemmGraph(true, false, 1, null), feeds: { A: [regZ, [2 * g, m]], B: [regZs, [2 * g, m]] }, outputs: { Y: [regP, [m, m]] } },
        { op: "block", out: regs[next], src: { register: regs[cur], ld: m, r0: g, c0: g }, minus: { register: regP, ld: m, r0: g, c0: g }, rows: m - g, cols: m - g },
      ]);
      pending = [];
      cur = next;
      m -= g;
      k += g;
    }
    const rest = new Float64Array(m * m);
    ortExecute([{ op: "get", register: regs[cur], out: rest }]);
    storeLowerBlock(band, k, k, rest, m, m, m);
  } finally {
    ortFree(...regs, regZ, regZs, regCol, regE, regVT, regV, regT, regX, regP);
  }

  /** A^(p)[:, c0:c0+b] (m x b): the panel's columns with the group's earlier updates applied. */
  function panelColumns(p: number, c0: number, done: { v: Float64Array; y: Float64Array }[]): Float64Array {
    const out = new Float64Array(m * b);
    const ops: OrtOp[] = [...pending, { op: "block", out: regCol, src: { register: regs[cur], ld: m, r0: 0, c0 }, rows: m, cols: b }];
    pending = [];
    if (p > 0) {
      ops.push(
        { op: "put", register: regE, data: zsColumns(done, c0) },
        {
          op: "run",
          graph: gemmGraph(true, false, -1, 1),
          feeds: { A: [regZ, [2 * p * b, m]], B: [regE, [2 * p * b, b]], C: [regCol, [m, b]] },
          outputs: { Y: [regX, [m, b]] },
        },
        { op: "get", register: regX, out },
      );
    } else {
      ops.push({ op: "get", register: regCol, out });
    }
    ortExecute(ops);
    return out;
  }

  /** Z'^T's rows c0..c0+b as a (2pb x b) block: per earlier panel q, V_q[c0:c0+b]^T then Y_q[c0:c0+b]^T. */
  function zsColumns(done: { v: Float64Array; y: Float64Array }[], c0: number): Float64Array {
    const e = new Float64Array(2 * done.length * b * b);
    done.forEach(({ v, y }, q) => {
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < b; j++) {
          e[(2 * q * b + i) * b + j] = v[(c0 + j) * b + i];
          e[((2 * q + 1) * b + i) * b + j] = y[(c0 + j) * b + i];
        }
      }
    });
    return e;
  }

  /** Y_p (m x b, zero above row `from`) of panel p, from its padded V and T (panelUpdateFactorGraph). */
  function panelY(p: number, vPad: Float64Array, t: Matrix, from: number): Float64Array {
    const vt = gemmJs({ rows: m, cols: b, data: vPad }, t).data;
    const feeds: Record<string, RegisterRef> = { A: [regs[cur], [m, m]], B: [regVT, [m, b]], V: [regV, [m, b]], T: [regT, [b, b]] };
    if (p > 0) Object.assign(feeds, { Z: [regZ, [2 * p * b, m]], Zs: [regZs, [2 * p * b, m]] });
    const y = new Float64Array(m * b);
    ortExecute([
      { op: "put", register: regVT, data: vt },
      { op: "put", register: regV, data: vPad },
      { op: "put", register: regT, data: t.data },
      { op: "run", graph: panelUpdateFactorGraph(p > 0), feeds, outputs: { Y: [regX, [m, b]] } },
      { op: "get", register: regX, out: y.subarray(from * b), block: { ld: b, r0: from, r1: m, c0: 0, c1: b } },
    ]);
    return y;
  }

  /** The puts that append panel p's Y^T, V^T to Z and V^T, Y^T to Z' (rows 2pb..2pb+2b). */
  function appendPanel(p: number, vPad: Float64Array, y: Float64Array): OrtOp[] {
    const vt = transpose({ rows: m, cols: b, data: vPad }).data;
    const yt = transpose({ rows: m, cols: b, data: y }).data;
    const at = 2 * p * b * m;
    return [
      { op: "put", register: regZ, data: yt, offset: at },
      { op: "put", register: regZ, data: vt, offset: at + b * m },
      { op: "put", register: regZs, data: vt, offset: at },
      { op: "put", register: regZs, data: yt, offset: at + b * m },
    ];
  }
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
  const t = new Float64Array(b);
  for (let j = 0; j < n - 2; j++) {
    let c = j;
    let s = j + 1;
    while (s < n - 1) {
      const e = Math.min(s + b - 1, n - 1);
      const len = e - s + 1;
      const beta = columnReflector(a, w, c, s, len, v);
      if (beta !== 0) {
        reflectRowsLeft(a, w, c + 1, s, len, v, beta, t);
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

/**
 * Rows s..s+len-1, columns c0..s-1: A <- H A (the rest of the bulge, left of the diagonal block).
 * Two row-wise passes (t = v^T A, then A -= beta v t) keep the accesses contiguous.
 */
function reflectRowsLeft(a: Float64Array, w: number, c0: number, s: number, len: number, v: Float64Array, beta: number, t: Float64Array): void {
  const nc = s - c0;
  if (nc <= 0) return;
  t.fill(0, 0, nc);
  for (let r = 0; r < len; r++) {
    const row = w * (s + r + 1) + c0;
    const vr = v[r];
    for (let q = 0; q < nc; q++) t[q] += vr * a[row + q];
  }
  for (let q = 0; q < nc; q++) t[q] *= beta;
  for (let r = 0; r < len; r++) {
    const row = w * (s + r + 1) + c0;
    const vr = v[r];
    for (let q = 0; q < nc; q++) a[row + q] -= vr * t[q];
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

/** Rows i0..i1, columns s..s+len-1: A <- A H (this creates the next bulge below the band); two rows per pass over v. */
function reflectColumnsRight(a: Float64Array, w: number, i0: number, i1: number, s: number, len: number, v: Float64Array, beta: number): void {
  let i = i0;
  for (; i + 1 <= i1; i += 2) {
    const r0 = w * (i + 1) + s;
    const r1 = r0 + w;
    let t0 = 0;
    let t1 = 0;
    for (let r = 0; r < len; r++) {
      t0 += a[r0 + r] * v[r];
      t1 += a[r1 + r] * v[r];
    }
    t0 *= beta;
    t1 *= beta;
    for (let r = 0; r < len; r++) {
      a[r0 + r] -= t0 * v[r];
      a[r1 + r] -= t1 * v[r];
    }
  }
  if (i <= i1) {
    const row = w * (i + 1) + s;
    let t0 = 0;
    for (let r = 0; r < len; r++) t0 += a[row + r] * v[r];
    t0 *= beta;
    for (let r = 0; r < len; r++) a[row + r] -= t0 * v[r];
  }
}
