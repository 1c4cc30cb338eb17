/**
 * Whether onnxruntime's WebGPU provider can start on this machine, asked without letting the
 * native libraries write to the terminal, and remembered per machine.
 *
 * Why a child process: Dawn, the Vulkan loader and Mesa's drivers write to file descriptor 2
 * directly (`error: XDG_RUNTIME_DIR is invalid...`, `Warning: Vulkan shaderUniform*ArrayDynamic
 * Indexing required`, C++ source paths), which no JavaScript can redirect in-process. A short
 * `node` child with its output piped opens a WebGPU session on a one-node graph, runs it, and
 * reports on stdout; whatever the native side printed stays in the pipe, and a crash of the
 * native side kills only the child. It costs one Node start plus one onnxruntime load (about
 * 0.1-0.2 s on a machine without a GPU, measured on Debian 12 with Mesa 22.3).
 *
 * Why a cache: a GPU's device creation can take much longer, and the answer only changes when
 * the machine does. The verdict is kept under the diffeval cache dir, keyed by what it depends
 * on: onnxruntime-node's version and binaries, the Vulkan driver manifests the loader would read
 * (with the mtimes and sizes of them and of their libraries), the driver subset the child was
 * shown, the environment variables that steer the loader, Dawn and Mesa, the GPU device nodes,
 * the kernel release and the NVIDIA kernel driver version. Any change is a new key and a fresh
 * probe. A probe that could not report (no child process, time-out) is not remembered.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { parseJsonText } from "../io/read-json.js";
import { type Env, webgpuProbePath } from "./cache.js";
import { OnnxGraph } from "./onnx-graph.js";
import { clip, ortMessage } from "./ort-message.js";
import type { VulkanDriver } from "./vulkan-drivers.js";

/** Bump when the probe's meaning changes, so old verdicts are not reused. */
const PROBE_VERSION = 1;
/** Long enough for a slow driver's first device creation (shader caches cold), short of a hang. */
const PROBE_TIMEOUT_MS = 60_000;
const MARK = "diffeval-webgpu-probe:";

export interface WebGpuProbe {
  /** A WebGPU session started and computed Relu correctly. */
  ok: boolean;
  /** onnxruntime's message without its source paths (empty when ok). */
  reason: string;
  /** Dawn's first warning line from the child's stderr, which often names what a driver lacks. */
  dawn?: string;
  /** Whether the verdict came from the cache. */
  cached: boolean;
  /** How long the child ran, in ms (of the run that produced the verdict). */
  ms: number;
}

/**
 * Probes WebGPU with the Vulkan loader shown only `only` (all of its drivers when undefined).
 * Returns undefined when no verdict could be had (the caller then behaves as without a probe).
 */
export async function probeWebGpu(
  drivers: readonly VulkanDriver[],
  only?: readonly VulkanDriver[],
  env: Env = process.env,
): Promise<WebGpuProbe | undefined> {
  const key = probeKey(drivers, only, env);
  const file = webgpuProbePath(key, env);
  const remembered = readVerdict(file, key);
  if (remembered) return { ...remembered, cached: true };
  const fresh = await runProbeChild(childEnv(only, env));
  if (!fresh || fresh.timedOut) return fresh?.probe;
  try {
    await writeFileAtomic(file, `${JSON.stringify({ key, ...fresh.probe, cached: undefined })}\n`);
  } catch {
    // a read-only cache costs a probe per run, nothing else
  }
  return fresh.probe;
}

/** The key as JSON: every input the verdict depends on (see the file comment). */
export function probeKey(drivers: readonly VulkanDriver[], only: readonly VulkanDriver[] | undefined, env: Env): string {
  const steering = Object.keys(env)
    .filter((k) => /^(VK_|DAWN_|MESA_|NVIDIA_|XDG_(CONFIG|DATA)_)/.test(k) || k === "LD_LIBRARY_PATH" || k === "HOME")
    .sort()
    .map((k) => [k, env[k]]);
  return JSON.stringify({
    v: PROBE_VERSION,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    nvidia: firstLineOf("/proc/driver/nvidia/version"),
    ort: ortFingerprint(),
    drivers: drivers.map((d) => [d.manifest, fileStamp(d.manifest), d.library, libraryStamp(d)]),
    only: only?.map((d) => d.manifest) ?? null,
    env: steering,
    devices: gpuDeviceNodes(),
  });
}

/** The child sees only `only`'s manifests: VK_DRIVER_FILES for loaders >= 1.3.207, VK_ICD_FILENAMES before. */
function childEnv(only: readonly VulkanDriver[] | undefined, env: Env): Env {
  const out: Env = { ...env };
  // The child must be a plain `node`: no preloads from the parent's NODE_OPTIONS (test runners, profilers).
  delete out.NODE_OPTIONS;
  if (only) {
    const files = only.map((d) => d.manifest).join(":");
    out.VK_DRIVER_FILES = files;
    out.VK_ICD_FILENAMES = files;
    delete out.VK_ADD_DRIVER_FILES;
  }
  return out;
}

/**
 * The child: CommonJS run by `node -e`, arguments the onnxruntime-node entry and the model in
 * base64. It checks Relu's output so that an adapter that starts but computes wrongly fails too.
 */
const CHILD_SCRIPT = `
const [entry, model] = process.argv.slice(1);
const report = (r) => process.stdout.write("\\n${MARK}" + JSON.stringify(r) + "\\n");
(async () => {
  const ort = require(entry);
  const session = await ort.InferenceSession.create(Buffer.from(model, "base64"), { executionProviders: ["webgpu"], logSeverityLevel: 3 });
  const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from([-1, 0, 1, 2]), [1, 4]) });
  const y = Array.from(out.y.data);
  await session.release();
  report(y.join() === "0,0,1,2" ? { ok: true } : { ok: false, error: "the WebGPU adapter computed Relu wrongly: " + y.join() });
})().catch((e) => report({ ok: false, error: String((e && e.message) || e) }));
`;

interface ChildVerdict {
  probe: WebGpuProbe;
  timedOut: boolean;
}

async function runProbeChild(env: Env): Promise<ChildVerdict | undefined> {
  const entry = ortEntry();
  if (!entry) return undefined;
  const t0 = performance.now();
  const result = await runNode([CHILD_SCRIPT, entry, Buffer.from(reluModel()).toString("base64")], env);
  const ms = Math.round(performance.now() - t0);
  if (!result) return undefined;
  const dawn = dawnWarning(result.stderr);
  const line = result.stdout.split("\n").find((l) => l.startsWith(MARK));
  if (line) {
    const r = JSON.parse(line.slice(MARK.length)) as { ok: boolean; error?: string };
    const probe = { ok: r.ok, reason: r.ok ? "" : ortMessage(r.error ?? ""), cached: false, ms };
    return { probe: dawn ? { ...probe, dawn } : probe, timedOut: false };
  }
  const why = result.timedOut
    ? `the WebGPU probe did not finish in ${PROBE_TIMEOUT_MS / 1000} s`
    : `the WebGPU provider crashed (${result.signal ?? `exit ${result.code}`})`;
  return { probe: { ok: false, reason: why, ...(dawn ? { dawn } : {}), cached: false, ms }, timedOut: result.timedOut };
}

interface NodeRun {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** Runs `node -e ...args` with every stream piped (bounded); undefined if it cannot be started. */
function runNode(args: string[], env: Env): Promise<NodeRun | undefined> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["-e", ...args], { env, stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
    const out = { stdout: "", stderr: "" };
    const keep = (k: "stdout" | "stderr") => (b: Buffer) => {
      if (out[k].length < 65_536) out[k] += b.toString("utf8");
    };
    child.stdout.on("data", keep("stdout"));
    child.stderr.on("data", keep("stderr"));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, PROBE_TIMEOUT_MS);
    child.on("error", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ ...out, code, signal, timedOut });
    });
  });
}

/** Dawn reports a rejected adapter as `Warning: <what is missing>` followed by ` - While ...`. */
function dawnWarning(stderr: string): string | undefined {
  const lines = stderr.split("\n");
  const i = lines.findIndex((l, j) => /^Warning: /.test(l) && /^\s*- While initializing adapter/.test(lines[j + 1] ?? ""));
  return i < 0 ? undefined : clip(lines[i].replace(/^Warning:\s*/, "").trim(), 100);
}

function readVerdict(file: string, key: string): Omit<WebGpuProbe, "cached"> | undefined {
  try {
    const r = parseJsonText(readFileSync(file, "utf8"), file, "E_DEVICE", "a WebGPU probe verdict") as Partial<WebGpuProbe> & { key?: string };
    if (r.key !== key || typeof r.ok !== "boolean" || typeof r.reason !== "string") return undefined;
    return { ok: r.ok, reason: r.reason, ms: Number(r.ms) || 0, ...(typeof r.dawn === "string" ? { dawn: r.dawn } : {}) };
  } catch {
    return undefined; // absent or damaged: probe again
  }
}

let reluBytes: Uint8Array | undefined;
/** A one-node Relu graph, [1, 4] in and out: the smallest model a provider can be asked to run. */
export function reluModel(): Uint8Array {
  if (!reluBytes) {
    const g = new OnnxGraph();
    g.node("Relu", ["x"], "y");
    reluBytes = g.toModelBytes({ name: "webgpu-probe", inputs: [{ name: "x", dims: [1, 4] }], outputs: [{ name: "y", dims: [1, 4] }], opset: 17 });
  }
  return reluBytes;
}

function ortEntry(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve("onnxruntime-node");
  } catch {
    return undefined;
  }
}

/** onnxruntime-node's version and native binaries (a CUDA rebuild replaces them). */
function ortFingerprint(): unknown {
  const entry = ortEntry();
  if (!entry) return null;
  const root = path.resolve(path.dirname(entry), "..");
  let version = "";
  try {
    version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version?: string }).version ?? "";
  } catch {
    // keyed by the binaries alone
  }
  const bin = path.join(root, "bin", "napi-v6", process.platform, process.arch);
  const files = existsSync(bin) ? readdirSync(bin).sort() : [];
  return { version, files: files.map((f) => [f, fileStamp(path.join(bin, f))]) };
}

/** A driver library's stamp when its path is absolute (or relative to the manifest); a bare name is resolved by ld.so and keyed by name. */
function libraryStamp(d: VulkanDriver): string | null {
  if (!d.library || !d.library.includes("/")) return null;
  return fileStamp(path.resolve(path.dirname(d.manifest), d.library));
}

function fileStamp(file: string): string | null {
  try {
    const s = statSync(file);
    return `${s.size}@${s.mtimeMs}`;
  } catch {
    return null;
  }
}

/** The GPU device nodes (DRM render nodes, NVIDIA, AMD KFD): a GPU passed to a container or taken away changes them. */
function gpuDeviceNodes(): string[] {
  const list = (dir: string, keep: (f: string) => boolean) => {
    try {
      return readdirSync(dir).filter(keep).map((f) => path.join(dir, f));
    } catch {
      return [];
    }
  };
  return [...list("/dev/dri", () => true), ...list("/dev", (f) => f.startsWith("nvidia") || f === "kfd")].sort();
}

function firstLineOf(file: string): string | null {
  try {
    return readFileSync(file, "utf8").split("\n")[0];
  } catch {
    return null;
  }
}
