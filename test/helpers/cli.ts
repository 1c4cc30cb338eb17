import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { main } from "../../src/cli/main.js";
import { fixtureStateDictPath } from "./model.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the diffeval CLI in-process, capturing what it writes. */
export async function runCli(args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const origOut = process.stdout.write.bind(process.stdout);
  const origErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    process.stdout.write = origOut;
    process.stderr.write = origErr;
  }
}

/**
 * A CLI test file's setting: the fixture weights (gunzipped once), a temp folder, and a feature
 * cache of its own in it (conversions and features computed once, reused by later commands).
 */
export async function setUpCliTest(prefix: string): Promise<{ weights: string; tmp: string }> {
  const weights = await fixtureStateDictPath(false);
  const tmp = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.env.DIFFEVAL_CACHE = path.join(tmp, "cache");
  return { weights, tmp };
}

/** Flags that make an extracting command run on the CPU with the given weights, on this thread. */
export function cpuFlags(weights: string): string[] {
  return ["--weights", weights, "--device", "cpu", "--threads", "0"];
}
