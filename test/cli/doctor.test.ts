import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { weightsCachePath } from "../../src/models/cache.js";
import { sidecarPath } from "../../src/models/ensure-weights.js";
import { DEFAULT_WEIGHTS_ID, getWeightsEntry } from "../../src/models/registry.js";
import type { DoctorReport } from "../../src/pipeline/doctor.js";
import { runCli } from "../helpers/cli.js";
import { LAVAPIPE_MANIFEST, scopedEnv } from "../helpers/test-env.js";

const hasGpu = (): boolean => existsSync("/dev/nvidia0");

const setEnv = scopedEnv();

async function doctorJson(...flags: string[]): Promise<DoctorReport> {
  const r = await runCli(["doctor", "--json", ...flags]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as DoctorReport;
}

describe("diffeval doctor", () => {
  it("--json on a machine with only Mesa's software Vulkan: cpu available, cuda and webgpu each with the reason it is not", async (ctx) => {
    if (!existsSync(LAVAPIPE_MANIFEST)) ctx.skip(`no lavapipe (${LAVAPIPE_MANIFEST}; Debian: mesa-vulkan-drivers)`);
    if (hasGpu()) ctx.skip("an NVIDIA GPU is present: cuda may rightly be available");
    const dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-doctor-"));
    setEnv({ VK_DRIVER_FILES: LAVAPIPE_MANIFEST, DIFFEVAL_CACHE: path.join(dir, "cache") });
    const r = await doctorJson();
    expect(r.node.version).toBe(process.versions.node);
    expect(r.onnxruntime.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.providers.cpu).toEqual({ available: true });
    expect(r.providers.cuda.available).toBe(false);
    // The CUDA provider ships separately; without it the precheck says so before any load.
    if (!r.providers.cuda.provider_library?.present) expect(r.providers.cuda.reason).toMatch(/^CUDA provider not installed/);
    expect(r.providers.cuda.reason).toMatch(/no NVIDIA driver/);
    // The reason `--device auto` gives for passing over WebGPU (test/models/session.test.ts).
    expect(r.providers.webgpu).toMatchObject({ available: false, reason: "no GPU adapter (lavapipe is software)", vulkan_loader: true });
    expect(r.providers.webgpu.adapters).toEqual([{ name: "lavapipe", software: true, manifest: LAVAPIPE_MANIFEST }]);
    // Software-only: nothing was probed, as under --device auto.
    expect(existsSync(path.join(dir, "cache", "probes"))).toBe(false);
    expect(r.sharp.libvips).toMatch(/^\d+\.\d+/);
    expect(r.cache).toEqual({ dir: path.join(dir, "cache"), weights: [] });
    expect(r.cuda_install).toMatch(/^ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
  });

  it("--json with this machine's own drivers gives webgpu's verdict as --device auto would", async () => {
    setEnv({ DIFFEVAL_CACHE: path.join(mkdtempSync(path.join(os.tmpdir(), "diffeval-doctor-")), "cache") });
    const { webgpu, cpu } = (await doctorJson()).providers;
    expect(cpu.available).toBe(true);
    if (!webgpu.available) expect(webgpu.reason).toMatch(/^no (Vulkan loader|Vulkan driver|GPU adapter) /);
    expect(webgpu.adapters.every((a) => typeof a.name === "string" && typeof a.software === "boolean")).toBe(true);
  });

  it("reports cached weights by their memo, hashes them only with --verify, and compares with the registry", async () => {
    const cache = path.join(mkdtempSync(path.join(os.tmpdir(), "diffeval-doctor-")), "cache");
    setEnv({ DIFFEVAL_CACHE: cache });
    const entry = getWeightsEntry(DEFAULT_WEIGHTS_ID);
    const file = weightsCachePath(entry);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, "not the Inception weights");
    const stray = path.join(cache, "weights", "openai--clip-vit-base-patch32", "model.safetensors");
    mkdirSync(path.dirname(stray), { recursive: true });
    writeFileSync(stray, "not a CLIP either");

    const before = await doctorJson();
    // In file-name order: weights/openai--clip-vit-base-patch32/ sorts before pt_inception-*.
    expect(before.cache.weights.map((w) => [w.id, w.path, w.status, w.sha256])).toEqual([
      ["openai/clip-vit-base-patch32", stray, "unverified", null],
      [entry.id, file, "unverified", null],
    ]);
    expect(existsSync(sidecarPath(file))).toBe(false); // nothing was hashed

    const verified = await doctorJson("--verify");
    expect(verified.cache.weights.map((w) => [w.status, w.bytes])).toEqual([
      ["no-expected-hash", statSync(stray).size], // the registry records no hash for encoder files yet
      ["mismatch", statSync(file).size],
    ]);
    expect(JSON.parse(readFileSync(sidecarPath(file), "utf8")).sha256).toBe(verified.cache.weights[1].sha256);

    // A memo is trusted while size and mtime match, as ensure-weights.ts trusts it.
    const st = statSync(file);
    writeFileSync(sidecarPath(file), JSON.stringify({ sha256: entry.sha256, size: st.size, mtimeMs: st.mtimeMs }));
    expect((await doctorJson()).cache.weights[1]).toMatchObject({ status: "verified", sha256: entry.sha256 });
  });

  it("prints short aligned lines for a bug report", async () => {
    setEnv({ DIFFEVAL_CACHE: path.join(mkdtempSync(path.join(os.tmpdir(), "diffeval-doctor-")), "cache") });
    const r = await runCli(["doctor"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^diffeval {12}\d/);
    expect(r.stdout).toMatch(/^device cpu {10}available$/m);
    expect(r.stdout).toMatch(/^device cuda {9}(available|not available: .+)$/m);
    expect(r.stdout).toMatch(/^device webgpu {7}(available|not available: .+)$/m);
    expect(r.stdout).toMatch(/^cuda install {8}ONNXRUNTIME_NODE_INSTALL=cuda12/m);
    // Every value starts in the same column.
    for (const line of lines) expect(line.slice(0, 20).trimEnd().length, line).toBeLessThan(20);
    expect(lines.every((l) => l.length > 20 && l[20] !== " ")).toBe(true);
  });
});
