import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { clipScore, negativeClipScores } from "../../src/metrics/clip-score.js";
import type { FeatureMatrix } from "../../src/types.js";
import { loadNpy } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";

function matrix(name: string): FeatureMatrix {
  const a = loadNpy(fixture("encoders", "reference", name));
  return { n: a.shape[0], d: a.shape[1], data: a.data as Float32Array };
}

/** Row i of the result is row (i mod t.n) of the text embeddings: image i with prompt i mod 8. */
function pairedTexts(text: FeatureMatrix, n: number): FeatureMatrix {
  const data = new Float32Array(n * text.d);
  for (let i = 0; i < n; i++) data.set(text.data.subarray((i % text.n) * text.d, (i % text.n + 1) * text.d), i * text.d);
  return { n, d: text.d, data };
}

describe("CLIP score (torchmetrics' definition)", () => {
  const expected = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_expected.json"), "utf8")) as Record<string, number>;
  const text = matrix("clip_text_embeds.npy");

  for (const side of ["real", "fake"] as const) {
    it(`reproduces clip_score_${side}_formula`, () => {
      const images = matrix(`clip_image_embeds_${side}.npy`);
      expect(images.n).toBe(32);
      const { score, perPair } = clipScore(images, pairedTexts(text, images.n));
      const want = expected[`clip_score_${side}_formula`];
      console.log(`clip_score_${side}: ${score} vs ${want}, |diff| ${Math.abs(score - want).toExponential(2)}`);
      expect(Math.abs(score - want)).toBeLessThan(1e-5);
      expect(perPair.length).toBe(32);
      expect(perPair.reduce((s, v) => s + v, 0) / 32).toBeCloseTo(score, 12);
    });
  }

  it("is 100 for identical directions, clamps a negative mean at 0 but keeps per-pair signs", () => {
    const a = { n: 2, d: 2, data: new Float32Array([1, 0, 0, 2]) };
    expect(clipScore(a, { n: 2, d: 2, data: new Float32Array([3, 0, 0, 0.5]) }).score).toBeCloseTo(100, 10);
    const r = clipScore(a, { n: 2, d: 2, data: new Float32Array([-1, 0, 1, 1]) });
    expect(r.score).toBe(0);
    expect(r.perPair[0]).toBeCloseTo(-100, 10);
    expect(r.perPair[1]).toBeCloseTo(100 / Math.SQRT2, 10);
  });

  it("refuses mismatched shapes and zero vectors", () => {
    const a = { n: 2, d: 2, data: new Float32Array([1, 0, 0, 1]) };
    expect(() => clipScore(a, { n: 1, d: 2, data: new Float32Array([1, 0]) })).toThrow(/one per image/);
    expect(() => clipScore(a, { n: 2, d: 3, data: new Float32Array(6) })).toThrow(/-d/);
    expect(() => clipScore(a, { n: 2, d: 2, data: new Float32Array([1, 0, 0, 0]) })).toThrow(/zero/);
  });
});

describe("negative-prompt adherence (neg_clip, neg_clip_delta)", () => {
  const m = (rows: number[][]) => ({ n: rows.length, d: rows[0].length, data: new Float32Array(rows.flat()) });
  const neg = m([[1, 0], [1, 0]]);

  it("neg_clip is the CLIP score against the negative text; the delta subtracts the counterparts' score", () => {
    const cell = { images: m([[0, 1], [1, 1]]), texts: neg };
    const withoutNegative = { images: m([[1, 0], [1, 0]]), texts: neg };
    const r = negativeClipScores({ cell, withoutNegative });
    expect(r.neg_clip).toBeCloseTo(100 / Math.SQRT2 / 2, 12); // (0 + 100 cos 45°) / 2
    expect(r.neg_clip_delta).toBeCloseTo(100 / Math.SQRT2 / 2 - 100, 12); // the counterparts are the concept itself
    expect(negativeClipScores({ cell })).toEqual({ neg_clip: r.neg_clip });
  });

  it("refuses counterparts that are not one per image", () => {
    expect(() => negativeClipScores({ cell: { images: m([[0, 1], [1, 1]]), texts: neg }, withoutNegative: { images: m([[1, 0]]), texts: m([[1, 0]]) } })).toThrow(/one per image/);
  });
});
