/** Results files for the gate tests, shaped like `fid --json`, `metrics --json` and a sweep's results.json. */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runGate, type GateOptions } from "../../src/cli/gate.js";

export const WEIGHTS = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";

const provenance = (over: Record<string, unknown> = {}) => ({
  protocol: "clean",
  weights_sha256: WEIGHTS,
  n_real: 1000,
  n_fake: 1000,
  real: "./real",
  fake: "./fake",
  seconds: 12.5,
  version: "0.1.0",
  ...over,
});

export function fidResult(fid: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { fid, ...provenance(over), route: "gram", skipped_real: 0, skipped_fake: 0 };
}

export function metricsResult(metrics: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...metrics, ...provenance(over) };
}

export function sweepResult(cells: { params: Record<string, unknown>; metrics: Record<string, unknown> }[], over: Record<string, unknown> = {}) {
  return {
    schema: "diffeval-sweep-results/1",
    protocol: "clean",
    weights_sha256: WEIGHTS,
    version: "0.1.0",
    real: "./real",
    n_real: 1000,
    cells: cells.map((c, i) => ({ ...c, fake: `runs/cell-${i}`, n_fake: 500, seconds: 3 })),
    ...over,
  };
}

export function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "diffeval-gate-"));
}

/** Writes `json` (or raw text) to dir/name and returns the path. */
export function writeInput(dir: string, name: string, json: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof json === "string" ? json : JSON.stringify(json));
  return file;
}

export interface GateRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** runGate with its output captured. */
export async function gate(opts: GateOptions): Promise<GateRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runGate({ ...opts, out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, stdout: out.join(""), stderr: err.join("") };
}
