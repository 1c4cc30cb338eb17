import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkGeneratorSpec, createGenerator } from "../../src/generators/registry.js";

const workflow = {
  "7": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "m" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 } },
  "3": { class_type: "KSampler", inputs: { positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0], seed: 0, steps: 20, cfg: 8 } },
};

async function specError(spec: unknown): Promise<{ code?: string; message: string }> {
  return createGenerator(spec).then(
    () => ({ message: "no error" }),
    (e: { code?: string; message: string }) => e,
  );
}

describe("createGenerator", () => {
  it("builds each external generator from its spec", async () => {
    expect((await createGenerator({ type: "command", argv: ["gen", "{out}"] })).name).toBe("command");
    const a1111 = await createGenerator({ type: "a1111", baseUrl: "http://127.0.0.1:7860", concurrency: 2 });
    expect([a1111.name, a1111.concurrency]).toEqual(["a1111", 2]);
    expect((await createGenerator({ type: "comfyui", baseUrl: "http://127.0.0.1:8188", workflow })).name).toBe("comfyui");
  });

  it("reads a ComfyUI workflow file relative to baseDir", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-registry-"));
    try {
      writeFileSync(path.join(dir, "wf.json"), JSON.stringify(workflow));
      const gen = await createGenerator({ type: "comfyui", baseUrl: "http://127.0.0.1:8188", workflow: "wf.json" }, { baseDir: dir });
      expect(gen.name).toBe("comfyui");
      const err = await createGenerator({ type: "comfyui", baseUrl: "http://x", workflow: "missing.json" }, { baseDir: dir }).catch((e) => e);
      expect(err.message).toMatch(/generator\.workflow: cannot read .*missing\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("builds the analytic generator lazily", async () => {
    const gen = await createGenerator({ type: "analytic", steps: 10 });
    expect(gen.name).toBe("analytic");
  });

  it("builds the onnx-sd generator without opening the export (it opens on the first image)", async () => {
    const gen = await createGenerator({ type: "onnx-sd", model: "sd", device: "cpu", scheduler: "euler" }, { baseDir: "/nowhere" });
    expect([gen.name, gen.concurrency]).toEqual(["onnx-sd", 1]);
    const request = { prompt: "p", negativePrompt: "", cfgScale: 3, seed: 0, steps: 2, width: 64, height: 64, extra: {} };
    const err = await gen.generate(request).catch((e) => e);
    expect(err.code).toBe("E_SD_EXPORT");
    expect(err.message).toContain(path.join("/nowhere", "sd"));
    await gen.close?.();
  });

  it("names the bad field", async () => {
    expect((await specError({ type: "dalle" })).message).toMatch(/generator\.type must be one of command, a1111, comfyui, analytic, onnx-sd/);
    expect((await specError({ type: "onnx-sd" })).message).toMatch(/generator\.model is required for the "onnx-sd" generator/);
    expect((await specError({ type: "onnx-sd", model: "m", device: "tpu" })).message).toMatch(/generator\.device must be auto, cpu, cuda or webgpu, got "tpu"/);
    expect((await specError({ type: "onnx-sd", model: "m", scheduler: "lms" })).message).toMatch(/generator\.scheduler must be one of ddim, euler, pndm, got "lms"/);
    expect((await specError({ type: "a1111" })).message).toMatch(/generator\.baseUrl is required/);
    expect((await specError({ type: "a1111", baseUrl: "http://x", concurency: 2 })).message).toMatch(/generator\.concurency is not a setting of the "a1111" generator/);
    expect((await specError({ type: "a1111", baseUrl: "http://x", retries: "3" })).message).toMatch(/generator\.retries must be a non-negative integer, got "3"/);
    expect((await specError({ type: "a1111", baseUrl: "http://x", auth: { user: "u" } })).message).toMatch(/generator\.auth must be/);
    expect((await specError({ type: "command", argv: "gen {out}" })).message).toMatch(/generator\.argv must be an array of strings/);
    expect((await specError({ type: "comfyui", baseUrl: "http://x", workflow: 3 })).message).toMatch(/generator\.workflow must be/);
    expect((await specError({ type: "analytic", resolution: 1.5 })).message).toMatch(/generator\.resolution must be a non-negative integer/);
    expect((await specError({ type: "a1111", baseUrl: "x" })).code).toBe("E_GENERATOR_SPEC");
    expect(() => checkGeneratorSpec([], "sweep.generator")).toThrow(/sweep\.generator must be an object/);
  });
});
