/**
 * A real HTTP server on 127.0.0.1 that speaks the part of the ComfyUI API the adapter uses:
 * `POST /prompt` (queue; 400 with node_errors for a graph it cannot run), `GET /history/{id}`
 * (`{}` until the prompt has run), `GET /view?filename&subfolder&type`, and `POST /queue
 * {delete}`. Every route also answers under `/api`, as ComfyUI's do.
 *
 * It "executes" the graph the way ComfyUI would see it, by following links from the output node
 * (SaveImage/PreviewImage <- VAEDecode <- KSampler) and from the sampler's positive/negative/
 * latent_image/model inputs, independently of the adapter's own node discovery, so the test
 * shows that the cfg, seed and negative text the adapter wrote are the ones a ComfyUI would use.
 * Prompts run one at a time in queue order; each image is counted.
 *
 * `POST /upload/image` (multipart/form-data, field `image`, optional `subfolder`, `type`,
 * `overwrite`) stores the file under the input folder and answers `{name, subfolder, type}`. A
 * ControlNetApplyAdvanced on the sampler's positive path is read like ComfyUI's executor would:
 * its LoadImage must name an uploaded file (else a node error), and its strength, start/end and
 * image name reach the backend's request as `extra.control_*`.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { readBody, send, type ImageBackend } from "./a1111-server.js";

export interface ComfyServerOptions {
  /** Wait this long before running each queued prompt (to kill a sweep midway). */
  delayMs?: number;
}

export interface ComfyTestServer {
  baseUrl: string;
  /** Every file POSTed to /upload/image, in arrival order. */
  uploads: { name: string; subfolder: string; type: string; overwrite: string | undefined; bytes: Uint8Array }[];
  /** Every body POSTed to /prompt, parsed, in arrival order (rejected ones too). */
  submissions: { prompt: Record<string, any>; client_id?: string }[];
  /** One entry per image generated (a batch of k counts k), in order. */
  generated: GenerationRequest[];
  readonly imageCount: number;
  /** Prompts removed from the queue by POST /queue {delete} before they ran. */
  readonly cancelled: number;
  /** Answer the next `n` HTTP requests (any route) with `status` (default 500). */
  failNext(n: number, status?: number): void;
  /** Make the next `n` prompts fail during execution (history status "error"). */
  failExecutionNext(n: number, message?: string): void;
  close(): Promise<void>;
}

type Graph = Record<string, { class_type: string; inputs: Record<string, any> }>;

interface Job {
  id: string;
  number: number;
  graph: Graph;
  clientId?: string;
  run: RunPlan;
}

/** What the graph asks for: the request per image, and where the images go. */
interface RunPlan {
  outputNode: string;
  outputType: "output" | "temp";
  prefix: string;
  samplerNode: string;
  samplerClass: string;
  batchSize: number;
  request: GenerationRequest;
}

class GraphError extends Error {
  constructor(
    readonly nodeId: string,
    readonly classType: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startComfyServer(backend: ImageBackend, options: ComfyServerOptions = {}): Promise<ComfyTestServer> {
  const submissions: ComfyTestServer["submissions"] = [];
  const uploads: ComfyTestServer["uploads"] = [];
  const generated: GenerationRequest[] = [];
  const history = new Map<string, unknown>();
  const files = new Map<string, Uint8Array>();
  const queue: Job[] = [];
  let failures = { n: 0, status: 500 };
  let executionFailures = { n: 0, message: "" };
  let cancelled = 0;
  let counter = 0;
  let number = 0;
  let running = false;
  let closed = false;

  const runQueue = async () => {
    if (running) return;
    running = true;
    while (queue.length > 0 && !closed) {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      const job = queue.shift();
      if (!job || closed) continue; // deleted while waiting
      history.set(job.id, await execute(job));
    }
    running = false;
  };

  const execute = async (job: Job) => {
    const promptField = [job.number, job.id, job.graph, { client_id: job.clientId }, [job.run.outputNode]];
    const started = ["execution_start", { prompt_id: job.id, timestamp: Date.now() }];
    if (executionFailures.n > 0) {
      executionFailures.n--;
      const error = {
        prompt_id: job.id,
        node_id: job.run.samplerNode,
        node_type: job.run.samplerClass,
        executed: [],
        exception_message: executionFailures.message,
        exception_type: "RuntimeError",
        traceback: [],
      };
      return { prompt: promptField, outputs: {}, status: { status_str: "error", completed: false, messages: [started, ["execution_error", error]] }, meta: {} };
    }
    const images = [];
    for (let k = 0; k < job.run.batchSize; k++) {
      // ComfyUI draws the whole batch's noise from one seed; the index tells the images apart.
      const request = { ...job.run.request, extra: { ...job.run.request.extra, batch_index: k } };
      const bytes = await backend(request);
      generated.push(request);
      const filename = `${job.run.prefix}_${String(++counter).padStart(5, "0")}_.png`;
      files.set(fileKey(filename, "", job.run.outputType), bytes);
      images.push({ filename, subfolder: "", type: job.run.outputType });
    }
    return {
      prompt: promptField,
      outputs: { [job.run.outputNode]: { images } },
      status: { status_str: "success", completed: true, messages: [started, ["execution_success", { prompt_id: job.id }]] },
      meta: {},
    };
  };

  const postPrompt = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = JSON.parse(await readBody(req)) as { prompt: Graph; client_id?: string };
    submissions.push(body);
    let run: RunPlan;
    try {
      run = runPlan(body.prompt, (name) => files.has(fileKey(path.posix.basename(name), path.posix.dirname(name).replace(/^\.$/, ""), "input")));
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      const error = { type: "prompt_outputs_failed_validation", message: err.message, details: "", extra_info: {} };
      const nodeErrors = err.nodeId
        ? { [err.nodeId]: { errors: [{ type: "invalid_graph", message: err.message, details: "" }], dependent_outputs: [], class_type: err.classType } }
        : {};
      return send(res, 400, { error, node_errors: nodeErrors });
    }
    const job: Job = { id: randomUUID(), number: number++, graph: body.prompt, clientId: body.client_id, run };
    queue.push(job);
    send(res, 200, { prompt_id: job.id, number: job.number, node_errors: {} });
    void runQueue();
  };

  const postUpload = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const raw = await readRaw(req);
    // Undici's Request parses multipart/form-data as fetch wrote it (boundary from the header).
    const form = await new Request("http://x/upload/image", { method: "POST", headers: { "content-type": req.headers["content-type"] ?? "" }, body: raw }).formData();
    const image = form.get("image");
    if (!(image instanceof Blob)) return send(res, 400, { error: "no image field" });
    const name = (image as File).name;
    const subfolder = String(form.get("subfolder") ?? "");
    const type = String(form.get("type") ?? "input");
    const bytes = new Uint8Array(await image.arrayBuffer());
    const overwrite = form.get("overwrite");
    uploads.push({ name, subfolder, type, overwrite: overwrite === null ? undefined : String(overwrite), bytes });
    files.set(fileKey(name, subfolder, type), bytes);
    send(res, 200, { name, subfolder, type });
  };

  const postQueue = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = JSON.parse(await readBody(req)) as { delete?: string[]; clear?: boolean };
    const doomed = new Set(body.clear ? queue.map((j) => j.id) : (body.delete ?? []));
    for (let i = queue.length - 1; i >= 0; i--) {
      if (doomed.has(queue[i].id)) {
        queue.splice(i, 1);
        cancelled++;
      }
    }
    send(res, 200, {});
  };

  const view = (url: URL, res: http.ServerResponse) => {
    const filename = url.searchParams.get("filename") ?? "";
    const subfolder = url.searchParams.get("subfolder") ?? "";
    const type = url.searchParams.get("type") ?? "output";
    // ComfyUI refuses paths that climb out of its folders.
    if (filename.includes("..") || filename.startsWith("/") || subfolder.includes("..")) return send(res, 400, { error: "bad path" });
    const bytes = files.get(fileKey(filename, subfolder, type));
    if (!bytes) return send(res, 404, { error: "not found" });
    res.writeHead(200, { "content-type": "image/png", "content-length": bytes.length });
    res.end(bytes);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const pathname = url.pathname.replace(/^\/api(?=\/)/, "");
    if (failures.n > 0) {
      failures.n--;
      return send(res, failures.status, { error: `injected failure ${failures.status}` });
    }
    const fail = (err: unknown) => send(res, 500, { error: String(err) });
    if (req.method === "POST" && pathname === "/prompt") return void postPrompt(req, res).catch(fail);
    if (req.method === "POST" && pathname === "/queue") return void postQueue(req, res).catch(fail);
    if (req.method === "POST" && pathname === "/upload/image") return void postUpload(req, res).catch(fail);
    const historyMatch = /^\/history\/([^/]+)$/.exec(pathname);
    if (req.method === "GET" && historyMatch) {
      const id = decodeURIComponent(historyMatch[1]);
      const entry = history.get(id);
      return send(res, 200, entry ? { [id]: entry } : {});
    }
    if (req.method === "GET" && pathname === "/view") return view(url, res);
    send(res, 404, { error: "not found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    uploads,
    submissions,
    generated,
    get imageCount() {
      return generated.length;
    },
    get cancelled() {
      return cancelled;
    },
    failNext: (n, status = 500) => {
      failures = { n, status };
    },
    failExecutionNext: (n, message = "CUDA out of memory (injected)") => {
      executionFailures = { n, message };
    },
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function fileKey(filename: string, subfolder: string, type: string): string {
  return `${type}/${subfolder}/${filename}`;
}

/** Follows the graph from its output node the way ComfyUI's executor would (`uploaded`: whether LoadImage's name is in the input folder). */
function runPlan(graph: Graph, uploaded: (name: string) => boolean = () => false): RunPlan {
  const outputs = Object.keys(graph).filter((id) => ["SaveImage", "PreviewImage"].includes(graph[id]?.class_type));
  if (outputs.length === 0) throw new GraphError("", "", "Prompt has no outputs");
  const outputNode = outputs[0];
  const decode = source(graph, outputNode, "images", ["VAEDecode"]);
  const samplerNode = source(graph, decode, "samples", ["KSampler", "KSamplerAdvanced"]);
  const sampler = graph[samplerNode];
  const s = sampler.inputs;
  const seed = sampler.class_type === "KSamplerAdvanced" ? s.noise_seed : s.seed;
  if (!Number.isInteger(seed) || seed < 0) throw new GraphError(samplerNode, sampler.class_type, `seed ${seed} out of range 0..2^64-1`);
  if (typeof s.cfg !== "number") throw new GraphError(samplerNode, sampler.class_type, "cfg must be a number");
  const latent = graph[source(graph, samplerNode, "latent_image", ["EmptyLatentImage"])].inputs;
  const extra: GenerationRequest["extra"] = {};
  for (const k of ["sampler_name", "scheduler", "denoise"]) if (s[k] !== undefined) extra[k] = s[k];
  const model = graph[String(s.model?.[0])];
  if (model?.class_type === "LoraLoader" || model?.class_type === "LoraLoaderModelOnly") extra.strength_model = model.inputs.strength_model;
  Object.assign(extra, controlOf(graph, s.positive, uploaded));
  const output = graph[outputNode];
  return {
    outputNode,
    outputType: output.class_type === "SaveImage" ? "output" : "temp",
    prefix: String(output.inputs.filename_prefix ?? "ComfyUI"),
    samplerNode,
    samplerClass: sampler.class_type,
    batchSize: latent.batch_size,
    request: {
      prompt: conditioningText(graph, s.positive),
      negativePrompt: conditioningText(graph, s.negative),
      cfgScale: s.cfg,
      seed,
      steps: s.steps,
      width: latent.width,
      height: latent.height,
      extra,
    },
  };
}

/** The id of the node linked into `input` of node `id`, which must be one of `classes`. */
function source(graph: Graph, id: string, input: string, classes: string[]): string {
  const link = graph[id].inputs[input];
  const from = Array.isArray(link) ? String(link[0]) : "";
  if (!graph[from] || !classes.includes(graph[from].class_type)) {
    throw new GraphError(id, graph[id].class_type, `input "${input}" must come from ${classes.join(" or ")}`);
  }
  return from;
}

/** The next link up a conditioning chain: `conditioning`, or ControlNetApplyAdvanced's positive (output 0) / negative (output 1). */
function conditioningInput(node: Graph[string] | undefined, link: unknown[]): unknown {
  if (node?.class_type === "ControlNetApplyAdvanced") return link[1] === 1 ? node.inputs.negative : node.inputs.positive;
  return node?.inputs.conditioning;
}

/** The text of the CLIPTextEncode at the end of a conditioning link (through pass-throughs). */
function conditioningText(graph: Graph, link: unknown): string {
  for (let hop = 0; hop < 32 && Array.isArray(link); hop++) {
    const node = graph[String(link[0])];
    if (node?.class_type === "CLIPTextEncode") return String(node.inputs.text);
    link = conditioningInput(node, link);
  }
  throw new GraphError("", "", "conditioning does not come from a CLIPTextEncode");
}

/** The ControlNetApplyAdvanced on the positive path, as the backend would apply it: strength, start/end, model and image name. */
function controlOf(graph: Graph, link: unknown, uploaded: (name: string) => boolean): GenerationRequest["extra"] {
  for (let hop = 0; hop < 32 && Array.isArray(link); hop++) {
    const id = String(link[0]);
    const node = graph[id];
    if (node?.class_type === "ControlNetApplyAdvanced") {
      const i = node.inputs;
      for (const k of ["strength", "start_percent", "end_percent"]) {
        if (typeof i[k] !== "number") throw new GraphError(id, node.class_type, `${k} must be a number`);
      }
      const loader = graph[String(i.control_net?.[0])];
      const image = graph[source(graph, id, "image", ["LoadImage", "Canny"])];
      const load = image.class_type === "LoadImage" ? image : graph[String(image.inputs.image?.[0])];
      if (load?.class_type !== "LoadImage" || typeof load.inputs.image !== "string" || !uploaded(load.inputs.image)) {
        throw new GraphError(id, node.class_type, `Invalid image file: ${load?.inputs.image}`);
      }
      return {
        control_strength: i.strength,
        control_start: i.start_percent,
        control_end: i.end_percent,
        control_image: load.inputs.image,
        ...(loader?.class_type === "ControlNetLoader" ? { control_model: loader.inputs.control_net_name } : {}),
      };
    }
    link = conditioningInput(node, link);
  }
  return {};
}

function readRaw(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
