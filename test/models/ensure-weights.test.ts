import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { weightsCachePath } from "../../src/models/cache.js";
import { ensureWeightsFile, sidecarPath } from "../../src/models/ensure-weights.js";
import type { WeightsEntry } from "../../src/models/registry.js";
import { startServer, type LocalServer } from "../helpers/local-server.js";

const sha = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");
const CACHED = "cached weights bytes";

let dir: string;
let env: Record<string, string | undefined>;
let server: LocalServer | undefined;

/** A stand-in registry entry: tiny content, served (when needed) by a local server. */
function fakeEntry(url = "http://127.0.0.1:1/fake.pth"): WeightsEntry {
  return {
    id: "fake",
    fileName: "fake-weights.pth",
    url,
    sha256: sha(CACHED),
    sha256Prefix: sha(CACHED).slice(0, 8),
    protocols: ["clean"],
    description: "test",
  };
}

function put(name: string, content: string): string {
  const p = path.join(dir, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}

async function errorOf(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: Error & { code?: string }) => e,
  );
}

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-weights-"));
  env = { DIFFEVAL_CACHE: path.join(dir, "cache") };
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe("ensureWeightsFile precedence", () => {
  it("uses --weights over DIFFEVAL_WEIGHTS over the cache", async () => {
    const flag = put("flag.pth", "flag weights");
    const fromEnv = put("env.onnx", "env weights");
    const entry = fakeEntry();
    put(path.relative(dir, weightsCachePath(entry, env)), CACHED);
    env.DIFFEVAL_WEIGHTS = fromEnv;

    const a = await ensureWeightsFile({ weights: flag, env, entry, allowDownload: false });
    expect(a).toEqual({ path: flag, sha256: sha("flag weights"), kind: "pth", source: "flag", registryId: undefined });

    const b = await ensureWeightsFile({ env, entry, allowDownload: false });
    expect(b).toEqual({ path: fromEnv, sha256: sha("env weights"), kind: "onnx", source: "env", registryId: undefined });

    delete env.DIFFEVAL_WEIGHTS;
    const c = await ensureWeightsFile({ env, entry, allowDownload: false });
    expect(c).toEqual({
      path: weightsCachePath(entry, env),
      sha256: sha(CACHED),
      kind: "pth",
      source: "cache",
      registryId: "fake",
    });
  });

  it("names a missing --weights file", async () => {
    const missing = path.join(dir, "nope.pth");
    const e = await errorOf(ensureWeightsFile({ weights: missing, env, entry: fakeEntry() }));
    expect(isDiffevalError(e, "E_WEIGHTS_MISSING")).toBe(true);
    expect(e.message).toContain(missing);
    expect(e.message).toContain("--weights");
  });

  it("names a missing DIFFEVAL_WEIGHTS file", async () => {
    env.DIFFEVAL_WEIGHTS = path.join(dir, "gone.onnx");
    const e = await errorOf(ensureWeightsFile({ env, entry: fakeEntry() }));
    expect(isDiffevalError(e, "E_WEIGHTS_MISSING")).toBe(true);
    expect(e.message).toContain(env.DIFFEVAL_WEIGHTS);
    expect(e.message).toContain("DIFFEVAL_WEIGHTS");
  });

  it("says where to put the file when it is not cached and downloads are off", async () => {
    const entry = fakeEntry();
    const e = await errorOf(ensureWeightsFile({ env, entry, allowDownload: false }));
    expect(isDiffevalError(e, "E_WEIGHTS_MISSING")).toBe(true);
    expect(e.message).toContain(weightsCachePath(entry, env));
    expect(e.message).toContain(entry.url);
  });
});

describe("ensureWeightsFile cache verification", () => {
  it("remembers the verified hash keyed by size and mtime", async () => {
    const entry = fakeEntry();
    const file = put(path.relative(dir, weightsCachePath(entry, env)), CACHED);
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    await ensureWeightsFile({ env, entry, allowDownload: false });
    expect(JSON.parse(readFileSync(sidecarPath(file), "utf8")).sha256).toBe(sha(CACHED));

    // Same size, same mtime, different bytes: the memo is trusted (no rehash).
    const tampered = "X".repeat(CACHED.length);
    writeFileSync(file, tampered);
    utimesSync(file, 1_700_000_000, 1_700_000_000);
    expect((await ensureWeightsFile({ env, entry, allowDownload: false })).sha256).toBe(sha(CACHED));

    // A new mtime invalidates the memo: the file is rehashed and no longer matches.
    utimesSync(file, 1_700_000_100, 1_700_000_100);
    const e = await errorOf(ensureWeightsFile({ env, entry, allowDownload: false }));
    expect(isDiffevalError(e, "E_WEIGHTS_SHA256")).toBe(true);
    expect(e.message).toContain(sha(tampered));
    expect(e.message).toContain(file);
  });

  it("downloads into the cache when it is empty, then serves from the cache", async () => {
    server = await startServer((req, res) => {
      if (req.url === "/release/fake.pth") res.writeHead(302, { location: "/cdn/blob" }).end();
      else res.writeHead(200, { "content-length": CACHED.length }).end(CACHED);
    });
    const entry = fakeEntry(server.url("/release/fake.pth"));
    const progress: number[] = [];
    const first = await ensureWeightsFile({ env, entry, onProgress: (r) => progress.push(r) });
    expect(first).toEqual({
      path: weightsCachePath(entry, env),
      sha256: sha(CACHED),
      kind: "pth",
      source: "download",
      registryId: "fake",
    });
    expect(readFileSync(first.path, "utf8")).toBe(CACHED);
    expect(existsSync(sidecarPath(first.path))).toBe(true);
    expect(progress.at(-1)).toBe(CACHED.length);

    const second = await ensureWeightsFile({ env, entry });
    expect(second.source).toBe("cache");
    expect(server.requests).toEqual(["/release/fake.pth", "/cdn/blob"]); // no second download
  });

  it("replaces a corrupted cached file by a fresh download", async () => {
    server = await startServer((_req, res) => res.end(CACHED));
    const entry = fakeEntry(server.url("/fake.pth"));
    const file = put(path.relative(dir, weightsCachePath(entry, env)), "truncated");
    const r = await ensureWeightsFile({ env, entry });
    expect(r.source).toBe("download");
    expect(readFileSync(file, "utf8")).toBe(CACHED);
  });

  it("does not cache a download whose hash is wrong", async () => {
    server = await startServer((_req, res) => res.end("something else"));
    const entry = fakeEntry(server.url("/fake.pth"));
    const e = await errorOf(ensureWeightsFile({ env, entry }));
    expect(isDiffevalError(e, "E_WEIGHTS_SHA256")).toBe(true);
    expect(existsSync(weightsCachePath(entry, env))).toBe(false);
  });
});
