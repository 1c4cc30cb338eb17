/**
 * The fault tests' child processes: the built CLI (dist/cli/bin.js, built by the test global
 * setup) with its own DIFFEVAL_CACHE, run to the end or killed with SIGKILL at a chosen moment,
 * and the small checks they share (stray temp files, the cache's entries).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { checkEntry } from "../../src/features/feature-cache.js";
import { readStatsNpz, type StatsFile } from "../../src/io/npz.js";
import { CLI_BIN } from "../helpers/capped-run.js";
import { fixture, projectRoot } from "../helpers/fixtures.js";

export const realImages = fixture("images", "real");
export const fakeImages = fixture("images", "fake");

export interface ChildResult {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliChild {
  proc: ChildProcess;
  done: Promise<ChildResult>;
}

/**
 * `node dist/cli/bin.js ARGS` with `env` over a copy of this process's environment; `prefix` is a
 * command that execs the rest (e.g. `bash -c 'ulimit -f N && exec "$@"' _`).
 */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv, prefix: readonly string[] = []): CliChild {
  const argv = [...prefix, process.execPath, CLI_BIN, ...args];
  const proc = spawn(argv[0], argv.slice(1), {
    cwd: projectRoot,
    env: { ...process.env, DIFFEVAL_TEST_CRASH_AT: undefined, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  proc.stdout!.on("data", (b: Buffer) => out.push(b));
  proc.stderr!.on("data", (b: Buffer) => err.push(b));
  const done = new Promise<ChildResult>((resolve, reject) => {
    proc.on("error", reject);
    proc.on("close", (code, signal) =>
      resolve({ pid: proc.pid!, code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }),
    );
  });
  return { proc, done };
}

export function runCliChild(args: readonly string[], env: NodeJS.ProcessEnv, prefix: readonly string[] = []): Promise<ChildResult> {
  return spawnCli(args, env, prefix).done;
}

/**
 * SIGKILLs the child the first time `ready()` holds, polling every millisecond (a write of a
 * few MB lasts tens of them); resolves with how the child ended.
 */
export async function killWhen(child: CliChild, ready: () => boolean): Promise<ChildResult & { killed: boolean }> {
  let finished = false;
  let killed = false;
  void child.done.then(() => (finished = true));
  while (!finished) {
    if (ready()) {
      killed = child.proc.kill("SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return { ...(await child.done), killed };
}

/** The hidden temp files io/atomic.ts leaves when killed: `.<name>.<pid>.<hex>.tmp`. */
export function strayTemps(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/.test(f)) : [];
}

/** Every file under `dir`, recursively (relative paths). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** The feature-cache entries (`<sha>.dfc`) under a cache root, as absolute paths. */
export function cacheEntries(cacheRoot: string): string[] {
  const features = path.join(cacheRoot, "features");
  return filesUnder(features)
    .filter((f) => f.endsWith(".dfc"))
    .map((f) => path.join(features, f));
}

/** checkEntry's verdict on an entry file (the image sha is its name; Inception: pool3 + logits). */
export function entryVerdict(file: string, values = 2048 + 1008): string {
  return checkEntry(readFileSync(file), path.basename(file, ".dfc"), values);
}

export function readStats(file: string): StatsFile {
  return readStatsNpz(readFileSync(file), file);
}

/** Images per source in these tests: enough for a covariance, few enough for a child to run in about a second. */
export const SUBSET = 8;

/** Flags that run an extracting command on the CPU, on the main thread, with the given weights, on SUBSET images (seed 0). */
export function cpu(weights: string): string[] {
  return ["--weights", weights, "--device", "cpu", "--threads", "0", "--limit", String(SUBSET)];
}
