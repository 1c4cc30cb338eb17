/**
 * The parent side of fuzzing: runs a target's cases in child workers (worker.ts, compiled to
 * .bench-build by `npm run fuzz` and by the test global setup) under a heap cap, an RSS watchdog
 * and a per-case timeout, and turns what happens into a report. A worker that dies (native abort,
 * V8 out of memory, killed by the watchdog) costs one case: the parent regenerates that case's
 * bytes from its index, records it, saves a reproducer, and restarts the worker after it.
 *
 * Used by `npm run fuzz` (scripts/fuzz.ts: 10,000+ cases per target) and by the suite
 * (test/fuzz/parsers.test.ts: a few hundred per target, and every saved reproducer).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { watchChild } from "../helpers/capped-run.js";
import { projectRoot } from "../helpers/fixtures.js";
import type { CaseReport, WorkerOutcome } from "./case.js";
import { minimiseBytes } from "./minimise.js";
import { applyCase, drawCase } from "./mutate.js";
import { fuzzTarget, type FuzzTarget } from "./targets.js";

/** The compiled worker (tsconfig.bench.json compiles test/fuzz into .bench-build). */
export const WORKER_JS = path.join(projectRoot, ".bench-build/test/fuzz/worker.js");

export type Outcome = WorkerOutcome | "abort" | "hang" | "memory";
export const BAD_OUTCOMES: readonly Outcome[] = ["generic", "abort", "hang", "memory"];

export interface Caps {
  /** A case running longer than this is a hang: the worker is killed. */
  caseTimeoutMs: number;
  /** Resident memory beyond this is a blowup: the worker is killed. */
  maxRssMb: number;
  /** V8 heap cap of the worker (--max-old-space-size). */
  maxOldSpaceMb: number;
}

export const DEFAULT_CAPS: Caps = { caseTimeoutMs: 10_000, maxRssMb: 1024, maxOldSpaceMb: 512 };

export interface CampaignOptions extends Caps {
  target: string;
  cases: number;
  seed: number;
  /** A case slower than this (but under the timeout) is listed as slow. */
  slowMs: number;
  /** The worker's own folder for files a case needs on disk. */
  scratch: string;
  /** Where reproducers go (a subfolder per target); none saved when absent. */
  reproducerDir?: string;
  /** Shrink reproducers before saving them (delta debugging). */
  minimise?: boolean;
  onProgress?: (done: number) => void;
}

export interface Failure {
  case: number;
  outcome: Outcome;
  detail: string;
  bytes: number;
  reproducer?: string;
}

export interface TargetReport {
  target: string;
  parser: string;
  seed: number;
  cases: number;
  seconds: number;
  outcomes: Record<Outcome, number>;
  /** DiffevalError codes of the handled cases, with counts. */
  codes: Record<string, number>;
  slow: number;
  slowest: { case: number; ms: number }[];
  failures: Failure[];
  /**
   * Workers that died in a case which, run alone in a fresh worker, ended otherwise (`alone`):
   * not counted as bad, listed so that a pattern (a leak across cases) stays visible.
   */
  unconfirmed: { case: number; outcome: Outcome; detail: string; alone: Outcome }[];
  workerRestarts: number;
  peakRssMb: number;
}

interface WorkerRun {
  reports: CaseReport[];
  /** The case a dead worker was running (started, never reported), if it died in one. */
  diedIn?: number;
  death?: { outcome: Exclude<Outcome, WorkerOutcome>; detail: string };
  peakRssMb: number;
}

/** Runs a worker with `args` under the caps, collecting its case reports until it ends. */
export function runWorker(args: readonly string[], caps: Caps, onCase?: (r: CaseReport) => void): Promise<WorkerRun> {
  const child = spawn(process.execPath, [`--max-old-space-size=${caps.maxOldSpaceMb}`, WORKER_JS, ...args], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const reports: CaseReport[] = [];
  let started: number | undefined;
  let caseStartedAt = Date.now();
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString("utf8")).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (line) => {
    const msg = JSON.parse(line) as { start?: number } & Partial<CaseReport>;
    if (msg.start !== undefined) {
      started = msg.start;
      caseStartedAt = Date.now();
    } else if (msg.case !== undefined) {
      reports.push(msg as CaseReport);
      onCase?.(msg as CaseReport);
      if (msg.case === started) started = undefined;
    }
  });
  // The time limit is per case: a worker runs thousands.
  const watch = watchChild(child, caps.maxRssMb, () => started !== undefined && Date.now() - caseStartedAt > caps.caseTimeoutMs);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      watch.stop();
      const run: WorkerRun = { reports, peakRssMb: watch.peakRssMb() };
      if (code !== 0 || started !== undefined) {
        run.diedIn = started;
        const killedFor = watch.killedFor();
        run.death = deathOf(killedFor === "timeout" ? "hang" : killedFor, code, signal, stderr, caps);
      }
      resolve(run);
    });
  });
}

function deathOf(killedFor: "hang" | "memory" | undefined, code: number | null, signal: string | null, stderr: string, caps: Caps): NonNullable<WorkerRun["death"]> {
  if (killedFor === "hang") return { outcome: "hang", detail: `no answer within ${caps.caseTimeoutMs} ms` };
  if (killedFor === "memory") return { outcome: "memory", detail: `resident memory over ${caps.maxRssMb} MB` };
  const tail = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 400);
  if (/heap out of memory|Allocation failed|Invalid array buffer length/i.test(stderr)) return { outcome: "memory", detail: `V8 out of memory: ${tail}` };
  return { outcome: "abort", detail: `worker ended (exit ${code}, signal ${signal}): ${tail}` };
}

/** Runs `opts.cases` cases of one target; never throws for what the cases do. */
export async function runCampaign(opts: CampaignOptions): Promise<TargetReport> {
  const target = fuzzTarget(opts.target);
  const seen = new Set<string>();
  const report = emptyReport(opts, target.parser);
  const started = Date.now();
  const all: CaseReport[] = [];
  let from = 0;
  for (let runs = 0; from < opts.cases; runs++) {
    if (runs > 0) report.workerRestarts++;
    const args = ["run", opts.target, String(opts.seed), String(from), String(opts.cases), opts.scratch];
    const run = await runWorker(args, opts, (r) => opts.onProgress?.(r.case + 1));
    all.push(...run.reports);
    report.peakRssMb = Math.max(report.peakRssMb, run.peakRssMb);
    for (const r of run.reports) if (r.outcome === "generic") report.failures.push(await failureOf(opts, target, seen, r.case, "generic", r.error ?? ""));
    if (!run.death) break;
    const i = run.diedIn ?? Math.max(from, ...run.reports.map((r) => r.case + 1));
    // A worker runs thousands of cases: memory left by earlier ones, or a load spike on a busy
    // machine, can end it in an innocent case. A death counts once the case alone, in a fresh
    // worker, dies the same way.
    const alone = (await replayOutcomes(opts.target, [caseBytes(target, opts.seed, i)], opts, path.join(opts.scratch, "confirm")))[0];
    if (alone.outcome === run.death.outcome) {
      report.failures.push(await failureOf(opts, target, seen, i, alone.outcome, alone.detail));
      report.outcomes[alone.outcome]++;
    } else {
      report.unconfirmed.push({ case: i, outcome: run.death.outcome, detail: run.death.detail, alone: alone.outcome });
      report.outcomes[alone.outcome]++;
      if (alone.outcome === "generic") report.failures.push(await failureOf(opts, target, seen, i, "generic", alone.detail));
    }
    from = i + 1;
  }
  for (const r of all) {
    report.outcomes[r.outcome]++;
    if (r.code) report.codes[r.code] = (report.codes[r.code] ?? 0) + 1;
    if (r.ms > opts.slowMs) report.slow++;
  }
  report.slowest = all
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5)
    .map((r) => ({ case: r.case, ms: Math.round(r.ms) }));
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

function emptyReport(opts: CampaignOptions, parser: string): TargetReport {
  return {
    target: opts.target,
    parser,
    seed: opts.seed,
    cases: opts.cases,
    seconds: 0,
    outcomes: { ok: 0, handled: 0, generic: 0, abort: 0, hang: 0, memory: 0 },
    codes: {},
    slow: 0,
    slowest: [],
    failures: [],
    unconfirmed: [],
    workerRestarts: 0,
    peakRssMb: 0,
  };
}

/**
 * A bad case for the report; the first of each kind (outcome, error class, message shape and
 * place) also gets a reproducer, shrunk when asked: a thousand cases of one bug need one file.
 */
async function failureOf(opts: CampaignOptions, target: FuzzTarget, seen: Set<string>, i: number, outcome: Outcome, detail: string): Promise<Failure> {
  const bytes = caseBytes(target, opts.seed, i);
  const failure: Failure = { case: i, outcome, detail, bytes: bytes.length };
  const kind = `${outcome} ${detail.replace(/\d+/g, "N")}`;
  if (opts.reproducerDir && !seen.has(kind)) {
    seen.add(kind);
    const kept = opts.minimise ? await minimised(opts, bytes, outcome, detail) : bytes;
    failure.reproducer = saveReproducer(opts.reproducerDir, opts.target, outcome, kept);
    failure.bytes = kept.length;
  }
  return failure;
}

function caseBytes(target: FuzzTarget, seed: number, i: number): Uint8Array {
  const seeds = target.seeds();
  return applyCase(seeds, drawCase(target.format, seeds.length, seed, i));
}

/** `<dir>/<target>/<outcome>-<sha256 prefix>.bin` (the same bytes always land in one file). */
export function saveReproducer(dir: string, target: string, outcome: Outcome, bytes: Uint8Array): string {
  const folder = path.join(dir, target);
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, `${outcome}-${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}.bin`);
  writeFileSync(file, bytes);
  return file;
}

/** Shrinks a failing case: in one worker for a generic error; by replays for a dying one. */
async function minimised(opts: CampaignOptions, bytes: Uint8Array, outcome: Outcome, detail: string): Promise<Uint8Array> {
  mkdirSync(opts.scratch, { recursive: true });
  const input = path.join(opts.scratch, "minimise-in.bin");
  const output = path.join(opts.scratch, "minimise-out.bin");
  writeFileSync(input, bytes);
  rmSync(output, { force: true });
  if (outcome === "generic") {
    const signature = `generic:${detail.split(":")[0]}`;
    await runWorker(["minimise", opts.target, path.join(opts.scratch, "min"), input, output, signature], { ...opts, caseTimeoutMs: 120_000 });
    return existsSync(output) ? new Uint8Array(readFileSync(output)) : bytes;
  }
  // Each trial costs a worker start (and, for a hang, the timeout): a small budget.
  const trials = outcome === "hang" ? 6 : 24;
  return minimiseBytes(bytes, async (candidate) => (await replayOutcomes(opts.target, [candidate], opts, opts.scratch))[0].outcome === outcome, trials);
}

/** Each input as one case in a worker under the caps; a death costs only the input it hit. */
export async function replayOutcomes(target: string, inputs: readonly (Uint8Array | string)[], caps: Caps, scratch: string): Promise<{ outcome: Outcome; detail: string }[]> {
  mkdirSync(scratch, { recursive: true });
  const files = inputs.map((x, i) => {
    if (typeof x === "string") return x;
    const f = path.join(scratch, `replay-${i}.bin`);
    writeFileSync(f, x);
    return f;
  });
  const out: { outcome: Outcome; detail: string }[] = [];
  while (out.length < files.length) {
    const offset = out.length;
    const run = await runWorker(["replay", target, path.join(scratch, "replay"), ...files.slice(offset)], caps);
    for (const r of run.reports) out[offset + r.case] = { outcome: r.outcome, detail: r.error ?? r.code ?? "" };
    if (!run.death) break;
    const i = offset + (run.diedIn ?? run.reports.length);
    out[i] = { outcome: run.death.outcome, detail: run.death.detail };
    out.length = i + 1;
  }
  return out;
}
