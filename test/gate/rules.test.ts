import { describe, expect, it } from "vitest";
import { parseRule, parseRulesFile } from "../../src/gate/rules.js";
import { codeOf } from "../helpers/errors.js";

const messageOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
};

describe("gate rules", () => {
  it("reads absolute, relative and per-cell rules in the metric's bad direction", () => {
    expect(parseRule("fid:+0.5")).toMatchObject({ metric: "fid", direction: "up", amount: 0.5, relative: false, cell: [], text: "fid:+0.5" });
    expect(parseRule("kid:+10%")).toMatchObject({ metric: "kid", amount: 0.1, relative: true, text: "kid:+10%" });
    expect(parseRule("precision:-0.02")).toMatchObject({ metric: "precision", direction: "down", amount: 0.02 });
    expect(parseRule("msssim:+0.01")).toMatchObject({ direction: "up" });
    expect(parseRule("vendi:-5%")).toMatchObject({ direction: "down", amount: 0.05, relative: true });
    const cell = parseRule('fid[cfg_scale=7.5, negative_prompt="", prompt="a cat, sitting"]:+1');
    expect(cell.cell).toEqual([["cfg_scale", 7.5], ["negative_prompt", ""], ["prompt", "a cat, sitting"]]);
    expect(cell.text).toBe('fid[cfg_scale=7.5, negative_prompt="", prompt="a cat, sitting"]:+1');
  });

  it("refuses a sign that disagrees with the metric's bad direction, and says what to write", () => {
    expect(codeOf(() => parseRule("fid:-0.5"))).toBe("E_GATE_RULE");
    expect(messageOf(() => parseRule("fid:-0.5"))).toMatch(/fid regresses upwards .*"fid:\+AMOUNT"/);
    expect(messageOf(() => parseRule("recall:+0.1"))).toMatch(/recall regresses downwards/);
    expect(messageOf(() => parseRule("fid:0.5"))).toMatch(/needs a sign/);
  });

  it("refuses an unknown metric, naming it and the metrics it knows", () => {
    expect(codeOf(() => parseRule("fdi:+0.5"))).toBe("E_GATE_RULE");
    expect(messageOf(() => parseRule("fdi:+0.5"))).toMatch(/unknown metric 'fdi'; gateable metrics: fid, kid/);
    expect(codeOf(() => parseRule("fid+0.5"))).toBe("E_GATE_RULE");
    expect(codeOf(() => parseRule("fid:+abc"))).toBe("E_GATE_RULE");
    expect(codeOf(() => parseRule("fid[]:+1"))).toBe("E_GATE_RULE");
    expect(codeOf(() => parseRule('fid[p="open]:+1'))).toBe("E_GATE_RULE");
  });

  it("reads a rules file of strings and objects, with strict", () => {
    const set = parseRulesFile(
      JSON.stringify({
        strict: true,
        rules: ["fid:+0.5", { metric: "kid", max_increase: "10%" }, { metric: "precision", max_decrease: 0.02, cell: { cfg_scale: 7.5 } }],
      }),
      "gate.json",
    );
    expect(set.strict).toBe(true);
    expect(set.rules.map((r) => r.text)).toEqual(["fid:+0.5", "kid:+10%", "precision[cfg_scale=7.5]:-0.02"]);
    expect(set.rules[2].source).toBe("gate.json: rules[2]");
  });

  it("names the bad field of a rules file", () => {
    const bad = (json: unknown) => messageOf(() => parseRulesFile(JSON.stringify(json), "gate.json"));
    expect(bad({ rules: [{ metric: "fid", max_increse: 1 }] })).toMatch(/^gate\.json: rules\[0\]: unknown field 'max_increse'/);
    expect(bad({ rules: [{ metric: "precision", max_increase: 1 }] })).toMatch(/rules\[0\]\.max_increase: precision regresses downwards.*"max_decrease"/);
    expect(bad({ rules: [{ metric: "fid", max_increase: -1 }] })).toMatch(/rules\[0\]\.max_increase: is a number \(-1\)/);
    expect(bad({ rules: [{ metric: "nope", max_increase: 1 }] })).toMatch(/rules\[0\]\.metric: unknown metric 'nope'/);
    expect(bad({ rules: ["fid:+1", { metric: "fid", max_increase: 1, cell: { a: [1] } }] })).toMatch(/rules\[1\]\.cell\.a: is an array/);
    expect(bad({ rules: [] })).toMatch(/gate\.json: rules is an array \(\[\]\); expected a non-empty array/);
    expect(bad({ rule: ["fid:+1"] })).toMatch(/unknown field 'rule'/);
    expect(bad({ rules: ["fid:+1"], strict: "yes" })).toMatch(/strict is a string/);
    expect(codeOf(() => parseRulesFile("{rules: [", "gate.json"))).toBe("E_GATE_RULE");
    expect(messageOf(() => parseRulesFile("{rules: [", "gate.json"))).toMatch(/^gate\.json: not valid JSON/);
  });
});
