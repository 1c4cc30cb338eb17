/**
 * The AUTOMATIC1111 / Forge / SD.Next adapter: `POST {baseUrl}/sdapi/v1/txt2img`, one image per
 * request (batch_size 1, n_iter 1) so that every image has its own seed.
 *
 * API facts (from the webui sources; see shared/research/generators.md §1):
 * - the request keys are the field names of `StableDiffusionProcessingTxt2Img` (prompt,
 *   negative_prompt, cfg_scale, seed, steps, width, height, sampler_name, batch_size, ...);
 * - the answer is `{ images: [base64, no "data:" prefix], parameters, info }` where `info` is a
 *   JSON *string* that must be parsed again; the seeds actually used are `info.all_seeds`
 *   (always trust them, not seed+i arithmetic: SD.Next's `sequential_seed` may be off, and
 *   seed -1 means "random");
 * - alwayson scripts (ControlNet) may append images: ours is `images[info.index_of_first_image]`;
 * - `--api-auth` puts HTTP Basic on every /sdapi route; the endpoint is synchronous and A1111
 *   serialises generation with `queue_lock`, so a concurrency above 1 only helps with several
 *   backends behind one URL.
 *
 * ControlNet (sd-webui-controlnet, whose API this follows at v1.1.4xx: the ControlNetUnit model in
 * internal_controlnet/args.py, commit c76c662): one unit in `alwayson_scripts.controlnet.args`
 * with `enabled`, `image` (base64), `module` ("canny" runs the detector, "none" takes the image as
 * the map), `model`, `weight` (0..2), `guidance_start`/`guidance_end` (0..1), `processor_res`, and
 * canny's `threshold_a`/`threshold_b`. The extension appends its detected map to `images` after
 * the generated ones; only `images[index_of_first_image]` is taken, so the map is never a sample.
 *
 * LoRA weights: A1111 takes them in the prompt text as `<lora:NAME:WEIGHT>` (the sweep writes
 * that into `prompt`); this adapter sends the prompt verbatim.
 */
import { readFile } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import type { ControlRequest, GeneratedImage, GenerationRequest, Generator } from "./generator.js";
import { checkBaseUrl, checkCount, clip, createHttpClient, limitConcurrency, type HttpClient } from "./http-client.js";
import { imageFormatOf } from "./image-format.js";

export interface A1111GeneratorOptions {
  /** e.g. http://127.0.0.1:7860 (webui --api) or :7861 (--nowebui). */
  baseUrl: string;
  auth?: { user: string; password: string };
  /** Requests in flight at once (the runner respects it, and so does the adapter). Default 1. */
  concurrency?: number;
  /** Extra attempts on network errors and 5xx. Default 3. */
  retries?: number;
  /** Per-request limit. Default 10 minutes (the call is synchronous: it lasts the whole generation). */
  timeoutMs?: number;
  /** `sampler_name`, e.g. "Euler a" or "DPM++ 2M"; the server default ("Euler") when absent. */
  sampler?: string;
  /** First retry delay, doubled per retry. Default 500 ms. */
  backoffMs?: number;
}

const SERVICE = "A1111";

/**
 * Txt2img fields an `extra` axis may set directly (the dataclass fields of
 * StableDiffusionProcessing[Txt2Img] and the API-only keys; Forge adds distilled_cfg_scale).
 * Other extra keys (e.g. a LoRA weight the sweep has already written into the prompt) are not
 * sent. `override_settings.NAME` keys go into `override_settings`.
 */
const PAYLOAD_FIELDS = new Set([
  "sampler_name", "scheduler", "subseed", "subseed_strength", "seed_resize_from_h", "seed_resize_from_w",
  "restore_faces", "tiling", "eta", "s_churn", "s_tmax", "s_tmin", "s_noise", "s_min_uncond",
  "denoising_strength", "enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x",
  "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt",
  "refiner_checkpoint", "refiner_switch_at", "disable_extra_networks", "distilled_cfg_scale", "styles",
]);
/** Friendlier axis names accepted for A1111 fields. */
const ALIASES: Record<string, string> = { sampler: "sampler_name" };
const OVERRIDE_PREFIX = "override_settings.";

export function createA1111Generator(options: A1111GeneratorOptions): Generator {
  const baseUrl = checkBaseUrl(SERVICE, options.baseUrl);
  checkAuth(options.auth);
  const concurrency = checkCount(SERVICE, "concurrency", options.concurrency, 1, 1);
  const client = createHttpClient({
    service: SERVICE,
    baseUrl,
    auth: options.auth,
    retries: checkCount(SERVICE, "retries", options.retries, 3, 0),
    timeoutMs: checkCount(SERVICE, "timeoutMs", options.timeoutMs, 600_000, 1),
    backoffMs: checkCount(SERVICE, "backoffMs", options.backoffMs, 500, 0),
  });
  if (options.sampler !== undefined && typeof options.sampler !== "string") {
    throw new DiffevalError("E_GENERATOR_SPEC", `${SERVICE} generator: \`sampler\` must be a string such as "Euler a"`);
  }
  const limit = limitConcurrency(concurrency);
  const controlImage = base64Cache();
  return {
    name: "a1111",
    concurrency,
    generate: (req, signal) => limit(() => txt2img(client, req, options.sampler, controlImage, signal)),
  };
}

function checkAuth(auth: unknown): void {
  if (auth === undefined) return;
  const a = auth as { user?: unknown; password?: unknown };
  if (typeof a !== "object" || auth === null || typeof a.user !== "string" || typeof a.password !== "string") {
    throw new DiffevalError("E_GENERATOR_SPEC", `${SERVICE} generator: \`auth\` must be { user: string, password: string }`);
  }
}

/** Each control image read and base64-encoded once per generator (every request of a sweep sends the same few). */
function base64Cache(): (file: string) => Promise<string> {
  const cache = new Map<string, Promise<string>>();
  return (file) => {
    let encoded = cache.get(file);
    if (!encoded) {
      encoded = readFile(file).then(
        (b) => b.toString("base64"),
        (e: NodeJS.ErrnoException) => {
          throw new DiffevalError("E_GENERATOR_REQUEST", `${SERVICE}: cannot read the control image ${file} (${e.code ?? e.message})`);
        },
      );
      cache.set(file, encoded);
    }
    return encoded;
  };
}

async function txt2img(
  client: HttpClient,
  req: GenerationRequest,
  sampler: string | undefined,
  controlImage: (file: string) => Promise<string>,
  signal?: AbortSignal,
): Promise<GeneratedImage> {
  const payload = txt2imgPayload(req, sampler, req.control ? await controlImage(req.control.image) : undefined);
  const answer = await client.json("POST", "/sdapi/v1/txt2img", payload, signal);
  return imageFromAnswer(answer, req);
}

/**
 * The JSON body of one txt2img call: one image, the request's axes, extra fields merged, and
 * with a control request its ControlNet unit (`controlBase64`: the control image's bytes in base64).
 */
export function txt2imgPayload(req: GenerationRequest, sampler?: string, controlBase64?: string): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    prompt: req.prompt,
    negative_prompt: req.negativePrompt,
    cfg_scale: req.cfgScale,
    seed: req.seed,
    // subseed_strength 0 keeps "image i gets seed+i" clean (processing.py all_seeds).
    subseed_strength: 0,
    steps: req.steps,
    width: req.width,
    height: req.height,
    batch_size: 1,
    n_iter: 1,
    send_images: true,
    save_images: false,
  };
  if (sampler !== undefined) payload.sampler_name = sampler;
  const overrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(req.extra)) {
    if (!isPayloadKey(key)) continue;
    const field = ALIASES[key] ?? key;
    if (field.startsWith(OVERRIDE_PREFIX)) overrides[field.slice(OVERRIDE_PREFIX.length)] = value;
    else if (PAYLOAD_FIELDS.has(field)) payload[field] = value;
  }
  if (Object.keys(overrides).length > 0) payload.override_settings = overrides;
  if (req.control) {
    if (controlBase64 === undefined) throw new DiffevalError("E_GENERATOR_REQUEST", `${SERVICE}: a control request needs its image's bytes`);
    payload.alwayson_scripts = { controlnet: { args: [controlNetUnit(req.control, controlBase64, req)] } };
  }
  return payload;
}

/**
 * One sd-webui-controlnet unit. processor_res is the generation's shorter side (what the
 * extension's "pixel perfect" picks for a control of the same aspect), so the detector sees the
 * resolution the model is conditioned at; the thresholds are canny's low/high.
 */
export function controlNetUnit(control: ControlRequest, imageBase64: string, req: Pick<GenerationRequest, "width" | "height">): Record<string, unknown> {
  return {
    enabled: true,
    image: imageBase64,
    module: control.preprocess ? control.type : "none",
    model: control.model ?? "None",
    weight: control.weight,
    guidance_start: control.start,
    guidance_end: control.end,
    processor_res: Math.min(req.width, req.height),
    threshold_a: control.canny[0],
    threshold_b: control.canny[1],
  };
}

/** Whether an extra axis is sent to A1111 (a txt2img field, an alias of one, or an override). */
function isPayloadKey(key: string): boolean {
  const field = ALIASES[key] ?? key;
  return PAYLOAD_FIELDS.has(field) || field.startsWith(OVERRIDE_PREFIX);
}

interface Txt2ImgInfo {
  all_seeds?: unknown;
  seed?: unknown;
  index_of_first_image?: unknown;
  [key: string]: unknown;
}

/** Our image and the parameters A1111 says it used, from a txt2img answer. */
export function imageFromAnswer(answer: unknown, req: GenerationRequest): GeneratedImage {
  const { images, info: rawInfo } = (answer ?? {}) as { images?: unknown; info?: unknown };
  if (!Array.isArray(images) || images.length === 0) {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer has no images: ${clip(JSON.stringify(answer))}`);
  }
  const info = parsedInfo(rawInfo);
  const index = typeof info.index_of_first_image === "number" ? info.index_of_first_image : 0;
  const encoded = images[index];
  if (typeof encoded !== "string") {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer: images[${index}] is not a base64 string`);
  }
  const bytes = decodeBase64Image(encoded);
  const format = imageFormatOf(bytes);
  if (format === undefined) {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer: images[${index}] (${bytes.length} bytes) is not PNG, JPEG or WebP`);
  }
  return { bytes, format, used: usedParameters(info, req) };
}

/** `info` is a JSON string (Processed.js()); some forks send the object itself. */
function parsedInfo(raw: unknown): Txt2ImgInfo {
  if (raw !== null && typeof raw === "object") return raw as Txt2ImgInfo;
  if (typeof raw !== "string") {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer has no \`info\`; cannot tell which seed was used`);
  }
  try {
    return parseJsonText(raw, "`info`", "E_GENERATOR", "the JSON text of Processed.js()") as Txt2ImgInfo;
  } catch (e) {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer: ${(e as Error).message}: ${clip(raw)}`);
  }
}

/** Base64 without a data: prefix per the API; a prefix, if a fork adds one, is dropped. */
function decodeBase64Image(encoded: string): Uint8Array {
  const body = encoded.startsWith("data:") ? encoded.slice(encoded.indexOf(",") + 1) : encoded;
  return new Uint8Array(Buffer.from(body, "base64"));
}

/** The seed from `all_seeds[0]` (never computed), and the rest as A1111 reports it. */
function usedParameters(info: Txt2ImgInfo, req: GenerationRequest): GeneratedImage["used"] {
  const seed = Array.isArray(info.all_seeds) && typeof info.all_seeds[0] === "number" ? info.all_seeds[0] : info.seed;
  if (typeof seed !== "number") {
    throw new DiffevalError("E_GENERATOR", `${SERVICE} txt2img answer: \`info\` has neither all_seeds nor seed`);
  }
  const pick = <T>(key: string, fallback: T): T => (typeof info[key] === typeof fallback ? (info[key] as T) : fallback);
  const sent = Object.fromEntries(Object.entries(req.extra).filter(([k]) => isPayloadKey(k)));
  return {
    prompt: pick("prompt", req.prompt),
    negativePrompt: pick("negative_prompt", req.negativePrompt),
    cfgScale: pick("cfg_scale", req.cfgScale),
    seed,
    steps: pick("steps", req.steps),
    width: pick("width", req.width),
    height: pick("height", req.height),
    extra: sent,
    ...(req.control ? { control: { ...req.control } } : {}),
    sampler: info.sampler_name,
    model: info.sd_model_name,
    modelHash: info.sd_model_hash,
  };
}
