/**
 * The sweep's manifest, `<output>/manifest.jsonl`: one JSON line per finished (or failed) image,
 * appended and fsynced as soon as the image is on disk, so a crash or Ctrl-C never loses a
 * finished image and never records one that is not there. A re-run trusts an entry only when
 * its file exists and still has the recorded sha256; a later line for the same key wins (a
 * retried failure becomes done). A torn last line (power loss mid-append) is ignored.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import path from "node:path";
import type { CellParams } from "../gate/results.js";
import { parseJsonText } from "../io/read-json.js";

export const MANIFEST_FILE = "manifest.jsonl";

export interface ManifestDone {
  status: "done";
  key: string;
  cell: string;
  prompt_index: number;
  seed: number;
  /** Relative to the output folder ('/'-separated). */
  file: string;
  sha256: string;
  params: CellParams;
  prompt: string;
  /** What the generator says it used (e.g. A1111's all_seeds). */
  used: Record<string, unknown>;
  /** Denoiser evaluations the image took, as the generator counted them (built-in generators only). */
  model_evaluations?: number;
  /** Wall-clock seconds from the request to the image on disk (the cost metrics' seconds_per_image). */
  seconds: number;
  time: string;
}

export interface ManifestFailed {
  status: "failed";
  key: string;
  cell: string;
  prompt_index: number;
  seed: number;
  params: CellParams;
  prompt: string;
  error: string;
  attempts: number;
  time: string;
}

export type ManifestEntry = ManifestDone | ManifestFailed;

/**
 * The longest manifest line read (bytes). A line holds one image's key, params, prompt and what
 * the generator reported: a few KB. Longer lines (a damaged or foreign file) are skipped unread,
 * so one newline-free gigabyte cannot become one string.
 */
export const MAX_MANIFEST_LINE = 16 * 2 ** 20;

/**
 * The last entry per key, in file order; a missing file is an empty manifest. Read in chunks,
 * line by line: a sweep of millions of images has a manifest too large for one string.
 */
export async function readManifest(outputDir: string): Promise<Map<string, ManifestEntry>> {
  const file = path.join(outputDir, MANIFEST_FILE);
  const entries = new Map<string, ManifestEntry>();
  if (!existsSync(file)) return entries;
  for await (const line of manifestLines(file)) {
    const entry = parseLine(line);
    if (entry) entries.set(entry.key, entry);
  }
  return entries;
}

/** The file's lines (without "\n"), each at most MAX_MANIFEST_LINE bytes; longer ones are left out. */
async function* manifestLines(file: string): AsyncGenerator<string> {
  const fh = await open(file, "r");
  try {
    const chunk = Buffer.alloc(1 << 20);
    let parts: Buffer[] = [];
    let length = 0;
    let tooLong = false;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, 0); nl >= 0 && nl < bytesRead; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        if (!tooLong && length + piece.length <= MAX_MANIFEST_LINE) yield Buffer.concat([...parts, piece]).toString("utf8");
        [parts, length, tooLong] = [[], 0, false];
        start = nl + 1;
      }
      const rest = chunk.subarray(start, bytesRead);
      length += rest.length;
      if (length > MAX_MANIFEST_LINE) [parts, tooLong] = [[], true];
      else parts.push(Buffer.from(rest));
    }
    if (!tooLong && length > 0) yield Buffer.concat(parts).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** An entry of the shape the runner writes, or undefined (a torn or foreign line). */
function parseLine(line: string): ManifestEntry | undefined {
  if (line.trim() === "") return undefined;
  let e: Partial<ManifestEntry> | null;
  try {
    e = parseJsonText(line, MANIFEST_FILE, "E_SWEEP_SPEC", "one JSON object per line") as Partial<ManifestEntry> | null;
  } catch {
    return undefined; // a torn last line: that image is simply not done
  }
  if (typeof e !== "object" || e === null || typeof e.key !== "string") return undefined;
  if (e.status === "failed") return e as ManifestFailed;
  return e.status === "done" && typeof e.sha256 === "string" && isImagePath(e.file) ? (e as ManifestDone) : undefined;
}

/** A path the runner writes: relative, '/'-separated, under images/ (never `..`), so an entry cannot point outside the output. */
function isImagePath(file: unknown): file is string {
  return typeof file === "string" && file.startsWith("images/") && !file.split(/[\\/]/).includes("..");
}

/**
 * Keys whose image is done: recorded, present, and unchanged since (sha256 of the bytes). With
 * `plan`, only entries that are its images as the runner records them (same prompt index and
 * seed, file `images/<key>.<ext>`): entries of an earlier, larger plan are not read and hashed,
 * and an edited entry cannot pair an image with another prompt.
 */
export async function verifiedDone(outputDir: string, entries: Map<string, ManifestEntry>, plan?: { images: PlannedImageId[] }): Promise<Map<string, ManifestDone>> {
  const done = new Map<string, ManifestDone>();
  if (entries.size === 0) return done;
  const planned = plan && new Map(plan.images.map((im) => [im.key, im]));
  for (const e of entries.values()) {
    if (e.status !== "done" || (planned && !isPlannedEntry(e, planned.get(e.key)))) continue;
    const bytes = await readFile(path.join(outputDir, e.file)).catch(() => undefined);
    if (bytes && sha256Hex(bytes) === e.sha256) done.set(e.key, e);
  }
  return done;
}

/** What identifies a planned image in the manifest. */
interface PlannedImageId {
  key: string;
  promptIndex: number;
  seed: number;
}

function isPlannedEntry(e: ManifestDone, im: PlannedImageId | undefined): boolean {
  return im !== undefined && e.prompt_index === im.promptIndex && e.seed === im.seed && e.file.startsWith(`images/${im.key}.`);
}

export interface ManifestWriter {
  append(entry: ManifestEntry): Promise<void>;
  close(): Promise<void>;
}

/** Appends lines one at a time (writes are serialised, so concurrent workers never interleave). */
export async function openManifestWriter(outputDir: string): Promise<ManifestWriter> {
  await mkdir(outputDir, { recursive: true });
  const file = path.join(outputDir, MANIFEST_FILE);
  const torn = existsSync(file) && !(await endsWithNewline(file));
  const fh = await open(file, "a");
  // After a torn last line, start on a fresh line so the next entry stays readable.
  let queue: Promise<void> = torn ? fh.write("\n").then(() => {}) : Promise.resolve();
  return {
    append(entry) {
      const line = `${JSON.stringify(entry)}\n`;
      queue = queue.then(async () => {
        await fh.write(line);
        await fh.sync();
      });
      return queue;
    },
    async close() {
      await queue.catch(() => {});
      await fh.close();
    },
  };
}

async function endsWithNewline(file: string): Promise<boolean> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await fh.close();
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
