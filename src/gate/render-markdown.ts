/** The gate's report as GitHub-flavoured Markdown: for a PR comment or $GITHUB_STEP_SUMMARY. */
import { checkRow, COLUMNS, summaryLine } from "./check-rows.js";
import { isFailure, type Decision } from "./decide.js";
import type { GateReport } from "./gate.js";

const ALIGN: Record<(typeof COLUMNS)[number], string> = {
  metric: ":--",
  cell: ":--",
  baseline: "--:",
  current: "--:",
  delta: "--:",
  allowed: "--:",
  verdict: ":--",
  decided: ":--",
};

export function gateMarkdown(r: GateReport): string {
  const icon = r.failed > 0 ? "❌" : "✅";
  const weights = r.current.weights_sha256.slice(0, 12);
  const lines = [
    `### ${icon} diffeval gate: ${markdownText(summaryLine(r))}`,
    "",
    `${markdownText(r.current.file)} vs baseline ${markdownText(r.baseline.file)} · protocol ${markdownText(r.current.protocol)} · ` +
      `weights ${markdownText(weights)}${r.strict ? " · strict" : ""}`,
    "",
    `| ${COLUMNS.join(" | ")} |`,
    `|${COLUMNS.map((k) => ALIGN[k]).join("|")}|`,
    ...r.checks.map((c) => {
      const row = checkRow(c);
      const cells = COLUMNS.map((k) => (k === "verdict" ? verdictBadge(c.decision) : markdownText(row[k])));
      return `| ${cells.join(" | ")} |`;
    }),
  ];
  if (r.warnings.length) lines.push("", ...r.warnings.map((w) => `> ⚠️ ${markdownText(w)}`));
  return `${lines.join("\n")}\n`;
}

function verdictBadge(d: Decision): string {
  if (isFailure(d)) return "❌ FAIL";
  if (d === "n/a") return "➖ n/a";
  return d === "new" ? "🆕 new" : d === "noise" ? "✅ pass (noise)" : "✅ pass";
}

/**
 * Text safe inside a table cell: pipes would end the cell, and *, _, `, [, <, ~ would start
 * markup (parameter values are arbitrary strings, prompts included); newlines would end the row.
 */
export function markdownText(s: string): string {
  return s.replace(/[\\`*_[\]<>|~#&]/g, (ch) => `\\${ch}`).replace(/\r?\n/g, " ");
}
