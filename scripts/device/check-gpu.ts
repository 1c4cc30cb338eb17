/**
 * GPU-vs-CPU correctness check for the GPU machine (scripts/device/remote.sh runs it there; it also
 * runs here, where WebGPU is expected to fail and is recorded as such).
 *
 * It converts the fixture Inception (test/helpers/model.ts fixtureModelPath(), cached under
 * <project>/.cache/test-models), then, for each device spec, extracts pool3 features of the 32
 * fixture real images under protocol "clean" through `openExtractor` and compares them: every
 * device against the CPU and against the reference tools' features (feats_clean_real.npy), with
 * the tests' tolerance of 1e-4. Each device runs in a child process of its own, with a timeout, so
 * a provider that crashes or hangs (Dawn without a Vulkan driver, say) is recorded and the other
 * devices still run.
 *
 *   node .bench-build/scripts/device/check-gpu.js [--out FILE] [--devices cpu,webgpu,webgpu@1,cuda,auto]
 *       Writes the JSON report to FILE (default $OUT/gpu-check.json, else gpu-check.json). Exits 0
 *       when the CPU matches the reference and WebGPU matches the CPU (with CHECK_ALLOW_NO_GPU=1,
 *       a WebGPU that does not start is accepted: the dry run on a machine without a GPU).
 *       A spec is a device name, optionally @batch (default 16). CHECK_TIMEOUT_S: per device (120).
 *   node .bench-build/scripts/device/check-gpu.js --make-images DIR N
 *       Writes N 256x256 PNG/JPEG images derived from the fixture real images (cropped, rotated,
 *       slightly blurred and colour-shifted: a "fake" set), for the CLI end-to-end run.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { openExtractor } from "../../src/features/extractor.js";
import { parseDevice } from "../../src/models/session.js";
import { openImageSource } from "../../src/io/sources.js";
import { loadNpy, maxAbsDiff } from "../../test/helpers/arrays.js";
import { fixture, fixturesRoot } from "../../test/helpers/fixtures.js";
import { fixtureModelPath } from "../../test/helpers/model.js";

const TOLERANCE = 1e-4;
const DEFAULT_DEVICES = "cpu,webgpu,webgpu@1,cuda,auto";

interface RunResult {
  spec: string;
  ok: boolean;
  requested: string;
  batch: number;
  device?: string;
  error?: string;
  error_code?: string;
  notices?: string[];
  threads?: number;
  open_s?: number;
  first_extract_s?: number;
  warm_extract_s?: number;
  warm_img_per_s?: number;
  n?: number;
  d?: number;
  /** Max |diff| between the first and the second extraction in the same session. */
  repeat_max_abs_diff?: number;
  /** Set by the parent. */
  max_abs_diff_vs_cpu?: number;
  max_abs_diff_vs_reference?: number;
  within_tolerance_vs_cpu?: boolean;
  within_tolerance_vs_reference?: boolean;
  /** How the child ended when it printed no result (signal, timeout, exit status). */
  exit?: string;
  stderr_tail?: string;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seconds = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

function parseSpec(spec: string): { device: string; batch: number } {
  const [device, batch] = spec.split("@");
  return { device, batch: batch ? Number(batch) : 16 };
}

/** Child mode: one device, one JSON line on stdout, features (float32, row-major) into `featsFile`. */
async function runOne(spec: string, featsFile: string): Promise<void> {
  const { device, batch } = parseSpec(spec);
  const result: RunResult = { spec, ok: false, requested: device, batch };
  const notices: string[] = [];
  try {
    const model = await fixtureModelPath();
    const items = (await openImageSource(fixture("images", "real"))).items;
    let t0 = performance.now();
    const extractor = await openExtractor({
      weights: model,
      device: parseDevice(device),
      protocol: "clean",
      batchSize: batch,
      cache: false,
      allowDownload: false,
      log: (line) => notices.push(line),
    });
    result.open_s = seconds(t0);
    result.device = extractor.device;
    result.threads = extractor.threads;
    t0 = performance.now();
    const first = await extractor.extract(items);
    result.first_extract_s = seconds(t0);
    t0 = performance.now();
    const second = await extractor.extract(items);
    result.warm_extract_s = seconds(t0);
    result.warm_img_per_s = Math.round((items.length / Math.max(result.warm_extract_s, 1e-3)) * 10) / 10;
    await extractor.close();
    result.n = second.embedding.n;
    result.d = second.embedding.d;
    result.repeat_max_abs_diff = maxAbsDiff(first.embedding.data, second.embedding.data);
    writeFileSync(featsFile, second.embedding.data);
    result.ok = true;
  } catch (e) {
    result.error = e instanceof Error ? e.message : String(e);
    const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
    if (typeof code === "string") result.error_code = code;
  }
  result.notices = notices;
  process.stdout.write(`\n${JSON.stringify(result)}\n`);
}

/** Parent mode: every spec in a child process, then the comparisons and the report. */
async function runAll(): Promise<number> {
  const specs = (arg("--devices") ?? process.env.CHECK_DEVICES ?? DEFAULT_DEVICES).split(",").map((s) => s.trim()).filter(Boolean);
  const outFile = arg("--out") ?? path.join(process.env.OUT ?? ".", "gpu-check.json");
  const timeoutS = Number(process.env.CHECK_TIMEOUT_S ?? 120);
  const tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-gpu-check-"));
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model,
    fixtures: fixturesRoot,
    protocol: "clean",
    images: "fixtures/images/real (32)",
    tolerance: TOLERANCE,
    env: pick(process.env, ["VK_DRIVER_FILES", "VK_ICD_FILENAMES", "LD_LIBRARY_PATH", "DEVICE_DRY", "CHECK_ALLOW_NO_GPU"]),
  };
  const write = () => {
    mkdirSync(path.dirname(path.resolve(outFile)), { recursive: true });
    writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  };

  let t0 = performance.now();
  const model = await fixtureModelPath();
  report.model = model;
  report.model_prepare_s = seconds(t0);
  log(`fixture model ready in ${report.model_prepare_s} s: ${model}`);
  write(); // rewritten after each device, so a run killed midway still leaves what it found

  const runs: RunResult[] = [];
  report.runs = runs;
  const feats = new Map<string, Float32Array>();
  const self = fileURLToPath(import.meta.url);
  for (const spec of specs) {
    const file = path.join(tmp, `${spec.replace(/[^a-z0-9]/gi, "_")}.f32`);
    log(`--- ${spec}`);
    t0 = performance.now();
    const child = spawnSync(process.execPath, [self, "--one", spec, "--feats", file], {
      encoding: "utf8",
      timeout: timeoutS * 1000,
      killSignal: "SIGKILL",
      maxBuffer: 64 * 2 ** 20,
    });
    const wall = seconds(t0);
    if (child.stderr) process.stderr.write(child.stderr);
    const line = (child.stdout ?? "").trim().split("\n").filter((l) => l.startsWith("{")).pop();
    let result: RunResult;
    if (line) {
      result = JSON.parse(line) as RunResult;
    } else {
      const { device, batch } = parseSpec(spec);
      const how = child.error ? `${child.error.message}` : child.signal ? `killed by ${child.signal}` : `exit status ${child.status}`;
      result = { spec, ok: false, requested: device, batch, error: `child printed no result (${how})`, exit: how };
    }
    if (!result.ok && child.stderr) result.stderr_tail = child.stderr.slice(-1500);
    (result as RunResult & { wall_s?: number }).wall_s = wall;
    if (result.ok && existsSync(file)) {
      const buf = readFileSync(file);
      feats.set(spec, new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
    }
    runs.push(result);
    log(result.ok ? `${spec}: ok on ${result.device} (batch ${result.batch}), warm ${result.warm_img_per_s} img/s` : `${spec}: FAILED: ${result.error}`);
    write();
  }
  rmSync(tmp, { recursive: true, force: true });

  // Comparisons: every run against the CPU run and the reference features.
  const refFile = path.join(fixturesRoot, "reference", "feats_clean_real.npy");
  const reference = existsSync(refFile) ? (loadNpy(refFile).data as Float32Array) : undefined;
  const cpuSpec = specs.find((s) => parseSpec(s).device === "cpu" && feats.has(s));
  const cpu = cpuSpec ? feats.get(cpuSpec) : undefined;
  for (const r of runs) {
    const f = feats.get(r.spec);
    if (!f) continue;
    if (cpu) {
      r.max_abs_diff_vs_cpu = maxAbsDiff(f, cpu);
      r.within_tolerance_vs_cpu = r.max_abs_diff_vs_cpu <= TOLERANCE;
    }
    if (reference) {
      r.max_abs_diff_vs_reference = maxAbsDiff(f, reference);
      r.within_tolerance_vs_reference = r.max_abs_diff_vs_reference <= TOLERANCE;
    }
  }
  if (cpu) report.cpu_features_max_abs = cpu.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

  const webgpuRuns = runs.filter((r) => r.requested === "webgpu");
  const cpuOk = runs.some((r) => r.requested === "cpu" && r.ok && r.within_tolerance_vs_reference !== false);
  const webgpuStarted = webgpuRuns.some((r) => r.ok && r.device === "webgpu");
  const webgpuOk = webgpuRuns.length > 0 && webgpuRuns.every((r) => r.ok && r.device === "webgpu" && r.within_tolerance_vs_cpu === true);
  const autoRun = runs.find((r) => r.requested === "auto");
  const cudaRun = runs.find((r) => r.requested === "cuda");
  const allowNoGpu = process.env.CHECK_ALLOW_NO_GPU === "1";
  report.summary = {
    cpu_matches_reference: cpuOk,
    webgpu_started: webgpuStarted,
    webgpu_within_tolerance_of_cpu: webgpuOk,
    webgpu_max_abs_diff_vs_cpu: maxOrNull(webgpuRuns.map((r) => r.max_abs_diff_vs_cpu)),
    auto_picked: autoRun?.ok ? autoRun.device : `failed: ${autoRun?.error ?? "not run"}`,
    auto_notices: autoRun?.notices,
    cuda: cudaRun ? (cudaRun.ok ? `started on ${cudaRun.device}` : `failed: ${cudaRun.error}`) : "not run",
    passed: cpuOk && (webgpuOk || (allowNoGpu && !webgpuStarted)),
  };
  write();
  log(`summary: ${JSON.stringify(report.summary, null, 1)}`);
  log(`wrote ${outFile}`);
  return (report.summary as { passed: boolean }).passed ? 0 : 1;
}

/** `--make-images DIR N`: a derived "fake" set of 256x256 images for the CLI end-to-end run. */
async function makeImages(dir: string, count: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const srcDir = fixture("images", "real");
  const files = readdirSync(srcDir).sort();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const src = path.join(srcDir, files[i % files.length]);
    const turn = Math.floor(i / files.length);
    const img = sharp(src)
      .resize(256, 256, { fit: "cover" })
      .rotate(90 * (turn % 4))
      .blur(0.6 + 0.1 * (turn % 5))
      .modulate({ saturation: 0.8, hue: 10 * (turn % 7) });
    const name = `fake_${String(i).padStart(5, "0")}`;
    if (i % 2 === 0) await img.png().toFile(path.join(dir, `${name}.png`));
    else await img.jpeg({ quality: 95 }).toFile(path.join(dir, `${name}.jpg`));
  }
  log(`wrote ${count} images to ${dir} in ${seconds(t0)} s`);
}

function maxOrNull(values: (number | undefined)[]): number | null {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length > 0 ? Math.max(...known) : null;
}

function pick(env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]));
}

function log(line: string): void {
  process.stderr.write(`[check-gpu] ${line}\n`);
}

async function main(): Promise<number> {
  const one = arg("--one");
  if (one) {
    await runOne(one, arg("--feats") ?? path.join(os.tmpdir(), "check-gpu.f32"));
    return 0;
  }
  const makeDir = arg("--make-images");
  if (makeDir) {
    await makeImages(makeDir, Number(process.argv[process.argv.indexOf("--make-images") + 2] ?? 64));
    return 0;
  }
  return runAll();
}

// Exit explicitly: a GPU provider's threads can keep the event loop alive after the work is done.
main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(2);
  },
);
