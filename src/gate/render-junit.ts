/**
 * JUnit XML for CI test reporters (GitHub/GitLab/Jenkins parsers): one <testcase> per (rule,
 * cell) check. A failed check carries <failure>, a new cell or metric <skipped> (nothing to
 * compare, not a pass), a passed one its reason in <system-out>. The testcase name is metric and
 * cell, not the rule, so a CI's history follows a cell across changes of its bound.
 */
import { checkRow } from "./check-rows.js";
import { isFailure } from "./decide.js";
import type { GateCheck, GateReport } from "./gate.js";
import { xmlAttr, xmlText } from "./xml.js";

/** `timestamp`: the run's start, ISO 8601 without zone (what the JUnit schema's xs:dateTime pattern expects). */
export function junitXml(r: GateReport, timestamp?: string): string {
  const failures = r.checks.filter((c) => isFailure(c.decision)).length;
  const skipped = r.checks.filter((c) => c.decision === "new" || c.decision === "n/a").length;
  const counts = `tests="${r.checks.length}" failures="${failures}" errors="0" skipped="${skipped}" time="0"`;
  const suiteName = xmlAttr(`diffeval gate: ${r.current.file} vs ${r.baseline.file}`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="diffeval gate" ${counts}>`,
    `  <testsuite name="${suiteName}" ${counts}${timestamp ? ` timestamp="${xmlAttr(timestamp)}"` : ""}>`,
    "    <properties>",
    ...properties(r).map(([k, v]) => `      <property name="${xmlAttr(k)}" value="${xmlAttr(v)}"/>`),
    "    </properties>",
    ...r.checks.map(testcase),
    "  </testsuite>",
    "</testsuites>",
    "",
  ].join("\n");
}

function testcase(c: GateCheck): string {
  const name = c.cell.label ? `${c.metric} [${c.cell.label}]` : c.metric;
  const open = `    <testcase classname="diffeval.gate.${xmlAttr(c.metric)}" name="${xmlAttr(name)}" time="0">`;
  return `${open}\n      ${outcome(c)}\n    </testcase>`;
}

function outcome(c: GateCheck): string {
  if (isFailure(c.decision)) {
    return `<failure type="${c.decision}" message="${xmlAttr(c.reason)}">${xmlText(details(c))}</failure>`;
  }
  if (c.decision === "new" || c.decision === "n/a") return `<skipped message="${xmlAttr(c.reason)}"/>`;
  return `<system-out>${xmlText(details(c))}</system-out>`;
}

function details(c: GateCheck): string {
  const row = checkRow(c);
  return [
    `${row.verdict}: ${c.reason}`,
    `rule ${c.rule.text} (from ${c.rule.source})`,
    `baseline ${row.baseline}, current ${row.current}, delta ${row.delta}, allowed ${row.allowed}`,
  ].join("\n");
}

function properties(r: GateReport): [string, string][] {
  return [
    ["protocol", r.current.protocol],
    ["weights_sha256", r.current.weights_sha256],
    ["baseline", r.baseline.file],
    ["current", r.current.file],
    ["baseline_version", r.baseline.version ?? "unknown"],
    ["current_version", r.current.version ?? "unknown"],
    ["strict", String(r.strict)],
  ];
}
