/**
 * The ComfyUI adapter: a user's workflow in API format ("Save (API)"), edited per request and
 * queued over HTTP.
 *
 * API facts (comfyanonymous/ComfyUI server.py; shared/research/generators.md §2):
 * - the API graph maps string node ids to `{ class_type, inputs }`; an input that is a link is
 *   `[src_node_id, output_index]`;
 * - `POST /prompt {prompt, client_id}` answers `{prompt_id, number, node_errors}` or 400
 *   `{error, node_errors}`;
 * - `GET /history/{prompt_id}` is `{}` until the run finishes, then
 *   `{[id]: {outputs: {node: {images: [{filename, subfolder, type}]}}, status: {status_str, completed, messages}}}`;
 * - the bytes come from `GET /view?filename=..&subfolder=..&type=..`.
 *
 * Nodes are found by `class_type` and by following the sampler's links, never by a fixed id
 * (ids differ in every exported workflow). The latent's batch_size is forced to 1, because
 * ComfyUI draws the noise for the whole batch from one `torch.manual_seed(seed)`: image k of a
 * batch depends on the batch size, so only batch 1 gives each image its own seed. ComfyUI
 * reports no per-image seeds, so `used.seed` is the seed written into the workflow.
 *
 * ControlNet: a request with `control` needs a workflow with one `ControlNetApplyAdvanced` (inputs
 * strength, start_percent, end_percent; its `control_net` from a `ControlNetLoader`, its `image`
 * from a `LoadImage`, possibly through a preprocessor such as `Canny`). The control image is
 * uploaded once (`POST /upload/image`, multipart/form-data field `image`, answer `{name,
 * subfolder, type}`; ComfyUI server.py image_upload) and its name written into the LoadImage.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DiffevalError } from "../errors.js";
import type { ControlRequest, GeneratedImage, GenerationRequest, Generator } from "./generator.js";
import { checkBaseUrl, checkCount, clip, createHttpClient, limitConcurrency, type HttpClient } from "./http-client.js";
import { imageFormatOf } from "./image-format.js";

export interface ComfyGeneratorOptions {
  /** e.g. http://127.0.0.1:8188 */
  baseUrl: string;
  /** The API-format graph (an object of `{ class_type, inputs }` keyed by node id). */
  workflow: object;
  /** Prompts queued at once. Default 1. */
  concurrency?: number;
  /** How often `GET /history/{id}` is asked. Default 250 ms. */
  pollIntervalMs?: number;
  /** Limit for one image, from queueing to bytes. Default 10 minutes. */
  timeoutMs?: number;
  /** Extra attempts per HTTP call on network errors and 5xx. Default 3. */
  retries?: number;
  /** First retry delay, doubled per retry. Default 500 ms. */
  backoffMs?: number;
}

export interface ComfyNode {
  class_type: string;
  inputs: Record<string, unknown>;
  [key: string]: unknown;
}
export type ComfyWorkflow = Record<string, ComfyNode>;

/** The node ids the adapter edits, found once per workflow. */
export interface WorkflowNodes {
  sampler: string;
  positive: string;
  negative: string;
  latent: string;
  /** LoraLoader / LoraLoaderModelOnly nodes, which `extra.strength_model` sets. */
  loras: string[];
}

const SERVICE = "ComfyUI";
const SAMPLERS = new Set(["KSampler", "KSamplerAdvanced"]);
const TEXT_ENCODER = "CLIPTextEncode";
const EMPTY_LATENTS = new Set(["EmptyLatentImage", "EmptySD3LatentImage"]);
const LORA_LOADERS = new Set(["LoraLoader", "LoraLoaderModelOnly"]);
/** Extra axes written into the sampler node (KSampler inputs), with friendlier aliases. */
const SAMPLER_EXTRAS: Record<string, string> = { sampler: "sampler_name", sampler_name: "sampler_name", scheduler: "scheduler", denoise: "denoise" };
/** Extra axes written into every LoRA loader. */
const LORA_EXTRAS = new Set(["strength_model", "strength_clip"]);
/** Conditioning chains are short; a longer walk means a cycle. */
const MAX_HOPS = 32;

export function createComfyGenerator(options: ComfyGeneratorOptions): Generator {
  const baseUrl = checkBaseUrl(SERVICE, options.baseUrl);
  const workflow = checkedWorkflow(options.workflow);
  const nodes = workflowNodes(workflow);
  const concurrency = checkCount(SERVICE, "concurrency", options.concurrency, 1, 1);
  const timeoutMs = checkCount(SERVICE, "timeoutMs", options.timeoutMs, 600_000, 1);
  const pollIntervalMs = checkCount(SERVICE, "pollIntervalMs", options.pollIntervalMs, 250, 1);
  const client = createHttpClient({
    service: SERVICE,
    baseUrl,
    retries: checkCount(SERVICE, "retries", options.retries, 3, 0),
    // Each call (queue, poll, view) is short; the whole image has `timeoutMs`.
    timeoutMs: Math.min(timeoutMs, 60_000),
    backoffMs: checkCount(SERVICE, "backoffMs", options.backoffMs, 500, 0),
  });
  const clientId = randomUUID();
  const limit = limitConcurrency(concurrency);
  const run: RunSettings = { client, clientId, timeoutMs, pollIntervalMs, upload: uploadCache(client) };
  return {
    name: "comfyui",
    concurrency,
    generate: (req, signal) => limit(() => generateOne(run, workflow, nodes, req, signal)),
  };
}

interface RunSettings {
  client: HttpClient;
  clientId: string;
  timeoutMs: number;
  pollIntervalMs: number;
  /** The LoadImage value of a control image, uploaded on first use. */
  upload: (file: string, signal?: AbortSignal) => Promise<string>;
}

/** The workflow as an API-format graph, or an error that says what it is instead. */
export function checkedWorkflow(workflow: unknown): ComfyWorkflow {
  if (workflow === null || typeof workflow !== "object" || Array.isArray(workflow)) {
    throw new DiffevalError("E_GENERATOR_SPEC", `${SERVICE} generator: \`workflow\` must be an API-format graph object`);
  }
  if (Array.isArray((workflow as { nodes?: unknown }).nodes)) {
    throw new DiffevalError(
      "E_GENERATOR_SPEC",
      `${SERVICE} generator: \`workflow\` is in the UI format (it has "nodes"/"links"); export it with "Save (API)" instead`,
    );
  }
  for (const [id, node] of Object.entries(workflow)) {
    const n = node as Partial<ComfyNode> | null;
    if (!n || typeof n !== "object" || typeof n.class_type !== "string" || !n.inputs || typeof n.inputs !== "object") {
      throw new DiffevalError("E_GENERATOR_SPEC", `${SERVICE} generator: workflow node "${id}" has no class_type/inputs; is this an API-format workflow?`);
    }
  }
  return workflow as ComfyWorkflow;
}

/** The sampler, its positive/negative text encoders, the empty latent and the LoRA loaders. */
export function workflowNodes(workflow: ComfyWorkflow): WorkflowNodes {
  const sampler = samplerNode(workflow);
  const positive = textEncoderFor(workflow, sampler, "positive");
  const negative = textEncoderFor(workflow, sampler, "negative");
  if (positive === negative) {
    throw specError(`the sampler's positive and negative inputs both lead to CLIPTextEncode node "${positive}"; give the negative prompt its own CLIPTextEncode`);
  }
  const latent = latentNode(workflow, sampler);
  const loras = idsOfClass(workflow, LORA_LOADERS);
  return { sampler, positive, negative, latent, loras };
}

function idsOfClass(workflow: ComfyWorkflow, classes: Set<string>): string[] {
  return Object.keys(workflow).filter((id) => classes.has(workflow[id].class_type));
}

/**
 * The one KSampler/KSamplerAdvanced. With several (a hires-fix second pass, say), the one that
 * starts from an empty latent is the first pass, which is where cfg and seed matter.
 */
function samplerNode(workflow: ComfyWorkflow): string {
  const samplers = idsOfClass(workflow, SAMPLERS);
  if (samplers.length === 0) {
    const found = Object.entries(workflow).map(([id, n]) => `"${id}" (${n.class_type})`).join(", ");
    throw specError(`the workflow has no KSampler or KSamplerAdvanced node (its nodes: ${found || "none"})`);
  }
  if (samplers.length === 1) return samplers[0];
  const first = samplers.filter((id) => EMPTY_LATENTS.has(linkedNode(workflow, workflow[id].inputs.latent_image)?.class_type ?? ""));
  if (first.length === 1) return first[0];
  throw specError(`the workflow has several samplers (nodes ${samplers.map((s) => `"${s}"`).join(", ")}) and not exactly one starts from an empty latent`);
}

function isLink(value: unknown): value is [string | number, number] {
  return Array.isArray(value) && value.length === 2 && (typeof value[0] === "string" || typeof value[0] === "number") && typeof value[1] === "number";
}

function linkedNode(workflow: ComfyWorkflow, value: unknown): ComfyNode | undefined {
  return isLink(value) ? workflow[String(value[0])] : undefined;
}

/**
 * The CLIPTextEncode whose text feeds the sampler's `positive` or `negative` input. Conditioning
 * may pass through nodes between them (ConditioningSetArea, ControlNetApply take `conditioning`;
 * ControlNetApplyAdvanced takes positive/negative and emits them as outputs 0/1), so the walk
 * follows those; anything else is an error naming the nodes it passed.
 */
function textEncoderFor(workflow: ComfyWorkflow, sampler: string, slot: "positive" | "negative"): string {
  const path: string[] = [];
  let link = workflow[sampler].inputs[slot];
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    if (!isLink(link)) {
      throw specError(`${where(sampler, workflow)} input "${slot}" is not a link to a CLIPTextEncode${trail(path)}`);
    }
    const id = String(link[0]);
    const node = workflow[id];
    if (!node) throw specError(`${where(sampler, workflow)} "${slot}" leads to node "${id}", which is not in the workflow${trail(path)}`);
    path.push(`"${id}" (${node.class_type})`);
    if (node.class_type === TEXT_ENCODER) {
      if (typeof node.inputs.text !== "string") {
        throw specError(`CLIPTextEncode node "${id}" (the ${slot} prompt) takes its text from a link; make "text" a plain string`);
      }
      return id;
    }
    const inputs = node.inputs;
    if (isLink(inputs.conditioning)) link = inputs.conditioning;
    else if (isLink(inputs.positive) && isLink(inputs.negative)) link = link[1] === 1 ? inputs.negative : inputs.positive;
    else break;
  }
  throw specError(`${where(sampler, workflow)} "${slot}" does not lead to a CLIPTextEncode node${trail(path)}`);
}

function latentNode(workflow: ComfyWorkflow, sampler: string): string {
  const link = workflow[sampler].inputs.latent_image;
  const node = linkedNode(workflow, link);
  if (!node || !EMPTY_LATENTS.has(node.class_type)) {
    const found = node ? `node "${String((link as unknown[])[0])}" (${node.class_type})` : "no linked node";
    throw specError(`${where(sampler, workflow)} "latent_image" must come from an EmptyLatentImage (found ${found}); txt2img needs one for width/height`);
  }
  return String((link as unknown[])[0]);
}

function where(id: string, workflow: ComfyWorkflow): string {
  return `sampler node "${id}" (${workflow[id].class_type})`;
}

function trail(path: string[]): string {
  return path.length ? `; followed: ${path.join(" -> ")}` : "";
}

function specError(message: string): DiffevalError {
  return new DiffevalError("E_GENERATOR_SPEC", `${SERVICE} workflow: ${message}`);
}

/**
 * A deep copy of the workflow with this request written in: cfg/seed/steps on the sampler, the
 * texts, width/height and batch_size 1 on the latent, LoRA strengths and sampler extras.
 */
export function workflowForRequest(workflow: ComfyWorkflow, nodes: WorkflowNodes, req: GenerationRequest): ComfyWorkflow {
  // KSampler seeds are 0..2^64-1 with no -1 "random" (generators.md §2).
  if (!Number.isInteger(req.seed) || req.seed < 0) {
    throw new DiffevalError("E_GENERATOR_REQUEST", `${SERVICE}: seed must be an integer >= 0 (KSampler has no random -1), got ${req.seed}`);
  }
  const graph = structuredClone(workflow);
  const sampler = graph[nodes.sampler].inputs;
  sampler.cfg = req.cfgScale;
  // KSampler calls it `seed`, KSamplerAdvanced `noise_seed`.
  sampler["noise_seed" in sampler && !("seed" in sampler) ? "noise_seed" : "seed"] = req.seed;
  sampler.steps = req.steps;
  graph[nodes.positive].inputs.text = req.prompt;
  graph[nodes.negative].inputs.text = req.negativePrompt;
  Object.assign(graph[nodes.latent].inputs, { width: req.width, height: req.height, batch_size: 1 });
  for (const [key, value] of Object.entries(req.extra)) {
    if (key in SAMPLER_EXTRAS) sampler[SAMPLER_EXTRAS[key]] = value;
    else if (LORA_EXTRAS.has(key)) setLoraStrength(graph, nodes, key, value);
  }
  return graph;
}

/** The nodes a control request edits: the ControlNetApplyAdvanced, its loader (if linked directly) and its LoadImage. */
export interface ControlNodes {
  apply: string;
  loader?: string;
  loadImage: string;
}

const CONTROL_APPLY = "ControlNetApplyAdvanced";

/** The workflow's one ControlNetApplyAdvanced and the LoadImage that feeds its image (through preprocessors). */
export function controlNodes(workflow: ComfyWorkflow): ControlNodes {
  const applies = idsOfClass(workflow, new Set([CONTROL_APPLY]));
  if (applies.length !== 1) {
    throw specError(
      applies.length === 0
        ? `a control image needs a ${CONTROL_APPLY} node (fed by ControlNetLoader and LoadImage); the workflow has none`
        : `the workflow has ${applies.length} ${CONTROL_APPLY} nodes (${applies.map((a) => `"${a}"`).join(", ")}); a sweep's control image drives exactly one`,
    );
  }
  const apply = applies[0];
  const loaderLink = workflow[apply].inputs.control_net;
  const loader = linkedNode(workflow, loaderLink)?.class_type === "ControlNetLoader" ? String((loaderLink as unknown[])[0]) : undefined;
  let link = workflow[apply].inputs.image;
  const passed: string[] = [];
  for (let hop = 0; hop < MAX_HOPS && isLink(link); hop++) {
    const id = String(link[0]);
    const node = workflow[id];
    if (!node) break;
    passed.push(`"${id}" (${node.class_type})`);
    if (node.class_type === "LoadImage") return { apply, ...(loader ? { loader } : {}), loadImage: id };
    link = node.inputs.image;
  }
  throw specError(`${CONTROL_APPLY} node "${apply}" input "image" does not lead to a LoadImage node${trail(passed)}`);
}

/** Each control image uploaded once per generator, under a name made of its content's hash. */
function uploadCache(client: HttpClient): RunSettings["upload"] {
  const cache = new Map<string, Promise<string>>();
  return (file, signal) => {
    let name = cache.get(file);
    if (!name) {
      name = uploadImage(client, file, signal);
      // A failed upload is tried again by the next request, not remembered.
      name.catch(() => cache.delete(file));
      cache.set(file, name);
    }
    return name;
  };
}

async function uploadImage(client: HttpClient, file: string, signal?: AbortSignal): Promise<string> {
  const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_GENERATOR_REQUEST", `${SERVICE}: cannot read the control image ${file} (${e.code ?? e.message})`);
  });
  const ext = path.extname(file).toLowerCase() || ".png";
  const form = new FormData();
  // Content-addressed: the same bytes always get the same name, and ComfyUI's overwrite keeps one copy.
  form.append("image", new Blob([bytes]), `diffeval-control-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}${ext}`);
  form.append("type", "input");
  form.append("overwrite", "true");
  const answer = (await client.form("/upload/image", form, signal)) as { name?: unknown; subfolder?: unknown };
  if (typeof answer?.name !== "string") {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} POST /upload/image answered without a name: ${clip(JSON.stringify(answer))}`);
  }
  // LoadImage takes a path inside the input folder (folder_paths.get_annotated_filepath).
  return typeof answer.subfolder === "string" && answer.subfolder !== "" ? `${answer.subfolder}/${answer.name}` : answer.name;
}

/** The control request written into a workflow copy: image name, strength, start/end, and the model when named. */
export function applyControl(graph: ComfyWorkflow, nodes: ControlNodes, control: ControlRequest, imageName: string): void {
  graph[nodes.loadImage].inputs.image = imageName;
  Object.assign(graph[nodes.apply].inputs, { strength: control.weight, start_percent: control.start, end_percent: control.end });
  if (control.model === undefined) return;
  if (!nodes.loader) throw specError(`spec.control.model is set, but ${CONTROL_APPLY} node "${nodes.apply}" takes its control_net from no ControlNetLoader`);
  graph[nodes.loader].inputs.control_net_name = control.model;
}

function setLoraStrength(graph: ComfyWorkflow, nodes: WorkflowNodes, key: string, value: unknown): void {
  const targets = nodes.loras.filter((id) => key in graph[id].inputs || key === "strength_model");
  if (targets.length === 0) {
    throw new DiffevalError("E_GENERATOR", `${SERVICE}: extra "${key}" needs a LoraLoader node in the workflow, and it has none`);
  }
  for (const id of targets) graph[id].inputs[key] = value;
}

/** The extra axes this adapter writes into the workflow (recorded in `used`). */
function appliedExtras(req: GenerationRequest): Record<string, string | number | boolean> {
  return Object.fromEntries(Object.entries(req.extra).filter(([k]) => k in SAMPLER_EXTRAS || LORA_EXTRAS.has(k)));
}

async function generateOne(run: RunSettings, workflow: ComfyWorkflow, nodes: WorkflowNodes, req: GenerationRequest, signal?: AbortSignal): Promise<GeneratedImage> {
  const graph = workflowForRequest(workflow, nodes, req);
  if (req.control) applyControl(graph, controlNodes(workflow), req.control, await run.upload(req.control.image, signal));
  const deadline = AbortSignal.timeout(run.timeoutMs);
  const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
  const promptId = await queuePrompt(run, graph, both);
  try {
    const image = await finishedImage(run, promptId, both);
    const bytes = await run.client.bytes(`/view?${new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type })}`, both);
    const format = imageFormatOf(bytes);
    if (!format) throw new DiffevalError("E_GENERATOR", `${SERVICE} /view of ${image.filename}: ${bytes.length} bytes that are not PNG, JPEG or WebP`);
    return {
      bytes,
      format,
      used: { ...req, extra: appliedExtras(req), batchSize: 1, promptId, samplerNode: nodes.sampler },
    };
  } catch (err) {
    if (both.aborted) {
      // Leave nothing queued behind: a prompt left in the queue would still be generated.
      await cancelPrompt(run, promptId);
      if (signal?.aborted) throw signal.reason;
      throw new DiffevalError("E_GENERATOR", `${SERVICE}: prompt ${promptId} did not finish within ${run.timeoutMs} ms (timeoutMs); it was removed from the queue`);
    }
    throw err;
  }
}

async function queuePrompt(run: RunSettings, graph: ComfyWorkflow, signal: AbortSignal): Promise<string> {
  const answer = (await run.client.json("POST", "/prompt", { prompt: graph, client_id: run.clientId }, signal)) as {
    prompt_id?: unknown;
    node_errors?: unknown;
  };
  const nodeErrors = answer.node_errors as Record<string, unknown> | undefined;
  if (nodeErrors && typeof nodeErrors === "object" && Object.keys(nodeErrors).length > 0) {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} rejected the workflow: ${clip(JSON.stringify(nodeErrors))}`);
  }
  if (typeof answer.prompt_id !== "string") {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} POST /prompt answered without a prompt_id: ${clip(JSON.stringify(answer))}`);
  }
  return answer.prompt_id;
}

interface ImageRef {
  filename: string;
  subfolder: string;
  type: string;
}

interface HistoryEntry {
  outputs?: Record<string, { images?: ImageRef[] }>;
  status?: { status_str?: string; completed?: boolean; messages?: unknown[] };
}

/** Polls `GET /history/{id}` (`{}` until the run ends) and returns the first output image. */
async function finishedImage(run: RunSettings, promptId: string, signal: AbortSignal): Promise<ImageRef> {
  for (;;) {
    const history = (await run.client.json("GET", `/history/${encodeURIComponent(promptId)}`, undefined, signal)) as Record<string, HistoryEntry>;
    const entry = history?.[promptId];
    if (entry) {
      if (entry.status?.status_str === "error") throw executionError(promptId, entry);
      const image = firstImage(entry);
      if (image) return image;
      if (entry.status?.completed) {
        throw new DiffevalError("E_GENERATOR", `${SERVICE} prompt ${promptId} finished without an image output; does the workflow end in SaveImage or PreviewImage?`);
      }
    }
    await sleep(run.pollIntervalMs, undefined, { signal });
  }
}

/** A SaveImage output ("output") before a PreviewImage one ("temp"). */
function firstImage(entry: HistoryEntry): ImageRef | undefined {
  const images = Object.values(entry.outputs ?? {}).flatMap((o) => o.images ?? []);
  const usable = images.filter((i) => typeof i?.filename === "string");
  const found = usable.find((i) => i.type === "output") ?? usable[0];
  return found && { filename: found.filename, subfolder: found.subfolder ?? "", type: found.type ?? "output" };
}

/** The `execution_error` message (node id, node type, exception) when the server sent one. */
function executionError(promptId: string, entry: HistoryEntry): DiffevalError {
  const messages = entry.status?.messages ?? [];
  const failure = messages.find((m) => Array.isArray(m) && m[0] === "execution_error") as [string, Record<string, unknown>] | undefined;
  const detail = failure
    ? `node "${failure[1].node_id}" (${failure[1].node_type}): ${failure[1].exception_type ?? "error"}: ${failure[1].exception_message ?? ""}`
    : clip(JSON.stringify(messages));
  return new DiffevalError("E_GENERATOR", `${SERVICE} prompt ${promptId} failed: ${detail}`);
}

/** Best effort: `POST /queue {delete: [id]}` drops a still-pending prompt (a running one finishes). */
async function cancelPrompt(run: RunSettings, promptId: string): Promise<void> {
  try {
    await run.client.json("POST", "/queue", { delete: [promptId] }, AbortSignal.timeout(5_000));
  } catch {
    // The server may be gone; nothing more to do.
  }
}
