import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { createComfyGenerator, workflowNodes, type ComfyWorkflow } from "../../src/generators/comfyui.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { seedOfPixel, seedPng } from "../helpers/a1111-server.js";
import { startComfyServer, type ComfyTestServer } from "../helpers/comfyui-server.js";

/**
 * The standard SD1.5 txt2img graph in API format, with node ids deliberately unlike the usual
 * "3"/"6"/"7": the negative encoder comes first in key order, so neither a fixed id nor "the
 * second CLIPTextEncode" would find it. A LoraLoader sits between checkpoint and sampler.
 */
function workflow(): ComfyWorkflow {
  return {
    "neg-zz": { class_type: "CLIPTextEncode", inputs: { text: "WORKFLOW NEGATIVE", clip: ["lora~1", 1] } },
    "42": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "v1-5.safetensors" } },
    "lora~1": { class_type: "LoraLoader", inputs: { lora_name: "detail.safetensors", strength_model: 1, strength_clip: 1, model: ["42", 0], clip: ["42", 1] } },
    "pos-a": { class_type: "CLIPTextEncode", inputs: { text: "WORKFLOW POSITIVE", clip: ["lora~1", 1] } },
    "1000": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 4 } },
    "s": {
      class_type: "KSampler",
      inputs: { model: ["lora~1", 0], positive: ["pos-a", 0], negative: ["neg-zz", 0], latent_image: ["1000", 0], seed: 5, steps: 20, cfg: 8, sampler_name: "euler", scheduler: "normal", denoise: 1 },
    },
    "dec": { class_type: "VAEDecode", inputs: { samples: ["s", 0], vae: ["42", 2] } },
    "out": { class_type: "SaveImage", inputs: { filename_prefix: "diffeval", images: ["dec", 0] } },
  };
}

function request(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return { prompt: "a blue square", negativePrompt: "red", cfgScale: 3.5, seed: 4321, steps: 9, width: 24, height: 16, extra: {}, ...over };
}

const servers: ComfyTestServer[] = [];
async function server(options?: Parameters<typeof startComfyServer>[1]): Promise<ComfyTestServer> {
  const s = await startComfyServer(seedPng, options);
  servers.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe("comfyui generator", () => {
  it("finds the nodes by class_type and links, not by id", () => {
    expect(workflowNodes(workflow())).toEqual({ sampler: "s", positive: "pos-a", negative: "neg-zz", latent: "1000", loras: ["lora~1"] });
  });

  it("writes cfg, seed, texts and size into a copy of the workflow, with batch_size 1", async () => {
    const s = await server();
    const wf = workflow();
    const before = JSON.stringify(wf);
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: wf, pollIntervalMs: 10 });
    const image = await gen.generate(request());

    // What the server executed (found by its own walk from SaveImage) is the request.
    expect(s.generated).toHaveLength(1);
    expect(s.generated[0]).toMatchObject({ prompt: "a blue square", negativePrompt: "red", cfgScale: 3.5, seed: 4321, steps: 9, width: 24, height: 16 });
    const sent = s.submissions[0];
    expect(sent.prompt["1000"].inputs.batch_size).toBe(1);
    expect(typeof sent.client_id).toBe("string");
    expect(JSON.stringify(wf)).toBe(before); // the caller's workflow is untouched

    expect(image.format).toBe("png");
    const { data, info } = await sharp(image.bytes).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([24, 16]);
    expect(seedOfPixel(data[0], data[1])).toBe(4321);
    expect(image.used).toMatchObject({ seed: 4321, cfgScale: 3.5, negativePrompt: "red", batchSize: 1 });
  });

  it("sets the LoRA strength and sampler extras from `extra`", async () => {
    const s = await server();
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: workflow(), pollIntervalMs: 10 });
    const image = await gen.generate(request({ extra: { strength_model: 0.35, sampler: "dpmpp_2m", unrelated: "x" } }));
    expect(s.generated[0].extra).toMatchObject({ strength_model: 0.35, sampler_name: "dpmpp_2m" });
    expect(s.submissions[0].prompt["lora~1"].inputs.strength_clip).toBe(1);
    expect(image.used.extra).toEqual({ strength_model: 0.35, sampler: "dpmpp_2m" });
  });

  it("handles KSamplerAdvanced (noise_seed) and conditioning that passes through other nodes", async () => {
    const s = await server();
    const wf = workflow();
    const { seed: _seed, denoise: _denoise, ...rest } = wf.s.inputs;
    wf.s = { class_type: "KSamplerAdvanced", inputs: { ...rest, add_noise: "enable", noise_seed: 0, start_at_step: 0, end_at_step: 10000, return_with_leftover_noise: "disable" } };
    wf.area = { class_type: "ConditioningSetArea", inputs: { conditioning: ["neg-zz", 0], width: 64, height: 64, x: 0, y: 0, strength: 1 } };
    wf.s.inputs.negative = ["area", 0];
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: wf, pollIntervalMs: 10 });
    await gen.generate(request({ seed: 77 }));
    expect(s.submissions[0].prompt.s.inputs.noise_seed).toBe(77);
    expect(s.generated[0]).toMatchObject({ seed: 77, negativePrompt: "red" });
  });

  it("rejects a workflow without a KSampler, naming what it has", () => {
    const wf = workflow();
    delete wf.s;
    expect(() => createComfyGenerator({ baseUrl: "http://127.0.0.1:8188", workflow: wf })).toThrow(
      /no KSampler or KSamplerAdvanced node \(its nodes: "42" \(CheckpointLoaderSimple\), "1000" \(EmptyLatentImage\), "neg-zz" \(CLIPTextEncode\), .*"out" \(SaveImage\)\)/,
    );
  });

  it("rejects a negative link that does not lead to a CLIPTextEncode, naming the nodes", () => {
    const wf = workflow();
    wf.s.inputs.negative = ["42", 1];
    let err: any;
    try {
      workflowNodes(wf);
    } catch (e) {
      err = e;
    }
    expect(err.code).toBe("E_GENERATOR_SPEC");
    expect(err.message).toMatch(/sampler node "s" \(KSampler\) "negative" does not lead to a CLIPTextEncode node; followed: "42" \(CheckpointLoaderSimple\)/);
  });

  it("rejects a UI-format workflow and a shared positive/negative encoder", () => {
    expect(() => createComfyGenerator({ baseUrl: "http://x", workflow: { nodes: [], links: [] } })).toThrow(/UI format.*Save \(API\)/);
    const wf = workflow();
    wf.s.inputs.negative = ["pos-a", 0];
    expect(() => workflowNodes(wf)).toThrow(/both lead to CLIPTextEncode node "pos-a"/);
  });

  it("reports an execution error from the history with node and exception", async () => {
    const s = await server();
    s.failExecutionNext(1, "CUDA out of memory");
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: workflow(), pollIntervalMs: 10 });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/failed: node "s" \(KSampler\): RuntimeError: CUDA out of memory/);
  });

  it("reports a workflow the server rejects (400 node_errors) without retrying", async () => {
    const s = await server();
    const wf = workflow();
    wf.out.inputs.images = ["s", 0]; // SaveImage fed latents: the server cannot run it
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: wf, pollIntervalMs: 10, retries: 3, backoffMs: 1 });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.message).toMatch(/HTTP 400.*must come from VAEDecode/);
    expect(s.submissions).toHaveLength(1);
  });

  it("retries 500s on queue, history and view, and generates the image once", async () => {
    const s = await server();
    s.failNext(2);
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: workflow(), pollIntervalMs: 10, retries: 3, backoffMs: 5 });
    const image = await gen.generate(request());
    expect(image.format).toBe("png");
    expect(s.imageCount).toBe(1);
  });

  it("removes a queued prompt when the caller aborts", async () => {
    const s = await server({ delayMs: 600 });
    const gen = createComfyGenerator({ baseUrl: s.baseUrl, workflow: workflow(), pollIntervalMs: 10 });
    const controller = new AbortController();
    const generating = gen.generate(request(), controller.signal);
    // Abort once the prompt is queued (and still waiting for the server's single worker).
    while (s.submissions.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    controller.abort(new Error("stopped by test"));
    await expect(generating).rejects.toThrow("stopped by test");
    await new Promise((r) => setTimeout(r, 800));
    expect(s.cancelled).toBe(1);
    expect(s.imageCount).toBe(0);
  });

  it("rejects a negative seed (KSampler has no -1)", async () => {
    const gen = createComfyGenerator({ baseUrl: "http://127.0.0.1:1", workflow: workflow() });
    await expect(gen.generate(request({ seed: -1 }))).rejects.toThrow(/seed must be an integer >= 0/);
  });
});
