/** One fuzz case run in-process and classified: the part of the worker the parent shares. */
import { isDiffevalError } from "../../src/errors.js";
import type { FuzzTarget } from "./targets.js";

export type WorkerOutcome = "ok" | "handled" | "generic";

export interface CaseReport {
  case: number;
  outcome: WorkerOutcome;
  ms: number;
  /** The DiffevalError code (handled), or the error's class and message (generic). */
  code?: string;
  error?: string;
}

/** Runs one case and classifies it. */
export async function runCase(target: FuzzTarget, bytes: Uint8Array, scratch: string): Promise<Omit<CaseReport, "case">> {
  const started = performance.now();
  try {
    await target.run(bytes, scratch);
    return { outcome: "ok", ms: performance.now() - started };
  } catch (e) {
    const ms = performance.now() - started;
    if (isDiffevalError(e) && e.code !== "E_INTERNAL" && e.message.length > 0) return { outcome: "handled", ms, code: e.code };
    return { outcome: "generic", ms, error: describeError(e) };
  }
}

/** `Class: message` plus the first frame inside diffeval, for the report. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return `non-Error thrown: ${String(e).slice(0, 200)}`;
  const frame = (e.stack ?? "").split("\n").find((l) => l.includes("/src/"))?.trim() ?? "";
  const code = isDiffevalError(e) ? `[${e.code}] ` : "";
  return `${e.constructor.name}: ${code}${e.message.slice(0, 300)} ${frame}`.trim();
}

/** What a minimised reproducer must keep: the outcome, and for a generic error its class. */
export function signatureOf(r: Omit<CaseReport, "case">): string {
  return r.outcome === "generic" ? `generic:${(r.error ?? "").split(":")[0]}` : r.outcome;
}

