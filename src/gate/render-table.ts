/** The gate's report for a terminal: an aligned table, numbers right-aligned, then a summary line. */
import { checkRow, COLUMNS, summaryLine } from "./check-rows.js";
import type { GateReport } from "./gate.js";

const NUMERIC = new Set<string>(["baseline", "current", "delta", "allowed"]);

export function gateTable(r: GateReport): string {
  const rows: string[][] = [[...COLUMNS], ...r.checks.map((c) => COLUMNS.map((k) => checkRow(c)[k]))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (NUMERIC.has(COLUMNS[i]) ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join("  ")
      .trimEnd(),
  );
  const strict = r.strict ? ", strict" : "";
  const header = `${r.current.file} vs baseline ${r.baseline.file} (protocol ${r.current.protocol}, weights ${r.current.weights_sha256.slice(0, 12)}${strict})`;
  return `${header}\n${lines.join("\n")}\ngate: ${summaryLine(r)}\n`;
}
