/**
 * Download a file and verify its sha256 before it becomes visible at `dest`.
 *
 * The body streams into a temp file next to `dest` while being hashed; only a file whose hash
 * matches is renamed into place, so an interrupted or corrupted download never leaves a file
 * that a later run would trust. Uses node:http/node:https directly so redirects (GitHub release
 * assets answer 302 to objects.githubusercontent.com), the redirect limit and the idle timeout
 * are explicit. HTTP(S)_PROXY is not honoured (node:https has no built-in proxy support):
 * behind a proxy, download the file by hand as the error messages explain.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import http from "node:http";
import https from "node:https";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { syncDir, tempPathFor } from "../io/atomic.js";
import { hashMatches } from "./registry.js";

export type ProgressCallback = (received: number, total: number | undefined) => void;

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Expected full hex sha256. At least one of sha256 / sha256Prefix is required. */
  sha256?: string;
  /** Expected leading hex digits of the sha256 (when only the hub-style prefix is known). */
  sha256Prefix?: string;
  /**
   * No published hash to check against (a reference statistics file whose sha256 could not be
   * confirmed): the file is saved as downloaded and the caller must report it as unverified.
   */
  unverified?: boolean;
  /** The alternative offered after "download URL yourself and save it as DEST," (default: the --weights advice). */
  manualHint?: string;
  onProgress?: ProgressCallback;
  /** Redirects followed before giving up (default 10). */
  maxRedirects?: number;
  /** Idle timeout: no bytes for this long aborts the download (default 60 s). */
  timeoutMs?: number;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** DNS / routing failures: the machine is offline or the host is blocked. */
const OFFLINE_CODES = new Set(["ENOTFOUND", "ECONNREFUSED", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH"]);

export async function downloadVerified(opts: DownloadOptions): Promise<DownloadResult> {
  if (opts.sha256 === undefined && opts.sha256Prefix === undefined && !opts.unverified) {
    throw new DiffevalError("E_INTERNAL", `downloadVerified(${opts.url}): no expected sha256 or prefix given`);
  }
  const dir = path.dirname(opts.dest);
  await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(opts.dest);
  try {
    const res = await getFollowingRedirects(opts);
    const { sha256, bytes } = await saveHashing(res, tmp, opts);
    if (!opts.unverified) checkHash(sha256, opts);
    await rename(tmp, opts.dest);
    await syncDir(dir);
    return { path: opts.dest, sha256, bytes };
  } catch (e) {
    await rm(tmp, { force: true });
    throw asDownloadError(e, opts);
  }
}

/** GETs `opts.url`, following redirects (relative Locations resolve against the current URL). */
async function getFollowingRedirects(opts: DownloadOptions): Promise<IncomingMessage> {
  const maxRedirects = opts.maxRedirects ?? 10;
  let url = new URL(opts.url);
  for (let hops = 0; ; hops++) {
    const res = await get(url, opts.timeoutMs ?? 60_000);
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    res.resume(); // discard the body so the socket closes
    if (!REDIRECT_STATUSES.has(status)) {
      throw downloadFailure(opts, `the server answered HTTP ${status} ${res.statusMessage ?? ""} for ${url}`.trim());
    }
    const location = res.headers.location;
    if (!location) throw downloadFailure(opts, `HTTP ${status} redirect from ${url} without a Location header`);
    if (hops >= maxRedirects) throw downloadFailure(opts, `more than ${maxRedirects} redirects (last: ${url})`);
    url = new URL(location, url);
  }
}

/** One GET. `agent: false`: a fresh connection that closes afterwards (no keep-alive socket
 * lingering in the process). The idle timeout also covers the body, read later. */
function get(url: URL, timeoutMs: number): Promise<IncomingMessage> {
  const client = url.protocol === "https:" ? https : url.protocol === "http:" ? http : undefined;
  if (!client) return Promise.reject(new Error(`unsupported URL protocol ${url.protocol}`));
  return new Promise((resolve, reject) => {
    let response: IncomingMessage | undefined;
    // identity: content-length then counts the bytes we store (no transparent gzip here).
    const headers = { "user-agent": "diffeval", "accept-encoding": "identity" };
    const req = client.get(url, { agent: false, headers }, (res) => {
      response = res;
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => {
      const err = Object.assign(new Error(`no data for ${timeoutMs} ms`), { code: "ETIMEDOUT" });
      req.destroy(err);
      response?.destroy(err); // so the body reader sees the timeout, not a bare "aborted"
    });
    req.on("error", reject);
  });
}

/** Streams the body into a new file at `tmp`, hashing as it goes; checks content-length. */
async function saveHashing(
  res: IncomingMessage,
  tmp: string,
  opts: DownloadOptions,
): Promise<{ sha256: string; bytes: number }> {
  const total = parseLength(res.headers["content-length"]);
  const hash = createHash("sha256");
  let received = 0;
  const fh = await open(tmp, "wx");
  try {
    opts.onProgress?.(0, total);
    for await (const chunk of res as AsyncIterable<Buffer>) {
      hash.update(chunk);
      await writeAll(fh, chunk);
      received += chunk.length;
      opts.onProgress?.(received, total);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  // Backstop: a connection closed early without a parser error still must not pass.
  if (total !== undefined && received !== total) {
    throw downloadFailure(opts, `the transfer stopped after ${received} of ${total} bytes`);
  }
  return { sha256: hash.digest("hex"), bytes: received };
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

function parseLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d+$/.test(header)) return undefined;
  return Number(header);
}

function checkHash(actual: string, opts: DownloadOptions): void {
  if (hashMatches(actual, opts.sha256, opts.sha256Prefix)) return;
  const expected = opts.sha256 ?? `${opts.sha256Prefix}… (prefix)`;
  throw new DiffevalError(
    "E_WEIGHTS_SHA256",
    `the file downloaded from ${opts.url} has sha256 ${actual}, expected ${expected}; it was not saved. ` +
      `Retry (the transfer may have been corrupted, e.g. by a proxy), or ${manualHint(opts)}`,
  );
}

function downloadFailure(opts: DownloadOptions, reason: string, cause?: unknown): DiffevalError {
  return new DiffevalError(
    "E_DOWNLOAD",
    `could not download ${opts.url}: ${reason}${/[.?!]$/.test(reason) ? "" : "."} Nothing was saved. ` +
      capitalize(manualHint(opts)),
    { cause },
  );
}

/** Every download error says where a hand-downloaded copy goes, or how to point at one. */
function manualHint(opts: DownloadOptions): string {
  const alternative = opts.manualHint ?? "or pass --weights FILE (or set DIFFEVAL_WEIGHTS=FILE) to use a copy you already have.";
  return `download ${opts.url} yourself (browser, curl) and save it as ${opts.dest}, ${alternative}`;
}

function asDownloadError(e: unknown, opts: DownloadOptions): DiffevalError {
  if (e instanceof DiffevalError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code !== undefined && OFFLINE_CODES.has(code)) {
    // the message names the host actually tried (maybe a redirect target), e.g.
    // "getaddrinfo ENOTFOUND objects.githubusercontent.com"
    return downloadFailure(opts, `cannot connect (${message}); offline, or blocked by a firewall?`, e);
  }
  if (code === "ETIMEDOUT") return downloadFailure(opts, `timed out (${message})`, e);
  if (code === "ECONNRESET") return downloadFailure(opts, `the connection broke mid-transfer (${message})`, e);
  return downloadFailure(opts, `${message}${code ? ` (${code})` : ""}`, e);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
