/**
 * Pairwise Euclidean distances between feature rows, block by block, for the k-NN metrics
 * (precision/recall, density/coverage). A 10k x 10k matrix is never held whole: callers get one
 * block of rows at a time (~32 MiB) and reduce it on the spot.
 *
 * Arithmetic: prdc computes distances with sklearn's `pairwise_distances(metric="euclidean")`,
 * i.e. `euclidean_distances`: d^2 = (-2 x.y + ||x||^2) + ||y||^2 in float64, clamped at 0, self
 * distances set to 0, then sqrt. For float32 input (what feature extractors return) sklearn upcasts
 * chunks to float64 for that formula and stores the result as float32 before the sqrt
 * (`_euclidean_distances_upcast`), so the distances prdc compares are float32 values. Precision
 * "float32" (the default) reproduces that rounding; "float64" is what sklearn does for float64
 * input. Either way the products x.y run in float64: x.y of float32 values in float32 loses ~1e-7
 * of ||x||^2 (~1e-4 of a typical squared distance at d = 2048, measured on the fixtures), enough to
 * flip the borderline comparisons the counts depend on, while float64 products of float32 values
 * are exact and only their sum rounds, as in sklearn.
 *
 * Speed: the products x.y are a DGEMM per block, on onnxruntime's MLAS kernels when available
 * (src/stats/ort-float64.ts; ~90 GFLOP/s on the 2-core dev machine), else the JavaScript kernel
 * of src/stats/gemm.ts (~3.7 GFLOP/s).
 */
import { DiffevalError } from "../errors.js";
import { dotProductsNT } from "../stats/gemm.js";
import { gemmGraph } from "../stats/float64-graphs.js";
import { ortAvailable, ortExecute, type OrtOp } from "../stats/ort-float64.js";
import type { FeatureMatrix } from "../types.js";

export type DistancePrecision = "float32" | "float64";

export interface PairwiseOptions {
  /** "float32" (default): distances rounded as sklearn returns them for float32 features. */
  precision?: DistancePrecision;
  /** Rows of x per block (default: as many as fit ~32 MiB of float64 distances). */
  blockRows?: number;
}

/**
 * Receives rows r0 .. r0 + rows - 1 of the x-vs-y distance matrix: block[(i - r0) * y.n + j]
 * is the distance from x_i to y_j. The block is reused for the next call: copy what you keep.
 */
export type DistanceBlockFn = (block: Float64Array, r0: number, rows: number) => void;

/** Below this many multiply-adds a product runs in JavaScript (the worker round trip costs more). */
const ORT_MIN_WORK = 1 << 21;
const BLOCK_BYTES = 32 * 2 ** 20;
/** Rows converted to float64 and sent to the worker at a time (bounds the shared mailbox). */
const PUT_ROWS = 1024;

/** ||x_i||^2 in float64 (the float32 values squared exactly, summed in float64: sklearn's row_norms). */
export function squaredNorms(x: FeatureMatrix): Float64Array {
  const { n, d, data } = x;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let p = i * d, end = p + d; p < end; p++) s += data[p] * data[p];
    out[i] = s;
  }
  return out;
}

/**
 * Streams the Euclidean distance matrix between the rows of x and of y in blocks of rows of x.
 * When x and y are the same object the diagonal is exactly 0, as sklearn sets it.
 */
export function forEachDistanceBlock(x: FeatureMatrix, y: FeatureMatrix, fn: DistanceBlockFn, opts: PairwiseOptions = {}): void {
  if (x.d !== y.d) throw new DiffevalError("E_FEATURE_DIM", `feature dimensions differ: ${x.d} vs ${y.d}; compare features from the same encoder`);
  const float32 = (opts.precision ?? "float32") === "float32";
  const same = x === y;
  const xx = squaredNorms(x);
  const yy = same ? xx : squaredNorms(y);
  const blockRows = Math.max(1, Math.min(x.n, opts.blockRows ?? Math.floor(BLOCK_BYTES / 8 / Math.max(1, y.n))));
  const block = new Float64Array(blockRows * y.n);
  forEachProductBlock(x, y, blockRows, block, (r0, rows) => {
    toDistances(block, r0, rows, xx, yy, float32);
    if (same) for (let i = 0; i < rows; i++) block[i * y.n + r0 + i] = 0;
    fn(rows === blockRows ? block : block.subarray(0, rows * y.n), r0, rows);
  });
}

/**
 * Distance from each row of x to its k-th nearest other row. prdc's
 * `compute_nearest_neighbour_distances` takes the (k+1)-th smallest value of each row of the full
 * distance matrix, self (distance 0) included: `get_kth_value(d, k + 1)` = the max of
 * `argpartition(d, k + 1)[:, :k + 1]`. So the radius is the k-th nearest neighbour excluding self
 * (a duplicate of the point, at distance 0, counts as a neighbour, as it does there).
 */
export function kthNearestDistances(x: FeatureMatrix, k: number, opts: PairwiseOptions = {}): Float64Array {
  if (!Number.isInteger(k) || k < 1) throw new DiffevalError("E_USAGE", `nearest_k must be a positive integer, got ${k}`);
  if (k >= x.n) throw new DiffevalError("E_TOO_FEW_SAMPLES", `the ${k}-th nearest neighbour needs at least ${k + 1} samples, got ${x.n}`);
  const out = new Float64Array(x.n);
  const smallest = new Float64Array(k + 1);
  forEachDistanceBlock(
    x,
    x,
    (block, r0, rows) => {
      for (let i = 0; i < rows; i++) out[r0 + i] = kthSmallest(block, i * x.n, x.n, smallest);
    },
    opts,
  );
  return out;
}

/** The (buf.length)-th smallest of values[offset .. offset + count), by insertion into buf. */
function kthSmallest(values: Float64Array, offset: number, count: number, buf: Float64Array): number {
  const size = buf.length;
  buf.fill(Infinity);
  let worst = Infinity; // buf[size - 1]: only smaller values enter
  for (let j = 0; j < count; j++) {
    const v = values[offset + j];
    if (v >= worst) continue;
    let p = size - 1;
    while (p > 0 && buf[p - 1] > v) {
      buf[p] = buf[p - 1];
      p--;
    }
    buf[p] = v;
    worst = buf[size - 1];
  }
  return worst;
}

/** d^2 = (-2 g + ||x_i||^2) + ||y_j||^2 (sklearn's order), clamped at 0, rounded as requested, sqrt. */
function toDistances(block: Float64Array, r0: number, rows: number, xx: Float64Array, yy: Float64Array, float32: boolean): void {
  const ny = yy.length;
  for (let i = 0; i < rows; i++) {
    const xi = xx[r0 + i];
    const o = i * ny;
    if (float32) {
      for (let j = 0; j < ny; j++) {
        const d2 = Math.fround(-2 * block[o + j] + xi + yy[j]);
        // float32 sqrt of a float32 = the float64 sqrt rounded once (53 >= 2 * 24 + 2 bits).
        block[o + j] = d2 > 0 ? Math.fround(Math.sqrt(d2)) : 0;
      }
    } else {
      for (let j = 0; j < ny; j++) {
        const d2 = -2 * block[o + j] + xi + yy[j];
        block[o + j] = d2 > 0 ? Math.sqrt(d2) : 0;
      }
    }
  }
}

/** Fills `out` with X[r0 .. r0 + rows) Y^T (float64) for consecutive row blocks and calls `fn`. */
function forEachProductBlock(x: FeatureMatrix, y: FeatureMatrix, blockRows: number, out: Float64Array, fn: (r0: number, rows: number) => void): void {
  const work = x.n * y.n * x.d;
  if (work >= ORT_MIN_WORK && ortAvailable()) productBlocksOrt(x, y, blockRows, out, fn);
  else productBlocksJs(x, y, blockRows, out, fn);
}

function productBlocksOrt(x: FeatureMatrix, y: FeatureMatrix, blockRows: number, out: Float64Array, fn: (r0: number, rows: number) => void): void {
  const d = x.d;
  const regX = "pairwise.x";
  const regY = x === y ? regX : "pairwise.y";
  putFloat64(regX, x);
  if (regY !== regX) putFloat64(regY, y);
  const graph = gemmGraph(false, true, 1, null);
  try {
    for (let r0 = 0; r0 < x.n; r0 += blockRows) {
      const rows = Math.min(blockRows, x.n - r0);
      const target = rows * y.n === out.length ? out : out.subarray(0, rows * y.n);
      ortExecute([
        { op: "run", graph, feeds: { A: [regX, [rows, d], r0 * d], B: [regY, [y.n, d]] }, outputs: { Y: ["pairwise.g", [rows, y.n]] } },
        { op: "get", register: "pairwise.g", out: target },
      ]);
      fn(r0, rows);
    }
  } finally {
    // (A dead worker has already said why; freeing on it would only hide that error.)
    if (ortAvailable()) ortExecute([{ op: "free", registers: [regX, regY, "pairwise.g"] }]);
  }
}

/** Copies a float32 matrix into a worker register as float64, PUT_ROWS rows per batch. */
function putFloat64(register: string, m: FeatureMatrix): void {
  const ops: OrtOp[] = [{ op: "alloc", register, length: m.n * m.d }];
  for (let r0 = 0; r0 < m.n; r0 += PUT_ROWS) {
    const r1 = Math.min(m.n, r0 + PUT_ROWS);
    ops.push({ op: "put", register, data: Float64Array.from(m.data.subarray(r0 * m.d, r1 * m.d)), offset: r0 * m.d });
    ortExecute(ops);
    ops.length = 0;
  }
  if (ops.length > 0) ortExecute(ops);
}

function productBlocksJs(x: FeatureMatrix, y: FeatureMatrix, blockRows: number, out: Float64Array, fn: (r0: number, rows: number) => void): void {
  const d = x.d;
  const y64 = Float64Array.from(y.data.subarray(0, y.n * d));
  for (let r0 = 0; r0 < x.n; r0 += blockRows) {
    const rows = Math.min(blockRows, x.n - r0);
    const x64 = Float64Array.from(x.data.subarray(r0 * d, (r0 + rows) * d));
    dotProductsNT(x64, y64, out, rows, y.n, d);
    fn(r0, rows);
  }
}

/** Gram matrices of two float64 row-major sets (m x d and n x d): X X^T, Y Y^T and X Y^T. */
export interface GramMatrices {
  xx: Float64Array;
  yy: Float64Array;
  xy: Float64Array;
}

/** X X^T, Y Y^T, X Y^T in float64 (one worker round trip when onnxruntime is available). */
export function gramMatrices(x: Float64Array, m: number, y: Float64Array, n: number, d: number, out?: GramMatrices): GramMatrices {
  const g = out ?? { xx: new Float64Array(m * m), yy: new Float64Array(n * n), xy: new Float64Array(m * n) };
  if (Math.max(m, n) ** 2 * d >= ORT_MIN_WORK && ortAvailable()) {
    const graph = gemmGraph(false, true, 1, null);
    const run = (a: string, ra: number, b: string, rb: number, reg: string): OrtOp => ({
      op: "run",
      graph,
      feeds: { A: [a, [ra, d]], B: [b, [rb, d]] },
      outputs: { Y: [reg, [ra, rb]] },
    });
    ortExecute([
      { op: "put", register: "gram.x", data: x },
      { op: "put", register: "gram.y", data: y },
      run("gram.x", m, "gram.x", m, "gram.xx"),
      run("gram.y", n, "gram.y", n, "gram.yy"),
      run("gram.x", m, "gram.y", n, "gram.xy"),
      { op: "get", register: "gram.xx", out: g.xx },
      { op: "get", register: "gram.yy", out: g.yy },
      { op: "get", register: "gram.xy", out: g.xy },
    ]);
    return g;
  }
  dotProductsNT(x, x, g.xx, m, m, d);
  dotProductsNT(y, y, g.yy, n, n, d);
  dotProductsNT(x, y, g.xy, m, n, d);
  return g;
}

/** Frees the worker registers gramMatrices used (call after the last subset). */
export function releaseGramMatrices(): void {
  if (ortAvailable()) ortExecute([{ op: "free", registers: ["gram.x", "gram.y", "gram.xx", "gram.yy", "gram.xy"] }]);
}
