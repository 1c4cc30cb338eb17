/** A check as the text cells every report shows (table, Markdown, JUnit): one formatting for all. */
import { isFailure, type Decision } from "./decide.js";
import type { GateCheck, GateReport } from "./gate.js";
import { boundText } from "./rules.js";

export const COLUMNS = ["metric", "cell", "baseline", "current", "delta", "allowed", "verdict", "decided"] as const;
export type CheckRow = Record<(typeof COLUMNS)[number], string>;

export function checkRow(c: GateCheck): CheckRow {
  return {
    metric: c.metric,
    cell: c.cell.label || "-",
    baseline: c.baseline ? valueText(c.baseline.mean) : "-",
    current: c.current ? valueText(c.current.mean) : "-",
    delta: c.baseline && c.current ? signedText(c.current.mean - c.baseline.mean) : "-",
    allowed: allowedText(c),
    verdict: verdictText(c.decision),
    decided: c.reason,
  };
}

export function verdictText(d: Decision): string {
  return isFailure(d) ? "FAIL" : d === "new" || d === "n/a" ? d : "pass";
}

/** `+0.5`, or `+10% (0.00012)` for a relative rule whose baseline value is known. */
export function allowedText(c: GateCheck): string {
  const bound = boundText(c.rule);
  return c.rule.relative && c.allowed !== undefined ? `${bound} (${valueText(c.allowed)})` : bound;
}

/** 6 significant digits: enough for FID to 1e-4 and for KID's 1e-3 scale alike. */
export function valueText(x: number): string {
  return String(Number(x.toPrecision(6)));
}

export function signedText(x: number): string {
  return x > 0 ? `+${valueText(x)}` : valueText(x);
}

/** One line: "FAIL: 2 of 7 checks failed" / "pass: 7 checks (1 within noise, 1 new)". */
export function summaryLine(r: GateReport): string {
  const count = (d: Decision) => r.checks.filter((c) => c.decision === d).length;
  const notes = [
    count("noise") && `${count("noise")} within noise`,
    count("new") && `${count("new")} new`,
    count("n/a") && `${count("n/a")} not applicable`,
    count("missing") && `${count("missing")} missing`,
  ].filter(Boolean);
  const extra = notes.length ? ` (${notes.join(", ")})` : "";
  const n = r.checks.length;
  return r.failed > 0 ? `FAIL: ${r.failed} of ${n} check${n === 1 ? "" : "s"} failed${extra}` : `pass: ${n} check${n === 1 ? "" : "s"}${extra}`;
}
