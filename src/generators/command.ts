/**
 * The `command` generator: any program that can write one image per invocation (a diffusers
 * script, a CLI around a local model). Each request fills an argument template and runs it
 * WITHOUT a shell (spawn with an argv array), so prompts with spaces, quotes or `$(...)` reach
 * the program verbatim and are never interpreted.
 *
 * Placeholders, substituted inside every argument (also inside larger strings such as
 * `--seed={seed}`): {prompt} {negative} {cfg} {seed} {steps} {width} {height} {out}, and
 * {extra.NAME} for any extra axis of the request; with a control image (a sweep's `control`),
 * {control} (its absolute path), {control_weight}, {control_start} and {control_end}. {out} is a fresh temporary file the command
 * must write its image to; the format (png/jpg/webp) is read from the bytes.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import type { GeneratedImage, GenerationRequest, Generator } from "./generator.js";
import { imageFormatOf } from "./image-format.js";

export interface CommandGeneratorOptions {
  /** Program and arguments, e.g. ["python", "gen.py", "--prompt", "{prompt}", "--out", "{out}"]. */
  argv: string[];
  /** Per-image limit; on expiry the whole process group is killed. Default 10 minutes. */
  timeoutMs?: number;
  cwd?: string;
  /** Added to (not replacing) the parent's environment. */
  env?: Record<string, string>;
  /** Parallel invocations; 1 by default (a local model usually owns the GPU). */
  concurrency?: number;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** A grace period between SIGTERM and SIGKILL, so a program can clean up. */
const KILL_GRACE_MS = 1_000;
/** How much of stderr/stdout an error message quotes. */
const TAIL_CHARS = 2_000;
/** `{name}` tokens in an argument; braces around anything else (JSON, say) stay literal. */
const PLACEHOLDER = /\{([A-Za-z_][\w.-]*)\}/g;
const NAMED = new Set(["prompt", "negative", "cfg", "seed", "steps", "width", "height", "out"]);
/** Placeholders that exist only when the request carries a control image. */
const CONTROL_NAMED = new Set(["control", "control_weight", "control_start", "control_end"]);

export function createCommandGenerator(options: CommandGeneratorOptions): Generator {
  const argv = validArgv(options.argv);
  const timeoutMs = positiveOption(options.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
  const concurrency = positiveOption(options.concurrency, 1, "concurrency");
  return {
    name: "command",
    concurrency,
    generate: (req, signal) => runOnce(argv, req, { ...options, timeoutMs }, signal),
  };
}

/** The template, checked once: non-empty, strings only, known placeholders, and an {out}. */
function validArgv(argv: unknown): string[] {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string")) {
    throw new DiffevalError("E_GENERATOR_SPEC", "command generator: `argv` must be a non-empty array of strings (program first)");
  }
  for (const arg of argv) {
    for (const [, name] of arg.matchAll(PLACEHOLDER)) {
      if (!NAMED.has(name) && !CONTROL_NAMED.has(name) && !name.startsWith("extra.")) {
        throw new DiffevalError(
          "E_GENERATOR_SPEC",
          `command generator: unknown placeholder {${name}} in argv; use {prompt} {negative} {cfg} {seed} {steps} {width} {height} {out}, {extra.NAME}, or with a control image {control} {control_weight} {control_start} {control_end}`,
        );
      }
    }
  }
  if (!argv.some((a) => a.includes("{out}"))) {
    throw new DiffevalError("E_GENERATOR_SPEC", "command generator: `argv` must contain {out}, the file the command writes the image to");
  }
  return argv;
}

function positiveOption(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new DiffevalError("E_GENERATOR_SPEC", `command generator: \`${field}\` must be a positive number, got ${value}`);
  }
  return value;
}

/** Every placeholder of `arg` replaced by its value for this request. */
export function substituteArg(arg: string, req: GenerationRequest, out: string): string {
  return arg.replace(PLACEHOLDER, (_token, name: string) => placeholderValue(name, req, out));
}

function placeholderValue(name: string, req: GenerationRequest, out: string): string {
  if (name.startsWith("extra.")) {
    const key = name.slice("extra.".length);
    const value = req.extra[key];
    if (value === undefined) {
      throw new DiffevalError("E_GENERATOR_REQUEST", `command generator: argv uses {extra.${key}} but the request has no extra "${key}"`);
    }
    return String(value);
  }
  if (CONTROL_NAMED.has(name)) return controlValue(name, req);
  const values: Record<string, string | number> = {
    prompt: req.prompt,
    negative: req.negativePrompt,
    cfg: req.cfgScale,
    seed: req.seed,
    steps: req.steps,
    width: req.width,
    height: req.height,
    out,
  };
  return String(values[name]);
}

function controlValue(name: string, req: GenerationRequest): string {
  const c = req.control;
  if (!c) throw new DiffevalError("E_GENERATOR_REQUEST", `command generator: argv uses {${name}} but the request has no control image (add a "control" field to the sweep spec)`);
  return String({ control: c.image, control_weight: c.weight, control_start: c.start, control_end: c.end }[name]);
}

/** A control image the argv never passes on would be ignored without a word: refused instead. */
function assertControlPassed(template: string[], req: GenerationRequest): void {
  if (req.control && !template.some((a) => a.includes("{control}"))) {
    throw new DiffevalError("E_GENERATOR_REQUEST", "command generator: the request has a control image but argv has no {control} placeholder to pass it to the command");
  }
}

async function runOnce(
  template: string[],
  req: GenerationRequest,
  options: CommandGeneratorOptions & { timeoutMs: number },
  signal?: AbortSignal,
): Promise<GeneratedImage> {
  signal?.throwIfAborted();
  assertControlPassed(template, req);
  const dir = await mkdtemp(path.join(os.tmpdir(), "diffeval-cmd-"));
  try {
    // The name ends in .png because many tools pick the format from the extension; the
    // real format is read from the bytes afterwards.
    const out = path.join(dir, "image.png");
    const argv = template.map((arg) => substituteArg(arg, req, out));
    await runProcess(argv, options, signal);
    const bytes = await outputImage(out, argv);
    return {
      bytes,
      format: imageFormatOf(bytes)!,
      used: { ...requestEcho(req), argv },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function requestEcho(req: GenerationRequest): GenerationRequest {
  return { ...req, extra: { ...req.extra } };
}

/** The image the command wrote to `out`; a clear error when it wrote nothing usable. */
async function outputImage(out: string, argv: string[]): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(out));
  } catch {
    throw new DiffevalError("E_GENERATOR", `command exited 0 but wrote no image to {out} (${out}); command: ${quoteArgv(argv)}`);
  }
  if (imageFormatOf(bytes) === undefined) {
    throw new DiffevalError(
      "E_GENERATOR",
      `command wrote ${bytes.length} bytes to {out} that are not PNG, JPEG or WebP; command: ${quoteArgv(argv)}`,
    );
  }
  return bytes;
}

/**
 * Runs argv without a shell and resolves when it exits 0. The child leads its own process group
 * (detached) so that a timeout or an abort kills everything it started, not just the top process.
 */
function runProcess(argv: string[], options: CommandGeneratorOptions & { timeoutMs: number }, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: process.platform !== "win32",
      shell: false,
    });
    const stderr = tailBuffer();
    const stdout = tailBuffer();
    child.stderr.on("data", stderr.push);
    child.stdout.on("data", stdout.push);

    let stopped: Error | undefined;
    const stop = (why: Error) => {
      if (stopped) return;
      stopped = why;
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS).unref();
    };
    const timer = setTimeout(
      () => stop(new DiffevalError("E_GENERATOR", `command timed out after ${options.timeoutMs} ms and was killed: ${quoteArgv(argv)}`)),
      options.timeoutMs,
    );
    const onAbort = () => stop(abortReason(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    const finish = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };

    child.on("error", (err: NodeJS.ErrnoException) => {
      finish();
      const what = err.code === "ENOENT" ? `command not found: ${argv[0]}` : `command could not start: ${err.message}`;
      reject(new DiffevalError("E_GENERATOR", `${what} (cwd ${options.cwd ?? process.cwd()})`, { cause: err }));
    });
    child.on("close", (code, sig) => {
      finish();
      if (stopped) return reject(stopped);
      if (code === 0) return resolve();
      const status = code === null ? `was killed by ${sig}` : `exited with code ${code}`;
      const tail = stderr.text() || stdout.text();
      reject(
        new DiffevalError(
          "E_GENERATOR",
          `command ${status}: ${quoteArgv(argv)}\n${tail ? `stderr (last ${TAIL_CHARS} chars):\n${tail}` : "(no output on stderr)"}`,
        ),
      );
    });
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError");
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    // A negative pid addresses the process group (POSIX kill(2)); the child leads one (detached).
    process.kill(process.platform === "win32" ? pid : -pid, sig);
  } catch {
    // Already gone.
  }
}

/** Keeps only the last TAIL_CHARS characters of a stream. */
function tailBuffer(): { push: (chunk: Buffer) => void; text: () => string } {
  let text = "";
  return {
    push: (chunk) => {
      text = (text + chunk.toString("utf8")).slice(-TAIL_CHARS);
    },
    text: () => text.trimEnd(),
  };
}

/** argv as a reader would type it (for messages only; it is never passed to a shell). */
function quoteArgv(argv: string[]): string {
  return argv.map((a) => (/^[\w./:=@%+-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}
