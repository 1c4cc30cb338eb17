import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { byGroup, meanPairwiseDistance, selectRows } from "../../src/metrics/diversity.js";
import { createRng, fillNormal } from "../../src/random/rng.js";
import type { FeatureMatrix } from "../../src/types.js";

function matrix(rows: number[][]): FeatureMatrix {
  return { n: rows.length, d: rows[0].length, data: Float32Array.from(rows.flat()) };
}

/** Every pair, directly: the definition the blocked Gram route must reproduce. */
function bruteForceMean(x: FeatureMatrix): number {
  let sum = 0;
  for (let i = 0; i < x.n; i++) {
    for (let j = i + 1; j < x.n; j++) {
      let s = 0;
      for (let k = 0; k < x.d; k++) s += (x.data[i * x.d + k] - x.data[j * x.d + k]) ** 2;
      sum += Math.sqrt(s);
    }
  }
  return sum / ((x.n * (x.n - 1)) / 2);
}

describe("meanPairwiseDistance", () => {
  it("is the mean of the 3-4-5 triangle's sides", () => {
    expect(meanPairwiseDistance(matrix([[0, 0], [3, 0], [0, 4]]))).toBeCloseTo(4, 14);
  });

  it("is exactly 0 for identical rows", () => {
    expect(meanPairwiseDistance(matrix([[1.5, -2, 1e4], [1.5, -2, 1e4], [1.5, -2, 1e4]]))).toBe(0);
  });

  it("matches the pair-by-pair definition across block boundaries (n = 2500)", () => {
    const n = 2500;
    const d = 12;
    const data = fillNormal(createRng(1), new Float32Array(n * d));
    const x = { n, d, data };
    expect(Math.abs(meanPairwiseDistance(x) / bruteForceMean(x) - 1)).toBeLessThan(1e-12);
  });

  it("keeps small distances on a large common offset", () => {
    // rows 1000 + N(0, 0.01^2): uncentred Gram differences would lose ~8 digits here
    const n = 50;
    const d = 30;
    const data = fillNormal(createRng(2), new Float32Array(n * d)).map((v) => 1000 + 0.01 * v);
    const x = { n, d, data };
    expect(Math.abs(meanPairwiseDistance(x) / bruteForceMean(x) - 1)).toBeLessThan(1e-9);
  });

  it("refuses fewer than two rows", () => {
    expect(() => meanPairwiseDistance(matrix([[1, 2]]))).toThrow(/at least 2 rows/);
  });
});

describe("byGroup", () => {
  // prompt "a": (0,0),(3,0),(0,4) -> mean 4; prompt "b": (10,0),(10,2) -> 2
  const x = matrix([[0, 0], [10, 0], [3, 0], [10, 2], [0, 4]]);
  const prompts = ["a", "b", "a", "b", "a"];

  it("applies a metric overall, per group and averaged over groups", () => {
    const r = byGroup(prompts, (rows) => meanPairwiseDistance(selectRows(x, rows)));
    expect(r.overall).toBeCloseTo(meanPairwiseDistance(x), 14);
    expect(r.perGroup).toEqual({ a: expect.closeTo(4, 12), b: expect.closeTo(2, 12) });
    expect(Object.keys(r.perGroup)).toEqual(["a", "b"]);
    expect(r.meanOverGroups).toBeCloseTo(3, 12); // each prompt counts once, not weighted 3:2
  });

  it("takes numeric labels and hands the metric the member indices", () => {
    const seen: number[][] = [];
    const r = byGroup([7, 3, 7], (rows) => {
      seen.push(rows);
      return rows.length;
    });
    expect(seen).toEqual([[0, 1, 2], [0, 2], [1]]);
    expect(r.perGroup).toEqual({ "7": 2, "3": 1 });
    expect(r.meanOverGroups).toBe(1.5);
  });

  it("names the group whose metric failed", () => {
    try {
      byGroup(["a", "a", "solo"], (rows) => meanPairwiseDistance(selectRows(x, rows)));
      expect.unreachable();
    } catch (e) {
      expect(isDiffevalError(e, "E_TOO_FEW_SAMPLES")).toBe(true);
      expect((e as Error).message).toMatch(/group "solo" \(1 item\)/);
    }
  });
});

describe("selectRows", () => {
  it("copies the chosen rows in order", () => {
    const x = matrix([[1, 2], [3, 4], [5, 6]]);
    expect(Array.from(selectRows(x, [2, 0]).data)).toEqual([5, 6, 1, 2]);
    expect(() => selectRows(x, [3])).toThrow(RangeError);
  });
});
