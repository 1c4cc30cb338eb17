import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { openSession, parseDevice } from "../../src/models/session.js";
import { OnnxGraph } from "../../src/models/onnx-graph.js";
import { ortMessage } from "../../src/models/ort-message.js";
import { vulkanDrivers } from "../../src/models/vulkan-drivers.js";
import { probeWebGpu } from "../../src/models/webgpu-probe.js";
import { fixtureModelPath } from "../helpers/model.js";
import { fixture, projectRoot } from "../helpers/fixtures.js";
import { LAVAPIPE_MANIFEST, scopedEnv } from "../helpers/test-env.js";

function reluModel(): Uint8Array {
  const g = new OnnxGraph();
  g.node("Relu", ["x"], "y");
  return g.toModelBytes({ name: "relu", inputs: [{ name: "x", dims: ["n", 4] }], outputs: [{ name: "y", dims: ["n", 4] }], opset: 17 });
}

const tmpRoot = () => mkdtempSync(path.join(os.tmpdir(), "diffeval-session-"));

/** Writes a Vulkan ICD manifest loading `library` and returns its path. */
function icdManifest(dir: string, file: string, library: string): string {
  mkdirSync(dir, { recursive: true });
  const p = path.join(dir, file);
  writeFileSync(p, JSON.stringify({ file_format_version: "1.0.0", ICD: { library_path: library, api_version: "1.3.0" } }));
  return p;
}


const setEnv = scopedEnv();

describe("device selection", () => {
  it("auto falls back to a provider that works and says why it skipped the others", async () => {
    const opened = await openSession(reluModel(), "auto");
    // This machine class has no GPU: whatever auto picked must run, and cpu is always last.
    expect(["cpu", "cuda", "webgpu"]).toContain(opened.device);
    if (opened.device === "cpu") expect(opened.skipped.map((s) => s.split(":")[0])).toEqual(["cuda", "webgpu"]);
    await opened.session.release();
  });

  it("an explicit provider that cannot start is an E_DEVICE error with a hint", async () => {
    const attempt = openSession(reluModel(), "cuda").then(
      (o) => o.session.release().then(() => "started"),
      (e: { code: string; message: string }) => e,
    );
    const r = await attempt;
    if (r === "started") return; // a machine with the CUDA provider installed
    expect(r).toMatchObject({ code: "E_DEVICE", message: expect.stringContaining("ONNXRUNTIME_NODE_INSTALL=cuda12") });
  });

  it("rejects unknown device names", () => {
    expect(() => parseDevice("tpu")).toThrow(/auto, cpu, cuda, webgpu/);
    expect(parseDevice("webgpu")).toBe("webgpu");
  });
});

describe("Vulkan drivers as the loader finds them", () => {
  it("reads VK_DRIVER_FILES (files and folders) and tells lavapipe and SwiftShader from hardware drivers", () => {
    const dir = tmpRoot();
    const icd = path.join(dir, "icd.d");
    icdManifest(icd, "lvp_icd.x86_64.json", "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so");
    icdManifest(icd, "nvidia_icd.json", "libGLX_nvidia.so.0");
    writeFileSync(path.join(icd, "broken_icd.json"), "{ not json");
    const swift = icdManifest(path.join(dir, "chromium"), "vk_swiftshader_icd.json", "./libvk_swiftshader.so");
    const env = { VK_DRIVER_FILES: `${icd}:${swift}:${path.join(dir, "missing.json")}` };
    const found = vulkanDrivers(env).map((d) => [d.name, d.software ?? "hardware"]);
    expect(found).toEqual([
      ["broken", "hardware"],
      ["lvp", "lavapipe"],
      ["nvidia", "hardware"],
      ["vk_swiftshader", "SwiftShader"],
    ]);
    // The older variable name works the same way when the new one is unset.
    expect(vulkanDrivers({ VK_ICD_FILENAMES: swift }).map((d) => d.software)).toEqual(["SwiftShader"]);
  });

  it("searches the XDG folders' vulkan/icd.d, plus VK_ADD_DRIVER_FILES", () => {
    const dir = tmpRoot();
    const data = icdManifest(path.join(dir, "data", "vulkan", "icd.d"), "radeon_icd.x86_64.json", "/usr/lib/libvulkan_radeon.so");
    const config = icdManifest(path.join(dir, "config", "vulkan", "icd.d"), "intel_icd.x86_64.json", "/usr/lib/libvulkan_intel.so");
    const added = icdManifest(path.join(dir, "extra"), "lvp_icd.json", "libvulkan_lvp.so");
    const env = { HOME: dir, XDG_DATA_DIRS: path.join(dir, "data"), XDG_CONFIG_DIRS: path.join(dir, "config"), VK_ADD_DRIVER_FILES: added };
    const manifests = vulkanDrivers(env).map((d) => d.manifest);
    // /etc/vulkan/icd.d is always searched and may hold this machine's own drivers, between the two.
    expect(manifests[0]).toBe(added);
    expect(manifests.indexOf(config)).toBeGreaterThan(0);
    expect(manifests.indexOf(data)).toBeGreaterThan(manifests.indexOf(config));
  });
});

describe("onnxruntime's messages in one line", () => {
  it("drops the source file, the C++ signature and the failed condition", () => {
    const raw =
      "/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\n";
    expect(ortMessage(new Error(raw))).toBe("Failed to get a WebGPU adapter: No supported adapters");
    expect(ortMessage(new Error("[ErrorCode:Fail] : 1 : FAIL : /src/a.cc:7 onnxruntime::F(int) out of memory"))).toBe("out of memory");
    expect(ortMessage(new Error("plain message\nsecond line"))).toBe("plain message");
    expect(ortMessage("x".repeat(500), 50)).toHaveLength(50);
  });
});

describe("the WebGPU probe", () => {
  it("asks a child process, remembers the verdict per machine, and asks again when the drivers' environment changes", async () => {
    const dir = tmpRoot();
    // A "hardware" driver whose library does not exist: the loader cannot load it, so no adapter.
    const manifest = icdManifest(path.join(dir, "icd.d"), "acme_icd.json", path.join(dir, "libvulkan_acme.so"));
    const env = { ...process.env, DIFFEVAL_CACHE: path.join(dir, "cache"), VK_DRIVER_FILES: manifest };
    const drivers = vulkanDrivers(env);
    const first = await probeWebGpu(drivers, undefined, env);
    expect(first).toMatchObject({ ok: false, cached: false });
    // onnxruntime's own words, without its source paths.
    expect(first!.reason).not.toMatch(/\.cc:\d+|onnxruntime::/);
    expect(readdirSync(path.join(dir, "cache", "probes"))).toHaveLength(1);
    const again = await probeWebGpu(drivers, undefined, env);
    expect(again).toMatchObject({ ok: false, cached: true, reason: first!.reason });
    const steered = await probeWebGpu(drivers, undefined, { ...env, VK_LOADER_DEBUG: "error" });
    expect(steered).toMatchObject({ cached: false });
    expect(readdirSync(path.join(dir, "cache", "probes"))).toHaveLength(2);
    console.log(`WebGPU probe: ${first!.ms} ms in a child process, then read from the cache`);
  });

  it("auto passes over a software Vulkan driver without loading it, in one short reason", async (ctx) => {
    if (!hasVulkanLoader()) ctx.skip("no Vulkan loader (libvulkan.so.1): webgpu is skipped before any driver is read");
    const dir = tmpRoot();
    const lvp = icdManifest(dir, "lvp_icd.x86_64.json", "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so");
    setEnv({ VK_DRIVER_FILES: lvp, DIFFEVAL_CACHE: path.join(dir, "cache") });
    const opened = await openSession(reluModel(), "auto");
    await opened.session.release();
    if (opened.device === "cuda") return; // CUDA comes before WebGPU
    expect(opened.skipped.find((s) => s.startsWith("webgpu:"))).toBe("webgpu: no GPU adapter (lavapipe is software)");
    // Software-only: nothing to ask a child about.
    expect(existsSync(path.join(dir, "cache", "probes"))).toBe(false);
  });

  it("--device webgpu takes a software adapter, with a notice, or fails quietly naming what it lacks", async (ctx) => {
    if (!existsSync(LAVAPIPE_MANIFEST)) ctx.skip(`no lavapipe (${LAVAPIPE_MANIFEST}; Debian: mesa-vulkan-drivers)`);
    const dir = tmpRoot();
    setEnv({ VK_DRIVER_FILES: LAVAPIPE_MANIFEST, DIFFEVAL_CACHE: path.join(dir, "cache") });
    const r = await openSession(reluModel(), "webgpu").then(
      async (o) => (await o.session.release(), o),
      (e: { code: string; message: string }) => e,
    );
    if ("session" in r) {
      // A Mesa whose lavapipe Dawn accepts (Mesa 23+).
      expect(r).toMatchObject({ device: "webgpu", notice: expect.stringMatching(/software renderer lavapipe/) });
    } else {
      // Debian 12's Mesa 22.3: Dawn rejects lavapipe ("Vulkan shaderUniform*ArrayDynamicIndexing required").
      expect(r.code).toBe("E_DEVICE");
      expect(r.message).toMatch(/^could not start onnxruntime on 'webgpu': no WebGPU adapter \(lavapipe: .+\)\. /);
      expect(r.message).not.toMatch(/\.cc:\d+|\.cpp:\d+/);
    }
  });
});

/** Whether the dynamic linker knows the Vulkan loader (Debian: libvulkan1). */
function hasVulkanLoader(): boolean {
  try {
    return readFileSync("/etc/ld.so.cache").includes("libvulkan.so.1");
  } catch {
    return false;
  }
}

describe("diffeval fid with the default device on a machine without a GPU", () => {
  /** Native libraries write to file descriptor 2 directly, so the CLI runs as a real process. */
  const bin = path.join(projectRoot, "dist", "cli", "bin.js");
  const nativeText = /XDG_RUNTIME_DIR|^(Warning|Error): |^ - While |^\s+at \w+ \(|\.(cc|cpp|h):\d+|onnxruntime_src|dawn|Loader Message/im;

  it("prints one short device line and nothing from the native libraries, probing once then from the cache", async (ctx) => {
    if (vulkanDrivers().length === 0) {
      const why = "no Vulkan ICD manifest on this machine (install mesa-vulkan-drivers to run this check)";
      console.warn(`skipped: ${why}`);
      ctx.skip(why);
    }
    const weights = await fixtureModelPath(); // the converted fixture weights: no conversion in the timed runs
    const cache = path.join(tmpRoot(), "cache");
    const args = [bin, "fid", "--real", fixture("images", "real"), "--fake", fixture("images", "fake"), "--weights", weights, "--threads", "0"];
    // Where a GPU could be there (NVIDIA or DRM render nodes), auto may rightly take it.
    const gpu = existsSync("/dev/nvidia0") || (existsSync("/dev/dri") && readdirSync("/dev/dri").some((f) => f.startsWith("renderD")));
    for (const run of ["probing", "cached"]) {
      const t0 = performance.now();
      const { stderr, stdout } = await promisify(execFile)(process.execPath, args, { env: { ...process.env, DIFFEVAL_CACHE: cache } });
      console.log(`fid (${run}): ${Math.round(performance.now() - t0)} ms`);
      expect(stdout).toMatch(/^FID {2}\d/);
      expect(stderr).not.toMatch(nativeText);
      for (const line of stderr.split("\n")) expect(line.length, line).toBeLessThan(240);
      expect(stderr).toMatch(gpu ? /^device: (cpu|webgpu|cuda)\b/m : /^device: cpu \(.*webgpu: no GPU adapter .*\)$/m);
    }
    expect(readdirSync(path.join(cache, "probes")).length).toBeGreaterThan(0);
  });
});
