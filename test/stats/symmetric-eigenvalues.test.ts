import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { afterEach, describe, expect, it } from "vitest";
import { bandToTridiagonal, panelQr, reduceToBand } from "../../src/stats/band-reduction.js";
import { gemmJs } from "../../src/stats/gemm.js";
import { setOrtDisabled } from "../../src/stats/ort-float64.js";
import { symmetricEigenvalues } from "../../src/stats/symmetric-eigenvalues.js";
import { tridiagonalEigenvalues } from "../../src/stats/tridiagonal-eigenvalues.js";
import { maxAbsDiff } from "../helpers/arrays.js";
import { xorshift32 } from "../helpers/xorshift.js";

function randomSymmetric(n: number, seed: number): Float64Array {
  const next = xorshift32(seed);
  const u = () => {
    const s = next();
    return s / 4294967296 - 0.5;
  };
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const x = u();
      a[i * n + j] = x;
      a[j * n + i] = x;
    }
  }
  return a;
}

/** ml-matrix's EVD (JAMA tred2 + tql2): an independent float64 reference. */
function referenceEigenvalues(a: Float64Array, n: number): number[] {
  const m = new Matrix(Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, i * n + n))));
  return new EigenvalueDecomposition(m, { assumeSymmetric: true }).realEigenvalues.sort((x, y) => x - y);
}

afterEach(() => setOrtDisabled(false));

describe("tridiagonalEigenvalues", () => {
  it("finds 2 - 2 cos(k pi / (n + 1)) for the second-difference matrix", () => {
    const n = 200;
    const ev = tridiagonalEigenvalues(new Float64Array(n).fill(2), new Float64Array(n - 1).fill(-1));
    const exact = Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1))).sort((x, y) => x - y);
    expect(maxAbsDiff(ev, exact)).toBeLessThan(1e-13);
  });

  it("handles diagonal, repeated and zero spectra", () => {
    expect(Array.from(tridiagonalEigenvalues(Float64Array.of(3, -1, 2), Float64Array.of(0, 0)))).toEqual([-1, 2, 3]);
    expect(Array.from(tridiagonalEigenvalues(new Float64Array(5).fill(1), new Float64Array(4)))).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(tridiagonalEigenvalues(new Float64Array(4), new Float64Array(3)))).toEqual([0, 0, 0, 0]);
    expect(Array.from(tridiagonalEigenvalues(Float64Array.of(7), new Float64Array(0)))).toEqual([7]);
  });
});

describe("symmetricEigenvalues", () => {
  it("agrees with ml-matrix's EVD for small orders and every band width", () => {
    for (const [n, b] of [[2, 16], [3, 1], [9, 2], [40, 3], [100, 8], [130, 16], [130, 32]]) {
      const a = randomSymmetric(n, n * 31 + b);
      expect(maxAbsDiff(symmetricEigenvalues(a, n, { bandwidth: b }), referenceEigenvalues(a, n))).toBeLessThan(1e-13);
    }
  });

  it("agrees with ml-matrix through the onnxruntime pipeline (n = 300, grouped panels) and through JavaScript", () => {
    const n = 300;
    const a = randomSymmetric(n, 7);
    const ref = referenceEigenvalues(a, n);
    const viaOrt = symmetricEigenvalues(a, n);
    setOrtDisabled(true);
    const viaJs = symmetricEigenvalues(a, n);
    expect(maxAbsDiff(viaOrt, ref)).toBeLessThan(1e-12);
    expect(maxAbsDiff(viaJs, ref)).toBeLessThan(1e-12);
  });

  it("leaves its input unchanged", () => {
    const a = randomSymmetric(20, 3);
    const copy = a.slice();
    symmetricEigenvalues(a, 20);
    expect(a).toEqual(copy);
  });
});

describe("band reduction", () => {
  it("panelQr gives Q = I - V T V^T with Q^T P = [R; 0]", () => {
    const m = 37;
    const b = 6;
    const p = randomSymmetric(m, 5).subarray(0, m * b); // any m x b block
    const { v, t, r } = panelQr(p, m, b);
    // Q^T P = P - V T^T V^T P
    const vtp = gemmJs(v, { rows: m, cols: b, data: p }, { transA: true });
    const qtp = gemmJs(v, gemmJs(t, vtp, { transA: true }), { alpha: -1, c: { rows: m, cols: b, data: p }, beta: 1 }).data;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < b; j++) expect(qtp[i * b + j]).toBeCloseTo(i <= j && i < b ? r[i * b + j] : 0, 12);
    }
  });

  it("keeps the spectrum through dense -> band -> tridiagonal", () => {
    const n = 60;
    const a = randomSymmetric(n, 9);
    const band = reduceToBand(a, n, 5);
    // Band form: the stored entries beyond the half-bandwidth (room for stage 2's bulges) are zero.
    for (let i = 0; i < n; i++) for (let j = Math.max(0, i - band.w); j < i - 5; j++) expect(band.data[band.w * (i + 1) + j]).toBe(0);
    const tri = bandToTridiagonal(band);
    expect(maxAbsDiff(tridiagonalEigenvalues(tri.diag, tri.off), referenceEigenvalues(a, n))).toBeLessThan(1e-13);
  });
});
