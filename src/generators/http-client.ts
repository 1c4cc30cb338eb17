/**
 * The HTTP plumbing shared by the A1111 and ComfyUI adapters: a base URL, optional HTTP Basic
 * auth (A1111's `--api-auth`; ComfyUI has none), a per-request timeout, and retries with
 * exponential backoff on network errors and 5xx answers. 4xx answers are not retried: the
 * request itself is wrong (bad field, bad auth), and the error quotes the server's body.
 * Timeouts are not retried either: the server is probably still generating the image, and a
 * second request would queue a duplicate behind it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";

export interface HttpClientOptions {
  /** Who is being talked to, for messages ("A1111", "ComfyUI"). */
  service: string;
  baseUrl: string;
  auth?: { user: string; password: string };
  /** Extra attempts after the first on network errors and 5xx. */
  retries: number;
  /** Limit per HTTP request. */
  timeoutMs: number;
  /** First backoff delay; doubles with each retry. */
  backoffMs: number;
}

export interface HttpClient {
  /** The answer of a JSON request, parsed. */
  json(method: "GET" | "POST", pathname: string, body?: unknown, signal?: AbortSignal): Promise<unknown>;
  /** The raw body of a GET. */
  bytes(pathname: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** The parsed JSON answer of a multipart/form-data POST (fetch writes the boundary; a FormData is re-sent whole on a retry). */
  form(pathname: string, body: FormData, signal?: AbortSignal): Promise<unknown>;
}

/** How much of an error body a message quotes. */
const BODY_CHARS = 1_000;

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const headers = authHeaders(options.auth);
  const send = (method: string, pathname: string, body: unknown, signal?: AbortSignal) =>
    fetchWithRetries(options, `${base}${pathname}`, { method, headers: body === undefined ? headers : { ...headers, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) }, signal);
  const parsed = async (res: Response, method: string, pathname: string) => {
    const text = await res.text();
    try {
      return parseJsonText(text, "answer", "E_GENERATOR", "a JSON answer");
    } catch (e) {
      throw new DiffevalError("E_GENERATOR", `${options.service} ${method} ${pathname}: ${(e as Error).message}: ${clip(text)}`);
    }
  };
  return {
    json: async (method, pathname, body, signal) => parsed(await send(method, pathname, body, signal), method, pathname),
    bytes: async (pathname, signal) => new Uint8Array(await (await send("GET", pathname, undefined, signal)).arrayBuffer()),
    form: async (pathname, body, signal) => parsed(await fetchWithRetries(options, `${base}${pathname}`, { method: "POST", headers, body }, signal), "POST", pathname),
  };
}

/** HTTP Basic (RFC 7617): base64 of "user:password", UTF-8. */
function authHeaders(auth: HttpClientOptions["auth"]): Record<string, string> {
  if (!auth) return {};
  return { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`, "utf8").toString("base64")}` };
}

async function fetchWithRetries(options: HttpClientOptions, url: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
  const what = `${options.service} ${init.method} ${new URL(url).pathname}`;
  for (let attempt = 0; ; attempt++) {
    const failure = await attemptOnce(options, what, url, init, signal);
    if (failure instanceof Response) return failure;
    if (!failure.retryable || attempt >= options.retries) {
      const tries = attempt + 1;
      throw new DiffevalError("E_GENERATOR", `${what} failed${tries > 1 ? ` after ${tries} attempts` : ""}: ${failure.message}`, {
        cause: failure.cause,
      });
    }
    await sleep(options.backoffMs * 2 ** attempt, undefined, { signal }).catch(() => {
      throw signal?.reason; // the caller stopped during the backoff: report its reason, as a fetch abort does
    });
  }
}

interface Failure {
  retryable: boolean;
  message: string;
  cause?: unknown;
}

/** The response when it is 2xx, else a description of what went wrong and whether to retry. */
async function attemptOnce(options: HttpClientOptions, what: string, url: string, init: RequestInit, signal?: AbortSignal): Promise<Response | Failure> {
  signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (err) {
    if (signal?.aborted) throw signal.reason; // the caller stopped: not a failure of the server
    if (timeout.aborted) return { retryable: false, message: `no answer within ${options.timeoutMs} ms (timeoutMs)`, cause: err };
    return { retryable: true, message: `network error: ${networkReason(err)} (is ${options.service} running at ${new URL(url).origin}?)`, cause: err };
  }
  if (res.ok) return res;
  const body = clip(await res.text().catch(() => ""));
  const hint = res.status === 401 || res.status === 403 ? " (check the generator's auth user/password)" : "";
  return { retryable: res.status >= 500, message: `HTTP ${res.status} ${res.statusText}${hint}: ${body}` };
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ...) is in `cause`. */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

export function clip(text: string): string {
  return text.length > BODY_CHARS ? `${text.slice(0, BODY_CHARS)}...` : text;
}

/** A semaphore: at most `n` calls of the wrapped function run at once, the rest wait in order. */
export function limitConcurrency(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    // A finishing task hands its slot straight to the next waiter, so a newcomer cannot slip in between.
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/** Common checks for the HTTP adapters' settings; errors name the field. */
export function checkBaseUrl(service: string, value: unknown): string {
  if (typeof value !== "string" || !/^https?:\/\//.test(value)) {
    throw new DiffevalError("E_GENERATOR_SPEC", `${service} generator: \`baseUrl\` must be an http(s) URL such as http://127.0.0.1:7860, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function checkCount(service: string, field: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new DiffevalError("E_GENERATOR_SPEC", `${service} generator: \`${field}\` must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}
