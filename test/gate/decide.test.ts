import { describe, expect, it } from "vitest";
import { decideChange } from "../../src/gate/decide.js";
import { parseRule } from "../../src/gate/rules.js";

describe("gate decisions", () => {
  const fid = parseRule("fid:+0.5");

  it("passes a change within the bound and says by how much", () => {
    expect(decideChange(fid, { mean: 10 }, { mean: 10.3 }, false)).toMatchObject({ decision: "ok", reason: "ok: worse by 0.3 <= 0.5" });
    expect(decideChange(fid, { mean: 10 }, { mean: 9.5 }, false)).toMatchObject({ decision: "ok", reason: "ok: improved by 0.5" });
    expect(decideChange(fid, { mean: 10 }, { mean: 10 }, false).reason).toBe("ok: unchanged");
  });

  it("does not fail a change equal to the bound by a rounding step", () => {
    // 0.1 + 0.5 - 0.1 is 0.5000000000000001 in float64
    expect(decideChange(fid, { mean: 0.1 }, { mean: 0.1 + 0.5 }, false).decision).toBe("ok");
  });

  it("fails a change past the bound, in the metric's bad direction", () => {
    expect(decideChange(fid, { mean: 10 }, { mean: 10.8 }, false)).toMatchObject({ decision: "regressed", reason: "regressed by 0.8 > 0.5" });
    const precision = parseRule("precision:-0.02");
    expect(decideChange(precision, { mean: 0.7 }, { mean: 0.75 }, false).decision).toBe("ok");
    expect(decideChange(precision, { mean: 0.7 }, { mean: 0.67 }, false)).toMatchObject({ decision: "regressed", reason: "regressed by 0.03 > 0.02" });
  });

  it("bounds a relative rule by the baseline's value", () => {
    const kid = parseRule("kid:+10%");
    expect(decideChange(kid, { mean: 0.002 }, { mean: 0.00219 }, false)).toMatchObject({ decision: "ok", allowed: 0.0002 });
    expect(decideChange(kid, { mean: 0.002 }, { mean: 0.00221 }, false).decision).toBe("regressed");
  });

  it("passes overlapping bootstrap intervals as noise, unless strict", () => {
    const b = { mean: 10, ci95: [9.2, 10.9] as [number, number] };
    const c = { mean: 10.8, ci95: [10.1, 11.6] as [number, number] };
    expect(decideChange(fid, b, c, false)).toMatchObject({ decision: "noise", reason: expect.stringMatching(/^within noise: regressed by 0\.8 > 0\.5, but the 95% CIs overlap/) });
    expect(decideChange(fid, b, c, true)).toMatchObject({ decision: "regressed", reason: expect.stringMatching(/CIs overlap .* but --strict$/) });
    const apart = { mean: 12, ci95: [11, 13] as [number, number] };
    expect(decideChange(fid, b, apart, false).reason).toBe("regressed by 2 > 0.5 (the 95% CIs do not overlap)");
    expect(decideChange(fid, { mean: 10 }, c, false).reason).toBe("regressed by 0.8 > 0.5 (no CI on baseline: decided on the means)");
  });

  it("shows enough digits to tell the change from the bound", () => {
    expect(decideChange(fid, { mean: 10 }, { mean: 10.50001 }, false).reason).toBe("regressed by 0.50001 > 0.5");
  });
});
