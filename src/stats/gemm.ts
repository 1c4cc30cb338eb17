/**
 * Dense float64 matrix products for the stats code: C = alpha op(A) op(B) + beta C on row-major
 * matrices. Large products go to onnxruntime's DGEMM (ort-float64.ts, ~20x faster here); small
 * ones, and everything when onnxruntime is unavailable, to a register-blocked JavaScript kernel.
 */
import { gemmGraph } from "./float64-graphs.js";
import { ortAvailable, ortExecute, type OrtOp, type RegisterRef } from "./ort-float64.js";

/** A row-major rows x cols float64 matrix. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** Added as beta * C (C has the output's shape). */
  c?: Matrix;
  beta?: number;
}

/**
 * Below this many multiply-adds the worker round trip (~0.1 ms plus copies) costs more than the
 * JavaScript kernel (~3.7 GFLOP/s).
 */
const ORT_MIN_WORK = 1 << 21;

/**
 * alpha * op(A) * op(B) + beta * C as a new matrix, or written into `out` (which may be C's own
 * storage: the product is formed before it is written).
 */
export function gemm(a: Matrix, b: Matrix, opts: GemmOptions = {}, out?: Float64Array): Matrix {
  const { transA = false, transB = false, alpha = 1, c, beta = 1 } = opts;
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const n = transB ? b.rows : b.cols;
  if ((transB ? b.cols : b.rows) !== k) throw new Error(`gemm: inner dimensions ${k} and ${transB ? b.cols : b.rows} differ`);
  if (c && (c.rows !== m || c.cols !== n)) throw new Error(`gemm: C is ${c.rows}x${c.cols}, expected ${m}x${n}`);
  if (m * n * k >= ORT_MIN_WORK && ortAvailable()) {
    const y = out ?? new Float64Array(m * n);
    const same = a.data === b.data; // A^T A and friends: send the operand once
    const feeds: Record<string, RegisterRef> = { A: ["gemm.A", [a.rows, a.cols]], B: [same ? "gemm.A" : "gemm.B", [b.rows, b.cols]] };
    const ops: OrtOp[] = same ? [put("gemm.A", a.data)] : [put("gemm.A", a.data), put("gemm.B", b.data)];
    if (c) {
      ops.push(put("gemm.C", c.data));
      feeds.C = ["gemm.C", [m, n]];
    }
    ops.push({ op: "run", graph: gemmGraph(transA, transB, alpha, c ? beta : null), feeds, outputs: { Y: ["gemm.Y", [m, n]] } });
    ops.push({ op: "get", register: "gemm.Y", out: y });
    ortExecute(ops);
    return { rows: m, cols: n, data: y };
  }
  const r = gemmJs(a, b, { transA, transB, alpha, c, beta });
  if (out) out.set(r.data);
  return out ? { rows: m, cols: n, data: out } : r;
}

function put(register: string, data: Float64Array): OrtOp {
  return { op: "put", register, data };
}

/** The JavaScript kernel: op(A) and op(B)^T made row-contiguous, then dot-product blocks. */
export function gemmJs(a: Matrix, b: Matrix, opts: GemmOptions = {}): Matrix {
  const { transA = false, transB = false, alpha = 1, c, beta = 1 } = opts;
  const left = transA ? transpose(a) : a; // m x k
  const right = transB ? b : transpose(b); // n x k
  const out = new Float64Array(left.rows * right.rows);
  dotProductsNT(left.data, right.data, out, left.rows, right.rows, left.cols);
  if (alpha !== 1) for (let i = 0; i < out.length; i++) out[i] *= alpha;
  if (c) for (let i = 0; i < out.length; i++) out[i] += beta * c.data[i];
  return { rows: left.rows, cols: right.rows, data: out };
}

export function transpose(a: Matrix): Matrix {
  const { rows, cols } = a;
  const out = new Float64Array(rows * cols);
  const tile = 32; // tiles keep both the reads and the writes within cache lines
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const i1 = Math.min(rows, i0 + tile);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const j1 = Math.min(cols, j0 + tile);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = a.data[i * cols + j];
    }
  }
  return { rows: cols, cols: rows, data: out };
}

/**
 * out[i*n + j] = sum_p x[i*k + p] * y[j*k + p]: 4 rows of x against 2 rows of y at a time
 * (8 accumulators), the blocking that measured fastest in V8 (3.7 GFLOP/s vs 1.1 unblocked).
 */
export function dotProductsNT(x: Float64Array, y: Float64Array, out: Float64Array, m: number, n: number, k: number): void {
  let i = 0;
  for (; i + 3 < m; i += 4) {
    const a0 = i * k;
    const a1 = a0 + k;
    const a2 = a1 + k;
    const a3 = a2 + k;
    let j = 0;
    for (; j + 1 < n; j += 2) {
      const b0 = j * k;
      const b1 = b0 + k;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
      for (let p = 0; p < k; p++) {
        const y0 = y[b0 + p];
        const y1 = y[b1 + p];
        let v = x[a0 + p];
        s00 += v * y0;
        s01 += v * y1;
        v = x[a1 + p];
        s10 += v * y0;
        s11 += v * y1;
        v = x[a2 + p];
        s20 += v * y0;
        s21 += v * y1;
        v = x[a3 + p];
        s30 += v * y0;
        s31 += v * y1;
      }
      out[i * n + j] = s00;
      out[i * n + j + 1] = s01;
      out[(i + 1) * n + j] = s10;
      out[(i + 1) * n + j + 1] = s11;
      out[(i + 2) * n + j] = s20;
      out[(i + 2) * n + j + 1] = s21;
      out[(i + 3) * n + j] = s30;
      out[(i + 3) * n + j + 1] = s31;
    }
    for (; j < n; j++) for (let r = 0; r < 4; r++) out[(i + r) * n + j] = dot(x, (i + r) * k, y, j * k, k);
  }
  for (; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = dot(x, i * k, y, j * k, k);
}

export function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, k: number): number {
  let s0 = 0;
  let s1 = 0;
  let p = 0;
  for (; p + 1 < k; p += 2) {
    s0 += x[xo + p] * y[yo + p];
    s1 += x[xo + p + 1] * y[yo + p + 1];
  }
  if (p < k) s0 += x[xo + p] * y[yo + p];
  return s0 + s1;
}
