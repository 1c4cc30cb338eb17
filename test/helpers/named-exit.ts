/** The assertion every untrusted-input CLI test makes about how the real CLI ended. */
import { expect } from "vitest";
import path from "node:path";
import { errorCodeOf, runCliCapped, type CappedRunResult } from "./capped-run.js";

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

/**
 * `diffeval fid --real FILE --fake OTHER` (OTHER a stats file, so no model loads) under a 400 MB
 * cap ends as a named input error with `code`, naming the file.
 */
export async function expectFidRefusesFile(file: string, other: string, code: string): Promise<void> {
  const r = await runCliCapped(["fid", "--real", file, "--fake", other], { maxRssMb: 400, timeoutMs: 15_000 });
  expectNamedExit(r, code, { maxMs: 15_000, maxRssMb: 400 });
  expect(r.stderr).toContain(path.basename(file));
}
