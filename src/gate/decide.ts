/**
 * The verdict of one rule on one metric of one cell, and the sentence that says how it was reached.
 *
 * A change is measured in the rule's bad direction (`worse` > 0: got worse) and compared with the
 * allowance (absolute, or a fraction of the baseline's magnitude). Past the allowance, bootstrap
 * intervals on both sides that overlap mean the two runs are not distinguishable at 95%: that
 * passes as noise unless strict. Values given as {mean, std, ci95} are compared by their mean.
 */
import type { Estimate } from "./metric-directions.js";
import type { GateRule } from "./rules.js";

/**
 * How a check was decided; `regressed` and `missing` fail the gate, `new` is reported and passes,
 * `n/a` (a metric neither file measured in this cell, though cells elsewhere have it) passes too.
 */
export type Decision = "ok" | "noise" | "regressed" | "missing" | "new" | "n/a";

export interface ChangeVerdict {
  decision: Decision;
  reason: string;
  /** current - baseline */
  delta: number;
  /** The allowance in the metric's units. */
  allowed: number;
}

export function isFailure(decision: Decision): boolean {
  return decision === "regressed" || decision === "missing";
}

export function decideChange(rule: GateRule, baseline: Estimate, current: Estimate, strict: boolean): ChangeVerdict {
  const delta = current.mean - baseline.mean;
  const worse = rule.direction === "up" ? delta : -delta;
  const allowed = rule.relative ? rule.amount * Math.abs(baseline.mean) : rule.amount;
  // Both means went through float arithmetic (and a percentage of one of them): a change equal
  // to the allowance must not fail by one rounding step.
  const slack = 1e-12 * Math.max(Math.abs(baseline.mean), Math.abs(current.mean));
  if (worse <= allowed + slack) return { decision: "ok", reason: okReason(worse, allowed), delta, allowed };
  const [w, a] = distinctTexts(worse, allowed);
  const past = `regressed by ${w} > ${a}`;
  const overlap = intervalsOverlap(baseline.ci95, current.ci95);
  if (overlap && !strict) {
    return { decision: "noise", reason: `within noise: ${past}, but the 95% CIs overlap (${overlap})`, delta, allowed };
  }
  if (overlap) return { decision: "regressed", reason: `${past}; the 95% CIs overlap (${overlap}) but --strict`, delta, allowed };
  return { decision: "regressed", reason: past + noCiNote(baseline, current), delta, allowed };
}

function okReason(worse: number, allowed: number): string {
  if (worse > 0) {
    const [w, a] = distinctTexts(worse, allowed);
    return `ok: worse by ${w} <= ${a}`;
  }
  return worse < 0 ? `ok: improved by ${shortNumber(-worse)}` : "ok: unchanged";
}

/** "[a, b] vs [c, d]" when both intervals exist and overlap, else undefined. */
function intervalsOverlap(a?: [number, number], b?: [number, number]): string | undefined {
  if (!a || !b || a[0] > b[1] || b[0] > a[1]) return undefined;
  return `baseline [${shortNumber(a[0])}, ${shortNumber(a[1])}] vs current [${shortNumber(b[0])}, ${shortNumber(b[1])}]`;
}

/** Says why the noise test did not apply when only one side had an interval. */
function noCiNote(baseline: Estimate, current: Estimate): string {
  if (Boolean(baseline.ci95) === Boolean(current.ci95)) return baseline.ci95 ? " (the 95% CIs do not overlap)" : "";
  return ` (no CI on ${baseline.ci95 ? "current" : "baseline"}: decided on the means)`;
}

/** 4 significant digits, more when needed to tell two numbers apart ("0.5001 > 0.5", never "0.5 > 0.5"). */
export function distinctTexts(a: number, b: number): [string, string] {
  for (let p = 4; p < 17; p++) {
    const pair: [string, string] = [shortNumber(a, p), shortNumber(b, p)];
    if (pair[0] !== pair[1]) return pair;
  }
  return [String(a), String(b)];
}

export function shortNumber(x: number, precision = 4): string {
  return String(Number(x.toPrecision(precision)));
}
