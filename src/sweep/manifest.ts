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

/** The last entry per key, in file order; a missing file is an empty manifest. */
export async function readManifest(outputDir: string): Promise<Map<string, ManifestEntry>> {
  const file = path.join(outputDir, MANIFEST_FILE);
  const entries = new Map<string, ManifestEntry>();
  if (!existsSync(file)) return entries;
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const entry = parseLine(line);
    if (entry) entries.set(entry.key, entry);
  }
  return entries;
}

function parseLine(line: string): ManifestEntry | undefined {
  if (line.trim() === "") return undefined;
  try {
    const e = JSON.parse(line) as ManifestEntry;
    return typeof e?.key === "string" && (e.status === "done" || e.status === "failed") ? e : undefined;
  } catch {
    return undefined; // a torn last line: that image is simply not done
  }
}

/** Keys whose image is done: recorded, present, and unchanged since (sha256 of the bytes). */
export async function verifiedDone(outputDir: string, entries: Map<string, ManifestEntry>): Promise<Map<string, ManifestDone>> {
  const done = new Map<string, ManifestDone>();
  for (const e of entries.values()) {
    if (e.status !== "done") continue;
    const bytes = await readFile(path.join(outputDir, e.file)).catch(() => undefined);
    if (bytes && sha256Hex(bytes) === e.sha256) done.set(e.key, e);
  }
  return done;
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
