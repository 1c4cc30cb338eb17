/**
 * A real HTTP server on 127.0.0.1 that speaks the AUTOMATIC1111 txt2img API closely enough for
 * the adapter and the sweep tests: `POST /sdapi/v1/txt2img` with the webui's field names, base64
 * images without a data: prefix, `info` as a JSON string whose `all_seeds` are seed+i (a random
 * seed for -1), HTTP Basic auth like `--api-auth`, and 422 for a malformed body like pydantic.
 * It counts every image it generates, and can be told to fail the next N requests. Like the
 * sd-webui-controlnet extension, a body with an enabled unit in `alwayson_scripts.controlnet.args`
 * gets one detected map per unit appended to `images` after the generated ones (not counted in
 * `generated`, and not in `all_seeds`).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";
import type { GenerationRequest } from "../../src/generators/generator.js";

export type ImageBackend = (req: GenerationRequest) => Promise<Uint8Array>;

export interface A1111ServerOptions {
  /** Require HTTP Basic with these credentials (401 otherwise). */
  auth?: { user: string; password: string };
  /** Wait this long before generating for each txt2img call (to kill a sweep midway). */
  delayMs?: number;
  /** The seed the server picks for seed -1 (A1111 draws a random one). Default 123456. */
  randomSeed?: number;
}

export interface A1111TestServer {
  /** e.g. http://127.0.0.1:40123 */
  baseUrl: string;
  /** Every txt2img body received, parsed, in arrival order (failed and rejected ones too). */
  payloads: Record<string, unknown>[];
  /** Authorization headers received with those bodies (undefined when absent). */
  authorizations: (string | undefined)[];
  /** One entry per image the backend generated, in order. */
  generated: GenerationRequest[];
  /** generated.length */
  readonly imageCount: number;
  /** Calls whose client hung up during `delayMs`, before anything was generated. */
  readonly abandoned: number;
  /** Most txt2img calls that were being served at the same time. */
  readonly maxInFlight: number;
  /** Answer the next `n` txt2img calls with `status` (default 500) without generating. */
  failNext(n: number, status?: number): void;
  close(): Promise<void>;
}

/** A small PNG whose colour encodes the request: r,g = seed (low 16 bits), b = round(10 cfg). */
export async function seedPng(req: GenerationRequest): Promise<Uint8Array> {
  const background = { r: req.seed & 255, g: (req.seed >> 8) & 255, b: Math.round(req.cfgScale * 10) & 255 };
  const png = await sharp({ create: { width: req.width, height: req.height, channels: 3, background } }).png().toBuffer();
  return new Uint8Array(png);
}

/** The seed seedPng encoded in a decoded pixel. */
export function seedOfPixel(r: number, g: number): number {
  return r + 256 * g;
}

/**
 * The fields of the txt2img body that are not the request's first-class axes (nor API
 * housekeeping) reach the backend as `extra`, under their A1111 names (e.g. `sampler_name`).
 */
const CORE_FIELDS = new Set([
  "prompt", "negative_prompt", "cfg_scale", "seed", "steps", "width", "height", "batch_size", "n_iter",
  "send_images", "save_images", "subseed_strength",
]);

export async function startA1111Server(backend: ImageBackend, options: A1111ServerOptions = {}): Promise<A1111TestServer> {
  const payloads: Record<string, unknown>[] = [];
  const authorizations: (string | undefined)[] = [];
  const generated: GenerationRequest[] = [];
  let failures: { n: number; status: number } = { n: 0, status: 500 };
  let inFlight = 0;
  let maxInFlight = 0;
  let abandoned = 0;

  const txt2img = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = await readBody(req);
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return send(res, 422, { detail: [{ loc: ["body"], msg: "JSON decode error", type: "value_error.jsondecode" }] });
    }
    payloads.push(payload);
    authorizations.push(req.headers.authorization);
    if (options.auth && req.headers.authorization !== basic(options.auth)) {
      res.setHeader("WWW-Authenticate", "Basic");
      return send(res, 401, { detail: "Incorrect username or password" });
    }
    if (failures.n > 0) {
      failures.n--;
      return send(res, failures.status, { error: "HTTPException", detail: `injected failure ${failures.status}` });
    }
    const invalid = invalidField(payload);
    if (invalid) return send(res, 422, { detail: [{ loc: ["body", invalid], msg: "value is not valid", type: "type_error" }] });

    let gone = false;
    res.on("close", () => {
      gone = !res.writableFinished;
    });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      // A client that hung up while its call waited (a killed sweep) gets no image: like a
      // request cancelled before generation started. It is counted in `abandoned`.
      if (gone) return void abandoned++;
      const answer = await generateAnswer(payload, backend, generated, options.randomSeed ?? 123456);
      send(res, 200, answer);
    } catch (err) {
      send(res, 500, { error: "RuntimeError", detail: String(err), body: "", errors: "" });
    } finally {
      inFlight--;
    }
  };

  const server = http.createServer((req, res) => {
    const route = `${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`;
    if (route === "POST /sdapi/v1/txt2img") return void txt2img(req, res);
    if (route === "GET /sdapi/v1/samplers") return send(res, 200, [{ name: "Euler", aliases: [], options: {} }]);
    send(res, 404, { detail: "Not Found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    payloads,
    authorizations,
    generated,
    get imageCount() {
      return generated.length;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get abandoned() {
      return abandoned;
    },
    failNext: (n, status = 500) => {
      failures = { n, status };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The first field pydantic would reject (wrong type), if any. */
function invalidField(p: Record<string, unknown>): string | undefined {
  const numbers = ["cfg_scale", "seed", "steps", "width", "height", "batch_size", "n_iter"];
  if (p.prompt !== undefined && typeof p.prompt !== "string") return "prompt";
  if (p.negative_prompt !== undefined && typeof p.negative_prompt !== "string") return "negative_prompt";
  return numbers.find((k) => p[k] !== undefined && typeof p[k] !== "number");
}

/** Images for batch_size * n_iter seeds seed+i (processing.py all_seeds), and the webui's answer. */
async function generateAnswer(p: Record<string, unknown>, backend: ImageBackend, generated: GenerationRequest[], randomSeed: number) {
  const requested = (p.seed as number | undefined) ?? -1;
  const seed = requested === -1 ? randomSeed : requested;
  const count = ((p.batch_size as number | undefined) ?? 1) * ((p.n_iter as number | undefined) ?? 1);
  const base: Omit<GenerationRequest, "seed"> = {
    prompt: (p.prompt as string | undefined) ?? "",
    negativePrompt: (p.negative_prompt as string | undefined) ?? "",
    cfgScale: (p.cfg_scale as number | undefined) ?? 7,
    steps: (p.steps as number | undefined) ?? 50,
    width: (p.width as number | undefined) ?? 512,
    height: (p.height as number | undefined) ?? 512,
    extra: {
      ...(Object.fromEntries(Object.entries(p).filter(([k, v]) => !CORE_FIELDS.has(k) && isScalar(v))) as GenerationRequest["extra"]),
      // The first enabled ControlNet unit's weight, as the backend would apply it.
      ...controlWeightOf(p),
    },
  };
  const allSeeds = Array.from({ length: count }, (_, i) => seed + i);
  const images: string[] = [];
  for (const s of allSeeds) {
    const request = { ...base, seed: s };
    const bytes = await backend(request);
    generated.push(request);
    images.push(Buffer.from(bytes).toString("base64"));
  }
  for (let u = 0; u < enabledControlUnits(p); u++) images.push(await detectedMap(base.width, base.height));
  const info = {
    prompt: base.prompt,
    all_prompts: allSeeds.map(() => base.prompt),
    negative_prompt: base.negativePrompt,
    all_negative_prompts: allSeeds.map(() => base.negativePrompt),
    seed,
    all_seeds: allSeeds,
    subseed: -1,
    all_subseeds: allSeeds.map(() => -1),
    width: base.width,
    height: base.height,
    sampler_name: (p.sampler_name as string | undefined) ?? "Euler",
    cfg_scale: base.cfgScale,
    steps: base.steps,
    batch_size: p.batch_size ?? 1,
    sd_model_name: "test-model",
    sd_model_hash: "0123456789",
    index_of_first_image: 0,
    infotexts: allSeeds.map((s) => `${base.prompt}\nSteps: ${base.steps}, Seed: ${s}, CFG scale: ${base.cfgScale}`),
  };
  // `info` is a JSON string inside the JSON answer (models.py TextToImageResponse).
  return { images, parameters: p, info: JSON.stringify(info) };
}

function controlWeightOf(p: Record<string, unknown>): { control_weight?: number } {
  const scripts = p.alwayson_scripts as Record<string, { args?: { enabled?: boolean; weight?: unknown }[] }> | undefined;
  const unit = scripts?.controlnet?.args?.find((u) => u?.enabled === true);
  return typeof unit?.weight === "number" ? { control_weight: unit.weight } : {};
}

/** Enabled ControlNet units in the body (the extension's alwayson script, matched by lowercase title). */
function enabledControlUnits(p: Record<string, unknown>): number {
  const scripts = p.alwayson_scripts as Record<string, { args?: { enabled?: boolean }[] }> | undefined;
  const args = scripts?.controlnet?.args ?? [];
  return args.filter((u) => u?.enabled === true).length;
}

/** A stand-in for the extension's detected map: a white-on-black PNG of the generation's size. */
async function detectedMap(width: number, height: number): Promise<string> {
  const png = await sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
  return png.toString("base64");
}

function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

function basic(auth: { user: string; password: string }): string {
  return `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`;
}

export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
