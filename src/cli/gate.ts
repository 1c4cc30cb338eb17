/**
 * `diffeval gate --current RESULTS --baseline BASELINE --rule "fid:+0.5" ...`: the CI regression
 * gate. Exit 0 when every check passes, 1 when one fails (GateFailedError carries that to main),
 * 2 for a usage or input error. `--update-baseline` adopts the current results as the baseline.
 */
import { appendFile, readFile } from "node:fs/promises";
import { Command } from "commander";
import { DiffevalError, isDiffevalError, type ErrorCode } from "../errors.js";
import { gateReport, type GateReport } from "../gate/gate.js";
import { gateMarkdown } from "../gate/render-markdown.js";
import { junitXml } from "../gate/render-junit.js";
import { gateTable } from "../gate/render-table.js";
import { parseResults, type GateResults } from "../gate/results.js";
import { parseRule, parseRulesFile, type RuleSet } from "../gate/rules.js";
import { writeFileAtomic } from "../io/atomic.js";
import { EXIT_FAILED_GATE, EXIT_OK, EXIT_USAGE } from "./run-command.js";

export interface GateOptions {
  current: string;
  baseline: string;
  /** Rule strings (`--rule`), applied after those of `rulesFile`. */
  rules?: string[];
  rulesFile?: string;
  strict?: boolean;
  junit?: string;
  markdown?: string;
  updateBaseline?: boolean;
  /** File the Markdown is appended to; default $GITHUB_STEP_SUMMARY (GitHub Actions sets it). */
  stepSummary?: string;
  /** Where the table and messages go; default stdout and stderr. */
  out?: (text: string) => void;
  err?: (text: string) => void;
}

/**
 * Thrown by the command after the table is printed, when a check failed: main() maps
 * E_GATE_FAILED to exit 1 (every other DiffevalError is a usage or input error, exit 2).
 */
export class GateFailedError extends DiffevalError {
  readonly exitCode = EXIT_FAILED_GATE;

  constructor() {
    super("E_GATE_FAILED", "a metric regressed beyond its rule, or a cell is missing: see the table above");
  }
}

export function gateCommand(): Command {
  return new Command("gate")
    .description("compare results with a baseline under per-metric rules; exit 1 on a regression (for CI)")
    .requiredOption("--current <file>", "results to check: fid --json, metrics --json or a sweep's results.json")
    .requiredOption("--baseline <file>", "results to compare with (same formats)")
    .option("--rule <rule>", 'allowed change, repeatable: "fid:+0.5", "kid:+10%", "precision:-0.02", "fid[cfg_scale=7.5]:+1"', collectRule, [])
    .option("--rules <file>", "rules JSON file (docs/ci-gate.md); --rule flags apply after it")
    .option("--strict", "fail a change beyond its rule even when both sides' bootstrap CIs overlap")
    .option("--junit <file>", "write JUnit XML, one testcase per rule and cell")
    .option("--markdown <file>", "write the report as Markdown (also appended to $GITHUB_STEP_SUMMARY when set)")
    .option("--update-baseline", "write the current results to the baseline path (atomically) and exit 0")
    .action(async (flags: GateFlags) => {
      const code = await gateExitCode({ ...flags, rules: flags.rule, rulesFile: flags.rules });
      if (code === EXIT_FAILED_GATE) throw new GateFailedError();
    });
}

interface GateFlags {
  current: string;
  baseline: string;
  rule: string[];
  rules?: string;
  strict?: boolean;
  junit?: string;
  markdown?: string;
  updateBaseline?: boolean;
}

function collectRule(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The gate as a library call: the exit code (0 pass, 1 regression, 2 usage/input error, printed). */
export async function runGate(opts: GateOptions): Promise<number> {
  try {
    return await gateExitCode(opts);
  } catch (e) {
    if (!isDiffevalError(e)) throw e;
    errOf(opts)(`error[${e.code}]: ${e.message}\n`);
    return EXIT_USAGE;
  }
}

/** 0 or 1; usage and input errors are thrown (DiffevalError). */
export async function gateExitCode(opts: GateOptions): Promise<number> {
  if (opts.updateBaseline) return updateBaseline(opts);
  const ruleSet = await ruleSetOf(opts);
  const baseline = await readResults(opts.baseline, "baseline");
  const current = await readResults(opts.current, "current");
  const report = gateReport(baseline, current, { rules: ruleSet.rules, strict: Boolean(opts.strict) || ruleSet.strict });
  for (const w of report.warnings) errOf(opts)(`warning: ${w}\n`);
  outOf(opts)(gateTable(report));
  await writeReports(report, opts);
  return report.failed > 0 ? EXIT_FAILED_GATE : EXIT_OK;
}

async function ruleSetOf(opts: GateOptions): Promise<RuleSet> {
  const fromFile = opts.rulesFile ? parseRulesFile(await readText(opts.rulesFile, "E_GATE_RULE", "rules file"), opts.rulesFile) : undefined;
  const fromFlags = (opts.rules ?? []).map((r) => parseRule(r));
  const rules = [...(fromFile?.rules ?? []), ...fromFlags];
  if (rules.length === 0) {
    throw new DiffevalError("E_USAGE", 'no rules: give --rule (e.g. --rule "fid:+0.5") or --rules gate.json');
  }
  return { rules, strict: fromFile?.strict ?? false };
}

async function readResults(file: string, role: "baseline" | "current"): Promise<GateResults> {
  const hint = role === "baseline" ? "; to start one, run the gate with --update-baseline" : "";
  return parseResults(await readText(file, "E_GATE_INPUT", `${role} results`, hint), file);
}

async function readText(file: string, code: ErrorCode, what: string, missingHint = ""): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code === "ENOENT" ? `no such file${missingHint}` : (e as Error).message;
    throw new DiffevalError(code, `${file}: cannot read the ${what} (${reason})`);
  }
}

/** JUnit and Markdown files as asked, and the Markdown appended to the step summary. */
async function writeReports(report: GateReport, opts: GateOptions): Promise<void> {
  // A failed write is writeFileAtomic's E_OUTPUT, which names the file and the reason.
  const write = (file: string, text: string) => writeFileAtomic(file, text, { elsewhere: "choose another --junit or --markdown path" });
  if (opts.junit) await write(opts.junit, junitXml(report, new Date().toISOString().slice(0, 19)));
  const markdown = gateMarkdown(report);
  if (opts.markdown) await write(opts.markdown, markdown);
  const summary = opts.stepSummary ?? process.env.GITHUB_STEP_SUMMARY;
  // The step summary is the CI's page, not something the user asked for by name: failing to
  // write it must not turn a verdict into an error.
  if (summary) await appendFile(summary, `${markdown}\n`).catch((e: Error) => errOf(opts)(`warning: cannot append to $GITHUB_STEP_SUMMARY ${summary}: ${e.message}\n`));
}

/** --update-baseline: validates the current results, then writes them over the baseline atomically. */
async function updateBaseline(opts: GateOptions): Promise<number> {
  const current = await readResults(opts.current, "current");
  const previous = await previousBaseline(opts.baseline);
  await writeFileAtomic(opts.baseline, `${JSON.stringify(current.raw, null, 2)}\n`, { elsewhere: "choose another --baseline" });
  const what = `${current.cells.length} cell${current.cells.length === 1 ? "" : "s"}, protocol ${current.protocol}, weights ${current.weights_sha256.slice(0, 12)}`;
  outOf(opts)(`gate: baseline ${opts.baseline} ${previous === undefined ? "created" : "updated"} from ${opts.current} (${what})${changesFrom(previous, current)}\n`);
  return EXIT_OK;
}

/** The baseline being replaced: its results, "unreadable", or undefined when there is none. */
async function previousBaseline(file: string): Promise<GateResults | "unreadable" | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? undefined : "unreadable";
  }
  try {
    return parseResults(text, file);
  } catch {
    return "unreadable";
  }
}

function changesFrom(previous: GateResults | "unreadable" | undefined, current: GateResults): string {
  if (previous === undefined) return "";
  if (previous === "unreadable") return "; it replaced a file that was not valid results";
  const before = new Set(previous.cells.map((c) => c.key));
  const after = new Set(current.cells.map((c) => c.key));
  const added = [...after].filter((k) => !before.has(k)).length;
  const dropped = [...before].filter((k) => !after.has(k)).length;
  const notes = [
    added && `${added} new cell${added === 1 ? "" : "s"}`,
    dropped && `${dropped} cell${dropped === 1 ? "" : "s"} dropped`,
    previous.protocol !== current.protocol && `protocol was ${previous.protocol}`,
    previous.weights_sha256 !== current.weights_sha256 && `weights were ${previous.weights_sha256.slice(0, 12)}`,
  ].filter(Boolean);
  return notes.length ? `; ${notes.join(", ")}` : "";
}

function outOf(opts: GateOptions): (text: string) => void {
  return opts.out ?? ((t) => void process.stdout.write(t));
}

function errOf(opts: GateOptions): (text: string) => void {
  return opts.err ?? ((t) => void process.stderr.write(t));
}
