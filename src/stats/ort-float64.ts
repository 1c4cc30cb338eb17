/**
 * Synchronous float64 graphs (GEMMs) on onnxruntime's CPU provider, for the O(d^3) parts of
 * the Gaussian fit and the Frechet distance.
 *
 * Why onnxruntime: its CPU MatMul/Gemm for double goes to MLAS's DGEMM (AVX2/AVX-512 kernels).
 * Measured on the 2-core dev machine (Xeon, AVX-512): ~48 GFLOP/s on one thread, ~75-88 GFLOP/s
 * on two, against ~3.7 GFLOP/s for the best register-blocked JavaScript kernel (gemm.ts). float32
 * would be faster still but loses the precision the sums need, so everything here is float64.
 *
 * Why a worker: onnxruntime-node's public `run` is asynchronous, and the stats API is
 * synchronous (plain functions over plain data, like np.cov). The graphs run in a worker thread
 * that owns the sessions; the calling thread posts a batch of operations and blocks on
 * Atomics.wait until the worker is done. Only public APIs are used (worker_threads, Atomics,
 * InferenceSession). Node 20 cannot run TypeScript in a worker and the build emits no separate
 * worker file, so the worker is a short CommonJS source string.
 *
 * Data lives in worker-side "registers" (named, reusable Float64Arrays). onnxruntime refuses
 * tensors over SharedArrayBuffer memory, so values cross through one shared "mailbox": `put`
 * copies main-thread data into a register, `get` copies a register (or a block of it) back.
 * Multi-step algorithms keep their big matrices in registers between graph runs, so only
 * panels travel. Registers and the mailbox are reused: on this VM a first touch of fresh memory
 * costs ~2.5 us per 4 KiB page (a 32 MiB array: ~20 ms), more than copying it (~8 ms).
 *
 * Sessions run with intra-op spinning off: with it on (onnxruntime's default), the pool threads
 * keep spinning after each run and take the cores from the JavaScript work that alternates with
 * the graphs; turning it off made the reduction to band form ~1.7x faster here.
 *
 * When the worker cannot start (no onnxruntime, a sandbox without threads) or DIFFEVAL_LINALG=js
 * is set, `ortAvailable()` is false and callers use the JavaScript kernels: slower, same numbers
 * to rounding.
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { DiffevalError } from "../errors.js";
import { matmulGraph } from "./float64-graphs.js";
import type { OrtGraph } from "./ort-graph.js";

export type { OrtGraph } from "./ort-graph.js";

/** A matrix (row-major, of the given dims) stored in a register from `offset` on (default 0). */
export type RegisterRef = [register: string, dims: number[], offset?: number];

/** A rectangular block of a register seen as a row-major matrix with rows of `ld` values. */
export interface Block {
  ld: number;
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

export type OrtOp =
  /** register[offset ..] = data (the register grows as needed, keeping its other values). */
  | { op: "put"; register: string; data: Float64Array; offset?: number }
  /** out = the register's values (or a block of them). */
  | { op: "get"; register: string; out: Float64Array; block?: Block }
  | { op: "run"; graph: OrtGraph; feeds: Record<string, RegisterRef>; outputs: Record<string, RegisterRef> }
  /**
   * out (rows x cols, compact) = a block of `src` [minus a block of `minus`], in one pass:
   * onnxruntime's Slice and Gemm-with-C copies run at ~2-3 GB/s here, this loop ~3x faster.
   */
  | { op: "block"; out: string; src: BlockRef; minus?: BlockRef; rows: number; cols: number }
  /** Makes a register hold at least `length` values (new ones zero). */
  | { op: "alloc"; register: string; length: number }
  | { op: "free"; registers: string[] };

/** The block of a register seen as a row-major matrix with rows of `ld` values, from (r0, c0). */
export interface BlockRef {
  register: string;
  ld: number;
  r0: number;
  c0: number;
}

const STARTING = 0;
const IDLE = 1;
const BUSY = 2;
const FAILED = 3;

/** Per-batch limit: a d=4096 GEMM takes ~2 s, so only a dead worker gets near this. */
const CALL_TIMEOUT_MS = 600_000;
const START_TIMEOUT_MS = 60_000;

const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const control = new Int32Array(workerData.control);
const message = new Uint8Array(workerData.message);
const sessions = new Map();
const registers = new Map();
let mailbox = new Float64Array(0);
let ort;
function signal(state, text) {
  if (text !== undefined) {
    const bytes = Buffer.from(String(text)).subarray(0, message.length);
    message.set(bytes);
    Atomics.store(control, 1, bytes.length);
  }
  Atomics.store(control, 0, state);
  Atomics.notify(control, 0);
}
function register(name, length) {
  let r = registers.get(name);
  if (r === undefined || r.length < length) {
    const grown = new Float64Array(Math.max(length, r ? Math.ceil(r.length * 1.25) : 0));
    if (r !== undefined) grown.set(r);
    r = grown;
    registers.set(name, r);
  }
  return r;
}
function view(name, dims, offset) {
  const length = dims.reduce((a, b) => a * b, 1);
  const r = registers.get(name);
  if (r === undefined || r.length < offset + length) throw new Error("register " + name + " holds no " + dims.join("x") + " matrix at " + offset);
  return r.subarray(offset, offset + length);
}
function block(op) {
  const { rows, cols } = op;
  const src = registers.get(op.src.register);
  const out = register(op.out, rows * cols);
  if (src === out) throw new Error("block: register " + op.out + " is both source and output");
  if (op.minus === undefined) {
    for (let i = 0; i < rows; i++) {
      const s = (op.src.r0 + i) * op.src.ld + op.src.c0;
      out.set(src.subarray(s, s + cols), i * cols);
    }
    return;
  }
  const minus = registers.get(op.minus.register);
  if (minus === out) throw new Error("block: register " + op.out + " is both operand and output");
  for (let i = 0; i < rows; i++) {
    const s = (op.src.r0 + i) * op.src.ld + op.src.c0;
    const p = (op.minus.r0 + i) * op.minus.ld + op.minus.c0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[o + j] = src[s + j] - minus[p + j];
  }
}
async function run(op) {
  let session = sessions.get(op.key);
  if (session === undefined) {
    session = await ort.InferenceSession.create(op.model, {
      intraOpNumThreads: workerData.threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
    sessions.set(op.key, session);
  }
  const feeds = {};
  const inputs = new Set();
  for (const [name, reg, dims, offset] of op.feeds) {
    feeds[name] = new ort.Tensor("float64", view(reg, dims, offset), dims);
    inputs.add(reg);
  }
  const fetches = {};
  for (const [name, reg, dims, offset] of op.outputs) {
    if (inputs.has(reg)) throw new Error("register " + reg + " is both an input and an output");
    const length = dims.reduce((a, b) => a * b, 1);
    fetches[name] = new ort.Tensor("float64", register(reg, offset + length).subarray(offset, offset + length), dims);
  }
  await session.run(feeds, fetches);
}
parentPort.on("message", async (job) => {
  try {
    if (job.mailbox) mailbox = new Float64Array(job.mailbox);
    for (const op of job.ops) {
      if (op.op === "put") {
        register(op.register, op.at + op.length).set(mailbox.subarray(op.offset, op.offset + op.length), op.at);
      } else if (op.op === "block") {
        block(op);
      } else if (op.op === "alloc") {
        register(op.register, op.length);
      } else if (op.op === "get") {
        const r = registers.get(op.register);
        const b = op.block;
        let o = op.offset;
        for (let i = b.r0; i < b.r1; i++, o += b.c1 - b.c0) mailbox.set(r.subarray(i * b.ld + b.c0, i * b.ld + b.c1), o);
      } else if (op.op === "run") {
        await run(op);
      } else if (op.op === "free") {
        for (const name of op.registers) registers.delete(name);
      }
    }
    signal(${IDLE});
  } catch (e) {
    signal(${FAILED}, e && e.stack ? e.stack : e);
  }
});
try {
  ort = require(workerData.ortPath);
  signal(${IDLE});
} catch (e) {
  signal(${FAILED}, e && e.stack ? e.stack : e);
}
`;

interface Backend {
  worker: Worker;
  control: Int32Array;
  message: Uint8Array;
  mailbox: Float64Array;
  sentGraphs: Set<string>;
}

let backend: Backend | null | undefined; // undefined: not tried yet; null: unavailable
let unavailableReason = "";
let forcedOff = process.env.DIFFEVAL_LINALG === "js";

/** Turns the onnxruntime path off (true) or back on (false); for tests and benchmarks. */
export function setOrtDisabled(disabled: boolean): void {
  forcedOff = disabled;
}

/** Whether float64 graphs can run on onnxruntime (starts the worker on first call). */
export function ortAvailable(): boolean {
  if (forcedOff) return false;
  if (backend === undefined) {
    backend = startBackend();
    if (backend && !selfTestPasses()) backend = null;
  }
  return backend !== null;
}

/** One 2 x 2 float64 MatMul through the whole path, so a broken runtime means "unavailable", not errors later. */
function selfTestPasses(): boolean {
  const out = new Float64Array(4);
  try {
    ortExecute([
      { op: "put", register: "selftest", data: Float64Array.of(1, 2, 3, 4) },
      { op: "run", graph: matmulGraph(), feeds: { A: ["selftest", [2, 2]], B: ["selftest", [2, 2]] }, outputs: { Y: ["selftest.y", [2, 2]] } },
      { op: "get", register: "selftest.y", out },
      { op: "free", registers: ["selftest", "selftest.y"] },
    ]);
  } catch (e) {
    disableBackend(`self-test failed: ${(e as Error).message}`);
    return false;
  }
  if (out.join() === "7,10,15,22") return true;
  disableBackend(`self-test gave ${out.join()} for [[1,2],[3,4]]^2`);
  return false;
}

/** Why the onnxruntime path is off, or "" when it is on. */
export function ortStatus(): string {
  if (forcedOff) return "disabled (DIFFEVAL_LINALG=js or setOrtDisabled)";
  return ortAvailable() ? "" : unavailableReason;
}

/** Runs the operations in order in the worker; blocks until all are done. */
export function ortExecute(ops: OrtOp[]): void {
  if (backend === undefined) ortAvailable();
  if (forcedOff || !backend) throw new DiffevalError("E_LINALG_BACKEND", `onnxruntime unavailable: ${unavailableReason}`);
  const b = backend;
  const wire: Record<string, unknown>[] = [];
  const gets: { out: Float64Array; offset: number }[] = [];
  let size = 0;
  for (const op of ops) {
    if (op.op === "put" || op.op === "get") {
      size += op.op === "put" ? op.data.length : op.out.length;
    }
  }
  let newMailbox: SharedArrayBuffer | undefined;
  if (b.mailbox.length < size) {
    newMailbox = new SharedArrayBuffer(Math.max(size, Math.ceil(b.mailbox.length * 1.25)) * 8);
    b.mailbox = new Float64Array(newMailbox);
  }
  let offset = 0;
  for (const op of ops) {
    if (op.op === "put") {
      b.mailbox.set(op.data, offset);
      wire.push({ op: "put", register: op.register, offset, length: op.data.length, at: op.offset ?? 0 });
      offset += op.data.length;
    } else if (op.op === "get") {
      const block = op.block ?? { ld: op.out.length, r0: 0, r1: 1, c0: 0, c1: op.out.length };
      if ((block.r1 - block.r0) * (block.c1 - block.c0) !== op.out.length) throw new Error("ortExecute: get block and output sizes differ");
      wire.push({ op: "get", register: op.register, offset, block });
      gets.push({ out: op.out, offset });
      offset += op.out.length;
    } else if (op.op === "run") {
      wire.push({
        op: "run",
        key: op.graph.key,
        model: b.sentGraphs.has(op.graph.key) ? undefined : op.graph.build(),
        feeds: Object.entries(op.feeds).map(([name, [reg, dims, at]]) => [name, reg, dims, at ?? 0]),
        outputs: Object.entries(op.outputs).map(([name, [reg, dims, at]]) => [name, reg, dims, at ?? 0]),
      });
    } else {
      wire.push(op);
    }
  }
  Atomics.store(b.control, 0, BUSY);
  b.worker.postMessage({ mailbox: newMailbox, ops: wire });
  const waited = Atomics.wait(b.control, 0, BUSY, CALL_TIMEOUT_MS);
  const state = Atomics.load(b.control, 0);
  if (waited === "timed-out" || state !== IDLE) {
    const text = state === FAILED ? readMessage(b) : "no answer from the onnxruntime worker";
    if (state !== FAILED) disableBackend(text); // a hung worker is unusable from here on
    throw new DiffevalError("E_LINALG_BACKEND", `float64 graph batch failed: ${text}`);
  }
  for (const op of ops) if (op.op === "run") b.sentGraphs.add(op.graph.key);
  for (const g of gets) g.out.set(b.mailbox.subarray(g.offset, g.offset + g.out.length));
}

/**
 * Drops registers; best effort, for `finally` blocks: it never throws, so it cannot mask the
 * error that is unwinding (and does nothing once the worker is gone).
 */
export function ortFree(...registers: string[]): void {
  if (!backend || forcedOff) return;
  try {
    ortExecute([{ op: "free", registers }]);
  } catch {
    // the worker is unusable; the error that matters is the one already in flight
  }
}

function startBackend(): Backend | null {
  try {
    const ortPath = createRequire(import.meta.url).resolve("onnxruntime-node");
    const control = new Int32Array(new SharedArrayBuffer(8));
    const messageBuf = new SharedArrayBuffer(4096);
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ortPath, control: control.buffer, message: messageBuf, threads: availableParallelism() },
    });
    worker.unref(); // never keeps the process alive
    worker.on("error", () => disableBackend("the onnxruntime worker stopped"));
    Atomics.wait(control, 0, STARTING, START_TIMEOUT_MS);
    const b: Backend = { worker, control, message: new Uint8Array(messageBuf), mailbox: new Float64Array(0), sentGraphs: new Set() };
    const state = Atomics.load(control, 0);
    if (state !== IDLE) {
      unavailableReason = state === FAILED ? readMessage(b) : "the onnxruntime worker did not start";
      void worker.terminate();
      return null;
    }
    return b;
  } catch (e) {
    unavailableReason = (e as Error).message;
    return null;
  }
}

function disableBackend(reason: string): void {
  if (backend) void backend.worker.terminate();
  backend = null;
  unavailableReason = reason;
}

function readMessage(b: Backend): string {
  return new TextDecoder().decode(b.message.subarray(0, Atomics.load(b.control, 1)));
}
