/**
 * Opening an onnxruntime-node session on the requested device.
 *
 * onnxruntime-node 1.30 on linux-x64 bundles the CPU and WebGPU providers; the CUDA provider is
 * a separate download (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`). `auto`
 * tries CUDA, then WebGPU on a hardware adapter, then the CPU, and reports which one it got.
 *
 * On Linux, WebGPU is first asked about in a quiet child process (webgpu-probe.ts): a machine
 * with a Vulkan loader and Mesa's drivers but no GPU (any machine with Chromium or Mesa) would
 * otherwise have Dawn, the loader and Mesa print to the terminal before the fallback to the CPU.
 * Under `auto` the child is shown only the hardware drivers (vulkan-drivers.ts tells software
 * ones by their library), so a session is opened here only where a hardware adapter exists; and
 * Dawn, asked for a high-performance adapter by onnxruntime (webgpu_context.cc), sorts discrete
 * and integrated GPUs before CPU adapters (Dawn's docs/dawn/features/adapter_options.md), so that
 * session lands on the GPU the child found. `--device webgpu` takes a software adapter too, with
 * a notice.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";
import { clip, ortMessage } from "./ort-message.js";
import { driverNames, vulkanDrivers } from "./vulkan-drivers.js";
import { probeWebGpu, type WebGpuProbe } from "./webgpu-probe.js";

export type DeviceName = "auto" | "cpu" | "cuda" | "webgpu";
export type ResolvedDevice = Exclude<DeviceName, "auto">;

export const DEVICES: readonly DeviceName[] = ["auto", "cpu", "cuda", "webgpu"];

export interface OpenedSession {
  session: ort.InferenceSession;
  device: ResolvedDevice;
  /** Why providers tried before this one were passed over (for `--device auto`), each one short phrase. */
  skipped: string[];
  /** One line worth telling the user about the device it got (a software WebGPU adapter). */
  notice?: string;
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
    const check = await precheck(candidate, device === "auto");
    if (check.unavailable !== undefined) {
      if (device !== "auto") throw deviceError(candidate, check.unavailable);
      skipped.push(`${candidate}: ${clip(check.unavailable, SKIP_REASON_MAX)}`);
      continue;
    }
    try {
      const session = await createSession(model, candidate);
      return { session, device: candidate, skipped, ...(check.notice ? { notice: check.notice } : {}) };
    } catch (e) {
      if (device !== "auto") throw deviceError(candidate, ortMessage(e));
      skipped.push(`${candidate}: ${ortMessage(e, SKIP_REASON_MAX)}`);
    }
  }
  throw new DiffevalError("E_DEVICE", `no execution provider could be started (${skipped.join("; ")})`);
}

/**
 * Each skipped provider's reason is at most this long, so that the `device: cpu (cuda: ...;
 * webgpu: ...)` notice stays one line under 240 characters.
 */
const SKIP_REASON_MAX = 100;

function deviceError(device: ResolvedDevice, reason: string): DiffevalError {
  return new DiffevalError("E_DEVICE", `could not start onnxruntime on '${device}': ${reason}. ${deviceHint(device)}`);
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

export interface Precheck {
  /** Why the provider cannot work here; the session is then not attempted in this process. */
  unavailable?: string;
  notice?: string;
}

/** What can be known about a provider before loading it in this process, quietly (`diffeval doctor` asks it too). */
export async function precheck(device: ResolvedDevice, auto: boolean): Promise<Precheck> {
  if (process.platform !== "linux") return {};
  // Also for an explicit `cuda`: loading the missing provider would log onnxruntime's error first.
  if (device === "cuda") {
    const dir = ortBinaryDir();
    if (dir && !existsSync(path.join(dir, "libonnxruntime_providers_cuda.so"))) return { unavailable: "CUDA provider not installed" };
  }
  if (device === "webgpu") return webgpuPrecheck(auto);
  return {};
}

/**
 * WebGPU on Linux: the Vulkan loader, a driver manifest, then the quiet probe. Under `auto` only
 * a hardware adapter counts; an explicit `webgpu` takes a software one with a notice. A probe
 * that gives no verdict leaves the decision to the in-process attempt, as before probes existed.
 */
async function webgpuPrecheck(auto: boolean): Promise<Precheck> {
  // Dawn needs the Vulkan loader on Linux; without it, it prints a warning and fails.
  if (!linuxLibraryFound("libvulkan.so.1")) return { unavailable: "no Vulkan loader (libvulkan.so.1; Debian/Ubuntu: libvulkan1)" };
  const drivers = vulkanDrivers();
  if (drivers.length === 0) return { unavailable: "no Vulkan driver (no ICD manifest in the vulkan/icd.d folders)" };
  const hardware = drivers.filter((d) => !d.software);
  const software = drivers.filter((d) => d.software);
  const onHardware = hardware.length ? await probeWebGpu(drivers, software.length ? hardware : undefined) : undefined;
  if (hardware.length && (!onHardware || onHardware.ok)) return {};
  const hardwarePart = onHardware && `${driverNames(hardware)}${outcome(onHardware)}`;
  if (auto) {
    const softwarePart = software.length ? `${driverNames(software)} ${software.length > 1 ? "are" : "is"} software` : undefined;
    return { unavailable: `no GPU adapter (${[hardwarePart, softwarePart].filter(Boolean).join("; ")})` };
  }
  if (software.length === 0) return { unavailable: `no WebGPU adapter (${hardwarePart})` };
  const onAny = await probeWebGpu(drivers);
  if (!onAny || onAny.ok) {
    return { notice: `webgpu: no GPU adapter; running on the software renderer ${driverNames(software)}, often slower than --device cpu` };
  }
  const softwarePart = `${driverNames(software)}${outcome(onAny)}`;
  return { unavailable: `no WebGPU adapter (${[hardwarePart, softwarePart].filter(Boolean).join("; ")})` };
}

/**
 * What a failed probe found, as a phrase after the drivers' names: ` found none` when Dawn saw no
 * adapter, else Dawn's warning (what a driver lacks) or onnxruntime's message.
 */
function outcome(p: WebGpuProbe): string {
  if (p.dawn) return `: ${clip(p.dawn, 80)}`;
  return /Failed to get a WebGPU adapter/.test(p.reason) ? " found none" : `: ${clip(p.reason, 80)}`;
}

/** Whether the dynamic linker can find `lib`: LD_LIBRARY_PATH, then the ld.so cache. */
export function linuxLibraryFound(lib: string): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean);
  if (dirs.some((d) => existsSync(path.join(d, lib)))) return true;
  try {
    return readFileSync("/etc/ld.so.cache").includes(lib);
  } catch {
    return true; // cannot tell: let the provider try
  }
}

export function ortBinaryDir(): string | undefined {
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
      return "WebGPU needs a GPU with a Vulkan driver; or use --device cpu.";
    case "cpu":
      return "";
  }
}
