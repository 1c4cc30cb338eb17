/**
 * The cell part of a rule: `fid[cfg_scale=7.5, sampler=euler]:+0.5` applies to the cells whose
 * params have those values. Written the way cells are labelled (results.ts `cellLabel`), so a
 * label copied from the gate's table is a valid selector.
 */
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { paramText, type CellParams, type ParamValue } from "./results.js";

/** [param, wanted value] pairs, all of which a cell must match; empty: every cell. */
export type CellSelector = [string, ParamValue][];

/**
 * Parses `key=value, key=value`. A value is a JSON string (`prompt="a cat, sitting"`, for
 * commas, brackets or an empty string) or a bare word read as a number, true, false or null
 * when it looks like one, else as a string.
 */
export function parseCellSelector(text: string, where: string): CellSelector {
  if (text.trim() === "") throw ruleError(where, "empty cell selector []: leave the brackets out to apply the rule to every cell");
  const selector: CellSelector = [];
  for (const part of splitOutsideQuotes(text, where)) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (eq < 0 || key === "") throw ruleError(where, `cell selector part '${part.trim()}' is not key=value`);
    if (selector.some(([k]) => k === key)) throw ruleError(where, `cell selector names '${key}' twice`);
    selector.push([key, selectorValue(part.slice(eq + 1).trim(), where)]);
  }
  return selector;
}

/** Whether a cell's params match every pair; a number matches its spelling as a string too ("7.5" ~ 7.5). */
export function selectorMatches(selector: CellSelector, params: CellParams): boolean {
  return selector.every(([key, wanted]) => Object.hasOwn(params, key) && sameValue(params[key], wanted));
}

export function selectorText(selector: CellSelector): string {
  return selector.map(([k, v]) => `${k}=${paramText(v)}`).join(", ");
}

function sameValue(actual: ParamValue, wanted: ParamValue): boolean {
  if (typeof actual === "number" && typeof wanted === "number") return actual === wanted;
  return String(actual) === String(wanted);
}

function selectorValue(raw: string, where: string): ParamValue {
  if (raw.startsWith('"')) {
    try {
      const v = parseJsonText(raw, where, "E_GATE_RULE", "one JSON string");
      if (typeof v === "string") return v;
    } catch {
      // reported below
    }
    throw ruleError(where, `cell selector value ${raw} is not one JSON string`);
  }
  if (raw === "true" || raw === "false") return raw === "true";
  if (raw === "null") return null;
  if (raw !== "" && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) return Number(raw);
  return raw;
}

/** Splits at commas that are not inside a double-quoted string (which may escape its quotes). */
function splitOutsideQuotes(text: string, where: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted && ch === "\\") {
      current += ch + (text[++i] ?? "");
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  if (quoted) throw ruleError(where, "cell selector has an unterminated string");
  parts.push(current);
  return parts;
}

function ruleError(where: string, message: string): DiffevalError {
  return new DiffevalError("E_GATE_RULE", `${where}: ${message}`);
}
