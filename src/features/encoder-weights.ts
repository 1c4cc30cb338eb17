/**
 * The weight files of the CLIP and DINOv2 encoders: the registry download into the cache, reading
 * the files a checkpoint folder holds (errors name the file), and the converted-graph cache.
 *
 * Without `--weights`, the weights are those of a registry entry (models/registry.ts), kept in
 * `<cacheDir>/weights/<id with / as -->/`. Files missing there are downloaded (with progress)
 * into a staging folder and moved in only once every file has arrived, so a failed download
 * leaves nothing behind; each is verified where the registry knows its sha256, otherwise
 * reported as unverified with the sha256 of the copy. For DINOv2 the entry's constructor
 * arguments are written as config.json. $DIFFEVAL_ENCODER_BASE_URL replaces the upstream URLs
 * with `<base>/<id>/<file name>` (a mirror; the tests' local server).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { CACHE_FILE, writeFileAtomic } from "../io/atomic.js";
import { cacheDir, hashMemoPath, type Env } from "../models/cache.js";
import { downloadVerified, type ProgressCallback } from "../models/download.js";
import { sha256WithMemo } from "../models/ensure-weights.js";
import { getEncoderWeightsEntry, type EncoderWeightsEntry } from "../models/registry.js";

export interface EncoderWeightsOptions {
  /** Download missing registry files into the cache (default true). */
  allowDownload?: boolean;
  log?: (line: string) => void;
  onProgress?: ProgressCallback;
  env?: NodeJS.ProcessEnv;
}

/**
 * Where a converted encoder graph lives: keyed by the weights' sha256, the converter version and
 * the parsed model config (the same weights with another config.json build another graph, and
 * must go through the layout check again).
 */
export function encoderOnnxCachePath(
  encoder: string,
  weightsSha256: string,
  converterVersion: string | number,
  config: unknown,
  env: Env = process.env,
): string {
  const configHash = createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 8);
  return path.join(cacheDir(env), "onnx", `${encoder}-${weightsSha256.slice(0, 12).toLowerCase()}-v${converterVersion}-c${configHash}.onnx`);
}

/** Builds and writes a graph unless the cache already holds it. */
export async function convertOnce(onnxPath: string, source: string, log: ((line: string) => void) | undefined, build: () => Promise<Uint8Array>): Promise<void> {
  if (existsSync(onnxPath)) return;
  log?.(`converting ${source} to ONNX (once; cached at ${onnxPath})`);
  await writeFileAtomic(onnxPath, await build(), CACHE_FILE);
}

/** Whether `p` is a folder (else a file); E_WEIGHTS_MISSING when it does not exist. */
export async function isFolder(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${p}: no such file or folder`);
  }
}

/** A JSON file of a checkpoint: E_WEIGHTS_MISSING when unreadable, E_WEIGHTS_FORMAT when not JSON. */
export async function readWeightsJson(file: string, what: string): Promise<unknown> {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read ${what} (${e.code ?? e.message})`);
  });
  return parseJsonText(text, file, "E_WEIGHTS_FORMAT", what);
}

export async function readWeightsBytes(file: string): Promise<Uint8Array> {
  const buf = await readFile(file).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read the weight file (${e.code ?? e.message})`);
  });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** sha256 of a weight file, memoised in the cache by path, size and mtime. */
export async function hashWeightsFile(file: string, env: Env = process.env): Promise<string> {
  const abs = path.resolve(file);
  return sha256WithMemo(abs, hashMemoPath(abs, env)).catch((e: NodeJS.ErrnoException) => {
    if (e instanceof DiffevalError) throw e;
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read the weight file (${e.code ?? e.message})`);
  });
}

/** `<cacheDir>/weights/<id>/`, `/` in the id written as `--`. */
export function encoderWeightsFolder(id: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheDir(env), "weights", id.replace(/\//g, "--"));
}

/** Where a registry file is fetched from: its upstream URL, or `$DIFFEVAL_ENCODER_BASE_URL/<id>/<name>`. */
export function encoderFileUrl(entry: EncoderWeightsEntry, file: { name: string; url: string }, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.DIFFEVAL_ENCODER_BASE_URL?.trim();
  return base ? `${base.replace(/\/+$/, "")}/${entry.id}/${file.name}` : file.url;
}

/**
 * The folder of registry entry `id`'s weights in the cache, with its missing files downloaded
 * (see the header comment). `encoder` is the encoder asking: an id holding another encoder's
 * weights is refused.
 */
export async function ensureEncoderWeights(encoder: "clip" | "dinov2", id: string, opts: EncoderWeightsOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const entry = getEncoderWeightsEntry(id);
  if (entry.encoder !== encoder) {
    throw new DiffevalError("E_USAGE", `--encoder-weights ${entry.id} holds ${entry.encoder} weights, not ${encoder} ones`);
  }
  const dir = encoderWeightsFolder(entry.id, env);
  const missing = entry.files.filter((f) => !existsSync(path.join(dir, f.name)));
  const needConfig = entry.config !== undefined && !existsSync(path.join(dir, "config.json"));
  if (missing.length === 0 && !needConfig) return dir;
  if (opts.allowDownload === false) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `no ${encoder} weights: pass --weights FILE|DIR, or put ${entry.files.map((f) => f.name).join(", ")} ` +
        `(from ${entry.files.map((f) => encoderFileUrl(entry, f, env)).join(" ")}) into ${dir}` +
        (encoder === "dinov2" ? " with a config.json of the model's constructor arguments" : ""),
    );
  }
  // Everything lands in a staging folder first: an interrupted download leaves no partial set.
  const staging = path.join(path.dirname(dir), `.${path.basename(dir)}.partial-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging, { recursive: true });
  try {
    for (const f of missing) {
      const url = encoderFileUrl(entry, f, env);
      opts.log?.(`downloading ${entry.id}/${f.name} from ${url}`);
      const { sha256 } = await downloadVerified({
        url,
        dest: path.join(staging, f.name),
        sha256: f.sha256,
        unverified: f.sha256 === undefined,
        onProgress: opts.onProgress,
        manualHint: `or download it yourself into ${dir}, or pass --weights FILE|DIR.`,
      });
      opts.log?.(
        f.sha256 !== undefined
          ? `${entry.id}/${f.name}: sha256 ${sha256}, verified`
          : `${entry.id}/${f.name}: unverified (no published sha256 to check against); this copy's sha256 is ${sha256}`,
      );
    }
    if (needConfig) {
      await writeFileAtomic(path.join(staging, "config.json"), `${JSON.stringify(entry.config, null, 1)}\n`);
    }
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(staging)) await rename(path.join(staging, name), path.join(dir, name));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  opts.log?.(`${entry.id}: weights cached in ${dir}`);
  return dir;
}
