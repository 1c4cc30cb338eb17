/**
 * Gate rules: how far a metric may move in its bad direction before the gate fails.
 *
 * On the command line: `METRIC[CELL]:±AMOUNT[%]`
 *   fid:+0.5                 FID may rise by at most 0.5 (absolute)
 *   kid:+10%                 KID may rise by at most 10% of the baseline's value (relative)
 *   precision:-0.02          precision may fall by at most 0.02
 *   fid[cfg_scale=7.5]:+1    only for the cells with cfg_scale 7.5
 * The sign is required and must be the metric's bad direction (FID rises, precision falls), so
 * that a rule always reads as "this much worse is still fine".
 *
 * In a rules file (`--rules gate.json`):
 *   {
 *     "strict": false,                          // optional: as --strict
 *     "description": "...",                     // optional, ignored
 *     "rules": [                                // required, non-empty
 *       "fid:+0.5",                             // a rule string as on the command line, or
 *       { "metric": "kid", "max_increase": "10%" },
 *       { "metric": "precision", "max_decrease": 0.02 },
 *       { "metric": "fid", "cell": { "cfg_scale": 7.5 }, "max_increase": 1.0 }
 *     ]
 *   }
 * An object rule has `metric`, exactly one of `max_increase` (metrics that regress upwards) or
 * `max_decrease` (downwards) as a number >= 0 or a percentage string, and optionally `cell`.
 */
import { DiffevalError } from "../errors.js";
import { parseCellSelector, selectorText, type CellSelector } from "./cell-selector.js";
import { GATEABLE_METRICS, METRIC_DIRECTIONS, type BadDirection } from "./metric-directions.js";
import { describeJson, isPlainObject, parseJsonText } from "../io/read-json.js";
import type { ParamValue } from "./results.js";

export interface GateRule {
  metric: string;
  direction: BadDirection;
  /** The cells it applies to; empty: every cell. */
  cell: CellSelector;
  /** >= 0: in the metric's units, or a fraction of the baseline value when `relative`. */
  amount: number;
  relative: boolean;
  /** Canonical spelling, e.g. `fid[cfg_scale=7.5]:+0.5`, `kid:+10%`. */
  text: string;
  /** Where it was given: `--rule`, `gate.json rules[2]`. */
  source: string;
}

export interface RuleSet {
  rules: GateRule[];
  strict: boolean;
}

const RULE_SHAPE = /^\s*([A-Za-z_]\w*)\s*(?:\[(.*)\])?\s*:\s*(.*?)\s*$/s;
// One grammar for an amount, on the command line (after its sign) and in a rules file's strings.
// Each digit run can be matched one way only (`\d+(\.\d*)?`, not `\d+\.?\d*`, which splits a
// run of n digits n ways): the fuzzer's +000...0 of 75,000 digits took minutes to refuse.
const AMOUNT = "((?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:e[+-]?\\d+)?)\\s*(%)?";
const BOUND_SHAPE = new RegExp(`^([+-])?\\s*${AMOUNT}$`, "i");
const AMOUNT_SHAPE = new RegExp(`^\\s*${AMOUNT}\\s*$`, "i");
const MAX_RULE_LENGTH = 1000;
const EXAMPLES = '"fid:+0.5", "kid:+10%", "precision:-0.02", "fid[cfg_scale=7.5]:+1"';

/** Parses one rule string; `source` names where it came from in error messages. */
export function parseRule(text: string, source = "--rule"): GateRule {
  // Rules are short ("fid[cfg_scale=7.5,sampler=euler]:+1"); a long one is a mistake, and capping
  // the length keeps every pattern below linear in practice.
  if (text.length > MAX_RULE_LENGTH) {
    throw ruleError(`${source} "${text.slice(0, 40)}..."`, `is ${text.length} characters long; a rule has at most ${MAX_RULE_LENGTH}`);
  }
  const where = `${source} "${text}"`;
  const shape = RULE_SHAPE.exec(text);
  if (!shape) throw ruleError(where, `expected METRIC[CELL]:±AMOUNT[%], e.g. ${EXAMPLES}`);
  const [, name, selector, boundText] = shape;
  const metric = name.toLowerCase();
  const direction = directionOf(metric, where);
  const bound = BOUND_SHAPE.exec(boundText);
  if (!bound) throw ruleError(where, `'${boundText}' is not a signed amount like +0.5 or -10%`);
  const [, sign, digits, percent] = bound;
  const wantSign = direction === "up" ? "+" : "-";
  if (sign !== wantSign) throw ruleError(where, signAdvice(metric, direction, sign === undefined));
  const cell = selector === undefined ? [] : parseCellSelector(selector, where);
  const { amount, relative } = allowance(Number(digits), Boolean(percent), where, boundText);
  return makeRule(metric, direction, cell, amount, relative, source);
}

/** Parses and validates a rules file; errors name the file and the field at fault. */
export function parseRulesFile(text: string, file: string): RuleSet {
  const json = parseJsonText(text, file, "E_GATE_RULE", 'a rules file {"rules": ["fid:+0.5", ...]}');
  if (!isPlainObject(json)) throw ruleError(file, `the top level is ${describeJson(json)}; expected {"rules": [...]}`);
  rejectUnknownFields(json, ["rules", "strict", "description", "$schema"], file);
  if (json.strict !== undefined && typeof json.strict !== "boolean") {
    throw ruleError(file, `strict is ${describeJson(json.strict)}; expected true or false`);
  }
  if (!Array.isArray(json.rules) || json.rules.length === 0) {
    throw ruleError(file, `rules is ${describeJson(json.rules)}; expected a non-empty array of rule strings or objects`);
  }
  const rules = json.rules.map((entry, i) => ruleFromEntry(entry, `${file}: rules[${i}]`));
  return { rules, strict: json.strict === true };
}

/** `+0.5`, `-10%`: the bound as the rule writes it. */
export function boundText(rule: GateRule): string {
  const sign = rule.direction === "up" ? "+" : "-";
  return rule.relative ? `${sign}${trimNumber(rule.amount * 100)}%` : `${sign}${trimNumber(rule.amount)}`;
}

function ruleFromEntry(entry: unknown, where: string): GateRule {
  if (typeof entry === "string") return parseRule(entry, where);
  if (!isPlainObject(entry)) throw ruleError(where, `is ${describeJson(entry)}; expected a rule string or {metric, max_increase | max_decrease[, cell]}`);
  rejectUnknownFields(entry, ["metric", "cell", "max_increase", "max_decrease", "description"], where);
  if (typeof entry.metric !== "string") throw ruleError(`${where}.metric`, `is ${describeJson(entry.metric)}; expected a metric name`);
  const metric = entry.metric.toLowerCase();
  const direction = directionOf(metric, `${where}.metric`);
  const field = direction === "up" ? "max_increase" : "max_decrease";
  const other = direction === "up" ? "max_decrease" : "max_increase";
  if (entry[other] !== undefined) throw ruleError(`${where}.${other}`, signAdvice(metric, direction, false, field));
  const { amount, relative } = amountOf(entry[field], `${where}.${field}`);
  return makeRule(metric, direction, cellOf(entry.cell, `${where}.cell`), amount, relative, where);
}

function amountOf(v: unknown, where: string): { amount: number; relative: boolean } {
  if (typeof v === "number" && v >= 0) return allowance(v, false, where, String(v));
  const shape = typeof v === "string" ? AMOUNT_SHAPE.exec(v) : null;
  if (shape?.[2]) return allowance(Number(shape[1]), true, where, describeJson(v));
  throw ruleError(where, `is ${describeJson(v)}; expected a number >= 0 (absolute) or a string like "10%" (relative to the baseline)`);
}

/**
 * The allowance both rule forms end in: `value` in the metric's units, or a percentage of the
 * baseline when `percent`. It must be finite: `1e400` reads as Infinity (in JSON.parse and in
 * Number alike), and an infinite allowance would pass every regression.
 */
function allowance(value: number, percent: boolean, where: string, written: string): { amount: number; relative: boolean } {
  const amount = percent ? value / 100 : value;
  if (!Number.isFinite(amount)) {
    throw ruleError(where, `the allowance ${written} is not a finite number (it reads as ${amount}); give the largest change the gate should accept, e.g. ${EXAMPLES}`);
  }
  return { amount, relative: percent };
}

function cellOf(v: unknown, where: string): CellSelector {
  if (v === undefined) return [];
  if (!isPlainObject(v) || Object.keys(v).length === 0) throw ruleError(where, `is ${describeJson(v)}; expected an object of parameter values, e.g. {"cfg_scale": 7.5}`);
  return Object.entries(v).map(([k, value]) => {
    if (value !== null && !["string", "number", "boolean"].includes(typeof value)) {
      throw ruleError(`${where}.${k}`, `is ${describeJson(value)}; expected a string, number, boolean or null`);
    }
    return [k, value as ParamValue];
  });
}

function makeRule(metric: string, direction: BadDirection, cell: CellSelector, amount: number, relative: boolean, source: string): GateRule {
  const rule: GateRule = { metric, direction, cell, amount, relative, source, text: "" };
  rule.text = `${metric}${cell.length ? `[${selectorText(cell)}]` : ""}:${boundText(rule)}`;
  return rule;
}

function directionOf(metric: string, where: string): BadDirection {
  const direction = METRIC_DIRECTIONS.get(metric);
  if (!direction) throw ruleError(where, `unknown metric '${metric}'; gateable metrics: ${GATEABLE_METRICS.join(", ")}`);
  return direction;
}

function signAdvice(metric: string, direction: BadDirection, unsigned: boolean, field?: string): string {
  const worse = direction === "up" ? "upwards (lower is better)" : "downwards (higher is better)";
  const fix = field ? `use "${field}"` : `write "${metric}:${direction === "up" ? "+" : "-"}AMOUNT"`;
  const what = unsigned ? "the amount needs a sign" : "the sign must be the direction in which it gets worse";
  return `${metric} regresses ${worse}; ${what}: ${fix}`;
}

function rejectUnknownFields(obj: Record<string, unknown>, known: string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw ruleError(where, `unknown field '${key}'; expected ${known.filter((k) => !k.startsWith("$")).join(", ")}`);
  }
}

function trimNumber(x: number): string {
  return String(Number(x.toPrecision(12)));
}

function ruleError(where: string, message: string): DiffevalError {
  return new DiffevalError("E_GATE_RULE", `${where}: ${message}`);
}
