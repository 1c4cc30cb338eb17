/** The assertion every untrusted-input CLI test makes about how the real CLI ended. */
import { expect } from "vitest";
import { errorCodeOf, type CappedRunResult } from "./capped-run.js";

/**
 * The CLI ended as a handled input error: exit 2 and `error[code]`, not killed by the watchdog,
 * within `maxMs` and `maxRssMb` (defaults: 10 s, 768 MB).
 */
export function expectNamedExit(r: CappedRunResult, code: string, limits: { maxMs?: number; maxRssMb?: number } = {}): void {
  expect(r.killedFor, `killed after ${r.ms} ms at ${r.peakRssMb} MB\n${r.stderr}`).toBeUndefined();
  expect(errorCodeOf(r.stderr), r.stderr).toBe(code);
  expect(r.code, r.stderr).toBe(2);
  expect(r.ms).toBeLessThan(limits.maxMs ?? 10_000);
  expect(r.peakRssMb).toBeLessThan(limits.maxRssMb ?? 768);
}
