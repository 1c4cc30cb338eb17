/**
 * Runs a Node child process under a memory and time cap, for tests that feed untrusted bytes to
 * the real CLI (or a parser) and must prove it ends quickly, in bounded memory, with a named error.
 *
 * Two caps, because V8 only limits its own heap: `--max-old-space-size` bounds JS objects, and an
 * RSS watchdog (VmRSS from /proc, polled) bounds everything else (ArrayBuffers, native
 * allocations), killing the child with SIGKILL the moment it passes `maxRssMb`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "./fixtures.js";

export interface CappedRunOptions {
  /** Heap cap passed to V8 (MB). Default 256. */
  maxOldSpaceMb?: number;
  /** Resident-memory cap (MB): the watchdog kills the child beyond it. Default 768. */
  maxRssMb?: number;
  /** Wall-clock cap (ms). Default 20,000. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface CappedRunResult {
  /** Exit code, or null when a signal ended the child. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Largest VmRSS seen by the watchdog (MB). */
  peakRssMb: number;
  /** Why the harness killed the child, if it did. */
  killedFor?: "timeout" | "memory";
}

/** The built CLI (dist/, built by the test global setup or `npm run build`). */
export const CLI_BIN = path.join(projectRoot, "dist/cli/bin.js");

/** `node <nodeArgs...> <script> <args...>` under the caps. */
export function runCapped(script: string, args: readonly string[], opts: CappedRunOptions = {}): Promise<CappedRunResult> {
  const maxOld = opts.maxOldSpaceMb ?? 256;
  const maxRss = opts.maxRssMb ?? 768;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const started = Date.now();
  const child = spawn(process.execPath, [`--max-old-space-size=${maxOld}`, script, ...args], {
    cwd: opts.cwd ?? projectRoot,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const watch = watchChild(child, maxRss, () => Date.now() - started > timeoutMs);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      watch.stop();
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - started,
        peakRssMb: watch.peakRssMb(),
        killedFor: watch.killedFor(),
      });
    });
  });
}

export interface ChildWatch {
  stop(): void;
  peakRssMb(): number;
  /** Why the watchdog killed the child, if it did: over `maxRssMb`, or `tooLong()` said so. */
  killedFor(): "timeout" | "memory" | undefined;
}

/** Polls a child's VmRSS every 20 ms and SIGKILLs it beyond `maxRssMb` or once `tooLong()`. */
export function watchChild(child: ChildProcess, maxRssMb: number, tooLong: () => boolean): ChildWatch {
  let peak = 0;
  let killedFor: "timeout" | "memory" | undefined;
  const kill = (why: "timeout" | "memory") => {
    if (killedFor) return;
    killedFor = why;
    child.kill("SIGKILL");
  };
  const timer = setInterval(() => {
    const rss = child.pid === undefined ? 0 : rssMb(child.pid);
    peak = Math.max(peak, rss);
    if (rss > maxRssMb) kill("memory");
    else if (tooLong()) kill("timeout");
  }, 20);
  return { stop: () => clearInterval(timer), peakRssMb: () => peak, killedFor: () => killedFor };
}

/** Runs the built `diffeval` CLI with `args` under the caps. */
export function runCliCapped(args: readonly string[], opts: CappedRunOptions = {}): Promise<CappedRunResult> {
  return runCapped(CLI_BIN, args, opts);
}

/** VmRSS of a live process in MB (0 once it is gone, or where /proc is absent). */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The one line a handled input error prints: `error[CODE]: ...`; undefined when absent. */
export function errorCodeOf(stderr: string): string | undefined {
  return /^error\[([A-Z0-9_]+)\]/m.exec(stderr)?.[1];
}
