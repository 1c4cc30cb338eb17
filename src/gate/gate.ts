/**
 * The gate itself, a pure function: baseline and current results, rules -> one check per
 * (metric, cell) a rule covers, each with a verdict and the reason for it.
 *
 * Choices, documented in docs/ci-gate.md:
 * - Several rules may cover one metric of one cell (`fid:+1` and `fid[steps=10]:+2`): the most
 *   specific (most selector keys) decides, the later one on a tie, so a cell can be given a looser
 *   or tighter bound than the rest.
 * - A cell in the baseline but not in current fails ("missing"): the gate cannot vouch for what
 *   was not measured. A cell only in current is reported as "new" and passes; --update-baseline
 *   adopts it. The same holds for a metric absent from one side of a cell.
 * - A rule with a cell selector that matches no cell on either side is a usage error (a typo
 *   would otherwise make the rule vacuous).
 * - A metric absent from both files in a cell, but measured in other cells, does not apply there
 *   ("n/a", passes): neg_clip_delta exists only in cells with a negative prompt, and a whole-sweep
 *   rule `neg_clip_delta:+0.5` covers those. Absent from every cell of both files, it is "missing".
 */
import { DiffevalError } from "../errors.js";
import { selectorMatches } from "./cell-selector.js";
import { decideChange, isFailure, type Decision } from "./decide.js";
import { pairCells, type CellPair } from "./match-cells.js";
import { estimateOf, gateValueOf, type Estimate } from "./metric-directions.js";
import { cellLabel, type GateResults, type ResultCell } from "./results.js";
import type { GateRule, RuleSet } from "./rules.js";

export interface GateCheck {
  metric: string;
  rule: GateRule;
  cell: CellPair;
  baseline?: Estimate;
  current?: Estimate;
  /** current - baseline, when both are there. */
  delta?: number;
  /** The allowance in the metric's units (a relative rule needs the baseline's value). */
  allowed?: number;
  decision: Decision;
  reason: string;
}

/** What the reports say about each results file. */
export interface ResultsSummary {
  file: string;
  protocol: string;
  weights_sha256: string;
  version?: string;
  cells: number;
}

export interface GateReport {
  baseline: ResultsSummary;
  current: ResultsSummary;
  strict: boolean;
  checks: GateCheck[];
  /** Things worth knowing that do not change a verdict (different image counts, unknown weights). */
  warnings: string[];
  failed: number;
}

export function gateReport(baseline: GateResults, current: GateResults, ruleSet: RuleSet): GateReport {
  const warnings = comparableWarnings(baseline, current);
  const pairs = pairCells(baseline, current);
  assertEveryRuleMatches(ruleSet.rules, pairs, baseline, current);
  const checks: GateCheck[] = [];
  for (const metric of new Set(ruleSet.rules.map((r) => r.metric))) {
    const rules = ruleSet.rules.filter((r) => r.metric === metric);
    const ofMetric: GateCheck[] = [];
    for (const pair of pairs) {
      const rule = decidingRule(rules, pair);
      if (rule) ofMetric.push(checkOf(rule, pair, ruleSet.strict, baseline.file, current.file));
    }
    checks.push(...measuredSomewhere(ofMetric));
  }
  warnings.push(...countWarnings(pairs));
  return {
    baseline: summaryOf(baseline),
    current: summaryOf(current),
    strict: ruleSet.strict,
    checks,
    warnings,
    failed: checks.filter((c) => isFailure(c.decision)).length,
  };
}

/**
 * Refuses (E_PROTOCOL_MISMATCH) to compare results made under different protocols or weights, as
 * `diffeval fid` does: the numbers would differ for reasons that are not the model's. Weights
 * recorded as "unknown" (two pytorch-fid stats files) cannot be checked: a warning says so.
 */
export function comparableWarnings(baseline: GateResults, current: GateResults): string[] {
  const warnings: string[] = [];
  for (const key of ["protocol", "weights_sha256"] as const) {
    const [b, c] = [baseline[key], current[key]];
    if (b === "unknown" || c === "unknown") {
      if (b !== c) warnings.push(`${key} is unknown in ${b === "unknown" ? baseline.file : current.file}: cannot check it matches`);
      continue;
    }
    if (b !== c) {
      throw new DiffevalError(
        "E_PROTOCOL_MISMATCH",
        `${baseline.file} was computed with ${key} ${b}, ${current.file} with ${c}: the numbers are not comparable. ` +
          `Recompute current with the baseline's settings, or adopt the new settings with --update-baseline.`,
      );
    }
  }
  return warnings;
}

/** "n/a" checks stay "n/a" only when some cell measured the metric; else none did: all "missing". */
function measuredSomewhere(checks: GateCheck[]): GateCheck[] {
  if (checks.some((c) => c.baseline || c.current)) return checks;
  return checks.map((c) => (c.decision === "n/a" ? { ...c, decision: "missing" as const, reason: `${c.metric} absent from both files` } : c));
}

/** The most specific matching rule (most selector keys); the later one among equals. */
function decidingRule(rules: GateRule[], pair: CellPair): GateRule | undefined {
  let best: GateRule | undefined;
  for (const rule of rules) {
    if (selectorMatches(rule.cell, pair.params) && (!best || rule.cell.length >= best.cell.length)) best = rule;
  }
  return best;
}

function checkOf(rule: GateRule, cell: CellPair, strict: boolean, baselineFile: string, currentFile: string): GateCheck {
  const base = { metric: rule.metric, rule, cell };
  if (!cell.current) return { ...base, ...valuesOf(rule, cell.baseline, baselineFile), decision: "missing", reason: `cell missing from ${currentFile}` };
  if (!cell.baseline) return { ...base, ...valuesOf(rule, undefined, "", cell.current, currentFile), decision: "new", reason: "new cell: no baseline yet" };
  const values = valuesOf(rule, cell.baseline, baselineFile, cell.current, currentFile);
  const { baseline, current } = values;
  if (!baseline && !current) return { ...base, ...values, decision: "n/a", reason: `${rule.metric} absent from both files in this cell` };
  if (!current) return { ...base, ...values, decision: "missing", reason: `${rule.metric} absent from ${currentFile}` };
  if (!baseline) return { ...base, ...values, decision: "new", reason: `${rule.metric} absent from ${baselineFile}: nothing to compare yet` };
  return { ...base, ...values, ...decideChange(rule, baseline, current, strict) };
}

function valuesOf(
  rule: GateRule,
  baselineCell: ResultCell | undefined,
  baselineFile: string,
  currentCell?: ResultCell,
  currentFile = "",
): Pick<GateCheck, "baseline" | "current" | "allowed"> {
  const baseline = baselineCell && estimateIn(baselineCell, rule.metric, baselineFile);
  const current = currentCell && estimateIn(currentCell, rule.metric, currentFile);
  const allowed = !rule.relative ? rule.amount : baseline ? rule.amount * Math.abs(baseline.mean) : undefined;
  return { baseline, current, allowed };
}

function estimateIn(cell: ResultCell, metric: string, file: string): Estimate | undefined {
  const e = estimateOf(gateValueOf(metric, Object.hasOwn(cell.metrics, metric) ? cell.metrics[metric] : undefined));
  if (typeof e !== "string") return e;
  const where = Object.keys(cell.params).length ? ` cell ${cellLabel(cell.params)}:` : "";
  throw new DiffevalError("E_GATE_INPUT", `${file}:${where} ${metric} ${e}`);
}

function assertEveryRuleMatches(rules: GateRule[], pairs: CellPair[], baseline: GateResults, current: GateResults): void {
  for (const rule of rules) {
    if (rule.cell.length === 0 || pairs.some((p) => selectorMatches(rule.cell, p.params))) continue;
    const labels = pairs.map((p) => p.label).filter(Boolean);
    const known = labels.length
      ? `cells: ${labels.slice(0, 5).join("; ")}${labels.length > 5 ? `; ... (${labels.length} in all)` : ""}`
      : "these results have one cell without parameters (not a sweep)";
    throw new DiffevalError("E_GATE_RULE", `${rule.source} "${rule.text}": matches no cell of ${baseline.file} or ${current.file}; ${known}`);
  }
}

/** FID and KID are biased by n: a change of image counts between runs moves them by itself. */
function countWarnings(pairs: CellPair[]): string[] {
  const warnings: string[] = [];
  for (const { baseline, current, label } of pairs) {
    if (!baseline || !current) continue;
    for (const key of ["n_real", "n_fake"] as const) {
      const [b, c] = [baseline[key], current[key]];
      if (typeof b === "number" && typeof c === "number" && b !== c) {
        warnings.push(`${label ? `cell ${label}: ` : ""}${key} is ${b} in the baseline, ${c} in current: FID and KID depend on n, compare equal counts`);
      }
    }
  }
  return warnings;
}

function summaryOf(r: GateResults): ResultsSummary {
  return { file: r.file, protocol: r.protocol, weights_sha256: r.weights_sha256, version: r.version, cells: r.cells.length };
}
