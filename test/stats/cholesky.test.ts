import { describe, expect, it } from "vitest";
import { choleskyUpper, choleskyUpperRegisters, pivotedCholeskyUpper, pivotTolerance, semidefiniteFactor } from "../../src/stats/cholesky.js";
import { gemmJs } from "../../src/stats/gemm.js";
import { ortAvailable, ortExecute } from "../../src/stats/ort-float64.js";
import { maxAbsDiff } from "../helpers/arrays.js";
import { xorshift32 } from "../helpers/xorshift.js";

/** X^T X for a seeded random rank x n matrix X: positive semi-definite of rank min(rank, n). */
function gram(n: number, rank: number, seed: number): Float64Array {
  const next = xorshift32(seed);
  const x = new Float64Array(rank * n).map(() => {
    const s = next();
    return s / 4294967296 - 0.5;
  });
  return gemmJs({ rows: rank, cols: n, data: x }, { rows: rank, cols: n, data: x }, { transA: true }).data;
}

/** U^T U for U (rows x n). */
function product(u: Float64Array, rows: number, n: number): Float64Array {
  return gemmJs({ rows, cols: n, data: u }, { rows, cols: n, data: u }, { transA: true }).data;
}

describe("choleskyUpper", () => {
  it("reconstructs a positive definite matrix and gives up on a singular one", () => {
    const n = 150;
    const a = gram(n, 200, 1);
    const u = choleskyUpper(a, n, pivotTolerance(a, n))!;
    expect(maxAbsDiff(product(u, n, n), a)).toBeLessThan(1e-12);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    const singular = gram(n, 40, 2);
    expect(choleskyUpper(singular, n, pivotTolerance(singular, n))).toBeNull();
  });

  it.runIf(ortAvailable())("left-looking on onnxruntime registers gives the same factor (n = 300)", () => {
    const n = 300;
    const a = gram(n, 400, 3);
    const tol = pivotTolerance(a, n);
    const u = new Float64Array(n * n);
    ortExecute([{ op: "put", register: "test.A", data: a }]);
    expect(choleskyUpperRegisters("test.A", "test.U", n, tol)).toBe(true);
    ortExecute([
      { op: "get", register: "test.U", out: u },
      { op: "free", registers: ["test.A", "test.U"] },
    ]);
    expect(maxAbsDiff(u, choleskyUpper(a, n, tol)!)).toBeLessThan(1e-12);
  });
});

describe("pivotedCholeskyUpper", () => {
  it("finds the rank of a semi-definite matrix and reconstructs P U^T U P^T", () => {
    const n = 120;
    for (const rank of [1, 17, 64, 119]) {
      const a = gram(n, rank, rank);
      const f = pivotedCholeskyUpper(a, n);
      expect(f.rank).toBe(rank);
      const back = product(f.u, f.rank, n);
      let err = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) err = Math.max(err, Math.abs(back[i * n + j] - a[f.perm![i] * n + f.perm![j]]));
      expect(err).toBeLessThan(1e-12);
    }
  });

  it("gives rank 0 for the zero matrix, and semidefiniteFactor takes the plain route when it can", () => {
    expect(pivotedCholeskyUpper(new Float64Array(16), 4).rank).toBe(0);
    const a = gram(30, 60, 4);
    expect(semidefiniteFactor(a, 30).perm).toBeNull();
    expect(semidefiniteFactor(gram(30, 10, 5), 30).rank).toBe(10);
  });
});
