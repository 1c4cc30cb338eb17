/**
 * What this machine can run, and why not: the facts `diffeval doctor` prints for bug reports.
 *
 * Every provider verdict is the one `--device auto` reaches (models/session.ts): the same
 * precheck (for WebGPU the Vulkan loader, the drivers vulkan-drivers.ts finds and the cached
 * child-process probe of webgpu-probe.ts, hardware drivers only), then, where that passes, a
 * session on a one-node graph, as openSession would open one. So doctor and the real device
 * choice cannot disagree, and doctor costs no more probing than a run with `--device auto`.
 *
 * The CUDA facts beyond that verdict (the provider library in onnxruntime-node's bin folder, the
 * CUDA 12 and cuDNN 9 libraries the provider links, the NVIDIA kernel driver) say what to fix.
 * Weights are reported with the sha256 their memo records; hashing a 95 MB file happens only
 * when asked (`verify`).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import sharp from "sharp";
import { encoderWeightsFolder } from "../features/encoder-weights.js";
import { cacheDir, hashMemoPath, type Env } from "../models/cache.js";
import { memoSha256, sha256WithMemo, sidecarPath } from "../models/ensure-weights.js";
import { DEFAULT_WEIGHTS_ID, getEncoderWeightsEntry, getWeightsEntry, knownEncoderWeightsIds } from "../models/registry.js";
import { linuxLibraryFound, openSession, ortBinaryDir, precheck, type ResolvedDevice } from "../models/session.js";
import { vulkanDrivers } from "../models/vulkan-drivers.js";
import { reluModel } from "../models/webgpu-probe.js";
import { VERSION } from "../version.js";

/** The command that fetches the CUDA build of onnxruntime-node (session.ts's hint says the same). */
export const CUDA_INSTALL = "ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (needs internet, CUDA 12 and cuDNN 9)";

/**
 * The shared libraries onnxruntime's CUDA provider loads (onnxruntime's CUDA requirements page:
 * the CUDA 12 builds link CUDA runtime 12, cuBLAS/cuBLASLt 12 and cuDNN 9).
 */
const CUDA_LIBRARIES = ["libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9"] as const;

export interface ProviderFacts {
  available: boolean;
  /** Why not (empty when available). */
  reason: string;
}

export interface CudaFacts extends ProviderFacts {
  /** libonnxruntime_providers_cuda.so in onnxruntime-node's bin folder (null off Linux). */
  provider_library: { path: string; present: boolean } | null;
  /** Each library the provider links: where the loader would find it, or null. */
  libraries: Record<string, string | null>;
  /** The NVIDIA kernel driver's version line, or null without one. */
  nvidia_driver: string | null;
}

export interface WebGpuFacts extends ProviderFacts {
  /** Whether the Vulkan loader (libvulkan.so.1) is there; null off Linux, where Dawn uses another API. */
  vulkan_loader: boolean | null;
  /** The Vulkan drivers the loader would load, each a possible adapter, and whether it renders in software. */
  adapters: { name: string; software: boolean; manifest: string }[];
}

export type WeightStatus = "verified" | "mismatch" | "unverified" | "no-expected-hash";

export interface WeightFacts {
  /** The registry id the file belongs to, or null for a file the registry does not name. */
  id: string | null;
  path: string;
  bytes: number;
  /** The file's sha256 when known (a memo, or `verify`). */
  sha256: string | null;
  /** verified/mismatch: compared with the registry; unverified: not hashed yet; no-expected-hash: the registry records none. */
  status: WeightStatus;
}

export interface DoctorReport {
  diffeval: string;
  node: { version: string; platform: string; arch: string };
  onnxruntime: { version: string | null; binaries: string[] };
  providers: { cpu: { available: true }; cuda: CudaFacts; webgpu: WebGpuFacts };
  sharp: { version: string | null; libvips: string | null };
  cache: { dir: string; weights: WeightFacts[] };
  cuda_install: string;
}

export async function doctorReport(opts: { verify?: boolean; env?: Env } = {}): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  return {
    diffeval: VERSION,
    node: { version: process.versions.node, platform: process.platform, arch: process.arch },
    onnxruntime: onnxruntimeFacts(),
    providers: { cpu: { available: true }, cuda: await cudaFacts(env), webgpu: await webgpuFacts() },
    sharp: { version: sharp.versions.sharp ?? null, libvips: sharp.versions.vips ?? null },
    cache: { dir: cacheDir(env), weights: await cachedWeights(env, opts.verify ?? false) },
    cuda_install: CUDA_INSTALL,
  };
}

function onnxruntimeFacts(): DoctorReport["onnxruntime"] {
  const dir = ortBinaryDir();
  let version: string | null = null;
  try {
    const pkg = createRequire(import.meta.url).resolve("onnxruntime-node/package.json");
    version = (JSON.parse(readFileSync(pkg, "utf8")) as { version?: string }).version ?? null;
  } catch {
    // not installed: version stays null
  }
  return { version, binaries: dir && existsSync(dir) ? readdirSync(dir).sort() : [] };
}

/**
 * `--device auto`'s verdict on one provider: its precheck, then a session on a Relu graph (what
 * openSession does next). The explicit-device path opens it: past a passed auto precheck, its
 * own precheck reaches the same verdict from the same (cached) probe.
 */
async function autoVerdict(device: ResolvedDevice): Promise<ProviderFacts> {
  const check = await precheck(device, true);
  if (check.unavailable !== undefined) return { available: false, reason: check.unavailable };
  try {
    const opened = await openSession(reluModel(), device);
    await opened.session.release();
    return { available: true, reason: "" };
  } catch (e) {
    return { available: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

async function cudaFacts(env: Env): Promise<CudaFacts> {
  const verdict = await autoVerdict("cuda");
  const linux = process.platform === "linux";
  const dir = ortBinaryDir();
  const providerPath = dir ? path.join(dir, "libonnxruntime_providers_cuda.so") : null;
  const libraries = linux ? findLibraries(CUDA_LIBRARIES, env) : {};
  const nvidia = firstLine("/proc/driver/nvidia/version");
  const missing = Object.keys(libraries).filter((k) => libraries[k] === null);
  const extra = linux
    ? [nvidia ? "" : "no NVIDIA driver (/proc/driver/nvidia/version)", missing.length ? `not found: ${missing.join(", ")}` : ""]
    : [];
  const reason = verdict.available ? "" : [verdict.reason, ...extra].filter(Boolean).join("; ");
  return {
    available: verdict.available,
    reason,
    provider_library: linux && providerPath ? { path: providerPath, present: existsSync(providerPath) } : null,
    libraries,
    nvidia_driver: nvidia,
  };
}

async function webgpuFacts(): Promise<WebGpuFacts> {
  const verdict = await autoVerdict("webgpu");
  const linux = process.platform === "linux";
  const adapters = linux ? vulkanDrivers().map((d) => ({ name: d.software ?? d.name, software: d.software !== undefined, manifest: d.manifest })) : [];
  return { ...verdict, vulkan_loader: linux ? linuxLibraryFound("libvulkan.so.1") : null, adapters };
}

/**
 * Where the dynamic linker would find each library: LD_LIBRARY_PATH, the CUDA toolkit folders
 * (/usr/local/cuda*\/lib64, which the toolkit's installer adds to ld.so.conf), then `ldconfig -p`.
 */
function findLibraries(names: readonly string[], env: Env): Record<string, string | null> {
  const dirs = [...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), ...cudaToolkitDirs()];
  const cache = ldconfigListing();
  const out: Record<string, string | null> = {};
  for (const name of names) {
    const inDir = dirs.map((d) => path.join(d, name)).find((p) => existsSync(p));
    out[name] = inDir ?? cache.get(name) ?? null;
  }
  return out;
}

function cudaToolkitDirs(): string[] {
  try {
    return readdirSync("/usr/local")
      .filter((f) => /^cuda/.test(f))
      .sort()
      .map((f) => path.join("/usr/local", f, "lib64"));
  } catch {
    return [];
  }
}

/** `ldconfig -p` as name -> path (first entry wins, as the loader's); empty where ldconfig is absent. */
function ldconfigListing(): Map<string, string> {
  const out = new Map<string, string>();
  for (const bin of ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]) {
    try {
      const text = execFileSync(bin, ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 });
      for (const m of text.matchAll(/^\s+(\S+) \([^)]*\) => (\S+)$/gm)) if (!out.has(m[1])) out.set(m[1], m[2]);
      return out;
    } catch {
      // try the next location
    }
  }
  return out;
}

interface ExpectedWeight {
  id: string;
  file: string;
  /** The registry's sha256, undefined where it records none. */
  sha256: string | undefined;
}

/** Every file the registry would place in the cache, with the hash it expects. */
function registryFiles(env: Env): ExpectedWeight[] {
  const inception = getWeightsEntry(DEFAULT_WEIGHTS_ID);
  const weightsDir = path.join(cacheDir(env), "weights");
  const encoders = knownEncoderWeightsIds().flatMap((id) => {
    const entry = getEncoderWeightsEntry(id);
    const dir = encoderWeightsFolder(id, env);
    return entry.files.map((f) => ({ id, file: path.join(dir, f.name), sha256: f.sha256 }));
  });
  return [{ id: inception.id, file: path.join(weightsDir, inception.fileName), sha256: inception.sha256 }, ...encoders];
}

/** The files under `<cache>/weights` (memos and partial downloads left out), each with its sha256 status. */
async function cachedWeights(env: Env, verify: boolean): Promise<WeightFacts[]> {
  const expected = new Map(registryFiles(env).map((e) => [e.file, e]));
  const out: WeightFacts[] = [];
  for (const file of weightFiles(path.join(cacheDir(env), "weights"))) {
    const e = expected.get(file);
    const sha256 = await knownSha256(file, memoPaths(file, env), verify);
    out.push({ id: e?.id ?? null, path: file, bytes: statSync(file).size, sha256: sha256 ?? null, status: weightStatus(sha256, e?.sha256) });
  }
  return out;
}

function weightStatus(actual: string | undefined, expected: string | undefined): WeightStatus {
  if (actual === undefined) return "unverified";
  if (expected === undefined) return "no-expected-hash";
  return actual.toLowerCase() === expected.toLowerCase() ? "verified" : "mismatch";
}

/**
 * Where a file's hash may be memoised, the one its reader writes first: ensure-weights.ts keeps
 * the Inception file's next to it (weights/<file>.sha256.json), encoder-weights.ts the encoder
 * files' under hashes/.
 */
function memoPaths(file: string, env: Env): [string, string] {
  const topLevel = path.dirname(file) === path.join(cacheDir(env), "weights");
  return topLevel ? [sidecarPath(file), hashMemoPath(file, env)] : [hashMemoPath(file, env), sidecarPath(file)];
}

/** The sha256 a memo records, or, with `verify`, the file's hash (memoised where its reader looks). */
async function knownSha256(file: string, memos: [string, string], verify: boolean): Promise<string | undefined> {
  for (const memo of memos) {
    const sha = await memoSha256(file, memo);
    if (sha) return sha;
  }
  return verify ? sha256WithMemo(file, memos[0]) : undefined;
}

/** Files two levels deep (weights/<file>, weights/<encoder id>/<file>), hidden staging folders and memos left out. */
function weightFiles(dir: string, depth = 0): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith(".") && !n.endsWith(".sha256.json"))
    .flatMap((n) => {
      const p = path.join(dir, n);
      const st = statSync(p);
      if (st.isDirectory()) return depth === 0 ? weightFiles(p, 1) : [];
      return st.isFile() ? [p] : [];
    });
}

function firstLine(file: string): string | null {
  try {
    return readFileSync(file, "utf8").split("\n")[0].trim() || null;
  } catch {
    return null;
  }
}
