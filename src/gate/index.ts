/** The regression gate as a library: parse results and rules, decide, render. */
export { parseResults, cellKey, cellLabel, SWEEP_SCHEMA, type GateResults, type ResultCell, type CellParams, type ParamValue } from "./results.js";
export { parseRule, parseRulesFile, boundText, type GateRule, type RuleSet } from "./rules.js";
export { METRIC_DIRECTIONS, GATEABLE_METRICS, estimateOf, type BadDirection, type Estimate } from "./metric-directions.js";
export { gateReport, comparableWarnings, type GateCheck, type GateReport, type ResultsSummary } from "./gate.js";
export { decideChange, isFailure, type Decision } from "./decide.js";
export { pairCells, type CellPair } from "./match-cells.js";
export { gateTable } from "./render-table.js";
export { junitXml } from "./render-junit.js";
export { gateMarkdown } from "./render-markdown.js";
