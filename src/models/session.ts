/**
 * Opening an onnxruntime-node session on the requested device.
 *
 * onnxruntime-node 1.30 on linux-x64 bundles the CPU and WebGPU providers; the CUDA provider is
 * a separate download (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`). `auto`
 * tries CUDA, then WebGPU, then the CPU, and reports which one it got.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";

export type DeviceName = "auto" | "cpu" | "cuda" | "webgpu";
export type ResolvedDevice = Exclude<DeviceName, "auto">;

export const DEVICES: readonly DeviceName[] = ["auto", "cpu", "cuda", "webgpu"];

export interface OpenedSession {
  session: ort.InferenceSession;
  device: ResolvedDevice;
  /** Why providers tried before this one were passed over (for `--device auto`). */
  skipped: string[];
}

export function parseDevice(value: string): DeviceName {
  if ((DEVICES as readonly string[]).includes(value)) return value as DeviceName;
  throw new DiffevalError("E_USAGE", `unknown device '${value}': use one of ${DEVICES.join(", ")}`);
}

/** Opens `model` (a path or ONNX bytes) on `device`; `auto` falls back in the order cuda, webgpu, cpu. */
export async function openSession(model: string | Uint8Array, device: DeviceName = "auto"): Promise<OpenedSession> {
  const order: ResolvedDevice[] = device === "auto" ? ["cuda", "webgpu", "cpu"] : [device];
  const skipped: string[] = [];
  for (const candidate of order) {
    const unavailable = device === "auto" ? unavailableReason(candidate) : undefined;
    if (unavailable) {
      skipped.push(`${candidate}: ${unavailable}`);
      continue;
    }
    try {
      const session = await createSession(model, candidate);
      return { session, device: candidate, skipped };
    } catch (e) {
      const reason = firstLine(e);
      if (device !== "auto") {
        throw new DiffevalError(
          "E_DEVICE",
          `could not start onnxruntime on '${candidate}': ${reason}. ${deviceHint(candidate)}`,
        );
      }
      skipped.push(`${candidate}: ${reason}`);
    }
  }
  throw new DiffevalError("E_DEVICE", `no execution provider could be started (${skipped.join("; ")})`);
}

function createSession(model: string | Uint8Array, device: ResolvedDevice): Promise<ort.InferenceSession> {
  if (device === "cuda") {
    // The CUDA provider's TF32 default moves pool3 by ~3e-3 and FID by ~0.6% (measured with torch on
    // an H200). onnxruntime-node exposes no `use_tf32` option, so disable TF32 the NVIDIA way, for
    // cuBLAS and cuDNN alike, before the provider loads them. Users who want TF32 can set it to 1.
    process.env.NVIDIA_TF32_OVERRIDE ??= "0";
  }
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    graphOptimizationLevel: "all",
    // Failed provider probes are reported by us in one line; keep onnxruntime's own log quiet.
    logSeverityLevel: 3,
    // Between batches the worker threads decode and resize the next images; onnxruntime's pool
    // threads would otherwise keep spinning after each run and take those cores.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  return typeof model === "string" ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

/** Cheap checks that spare `auto` a noisy failed load when a provider cannot possibly work. */
function unavailableReason(device: ResolvedDevice): string | undefined {
  if (process.platform !== "linux") return undefined;
  if (device === "cuda") {
    const dir = ortBinaryDir();
    if (dir && !existsSync(path.join(dir, "libonnxruntime_providers_cuda.so"))) return "CUDA provider not installed";
  }
  // Dawn (ORT's WebGPU) needs the Vulkan loader on Linux; without it, it prints a warning and fails.
  if (device === "webgpu" && !linuxLibraryFound("libvulkan.so.1")) return "no Vulkan loader (libvulkan.so.1)";
  return undefined;
}

/** Whether the dynamic linker can find `lib`: LD_LIBRARY_PATH, then the ld.so cache. */
function linuxLibraryFound(lib: string): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean);
  if (dirs.some((d) => existsSync(path.join(d, lib)))) return true;
  try {
    return readFileSync("/etc/ld.so.cache").includes(lib);
  } catch {
    return true; // cannot tell: let the provider try
  }
}

function ortBinaryDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pkg = path.dirname(require.resolve("onnxruntime-node/package.json"));
    return path.join(pkg, "bin", "napi-v6", process.platform, process.arch);
  } catch {
    return undefined;
  }
}

function deviceHint(device: ResolvedDevice): string {
  switch (device) {
    case "cuda":
      return "The CUDA provider is not bundled: run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (needs internet, CUDA 12 and cuDNN 9), or use --device webgpu|cpu.";
    case "webgpu":
      return "WebGPU needs a GPU driver with Vulkan (Linux: the libvulkan1 package); or use --device cpu.";
    case "cpu":
      return "";
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].replace(/^.*?\] : \d+ : \w+ : /, "").slice(0, 300);
}
