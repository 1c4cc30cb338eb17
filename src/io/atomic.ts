/**
 * Atomic file writes and streamed content hashing.
 *
 * A reader (another diffeval process, a later run) must never see a half-written cache file:
 * data goes to a temp file in the *same directory* (rename(2) is only atomic within one
 * filesystem), is fsync'ed, then renamed over the target. A crash leaves at most a stray
 * `.<name>.<pid>.<random>.tmp`, never a truncated target.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";

/** `<dir>/.<name>.<pid>.<random>.tmp`: hidden, unique per process and call, same directory. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const name = path.basename(target);
  return path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Writes `data` to `target` atomically (temp file, fsync, rename); removes the temp on failure. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(path.dirname(target));
}

/**
 * fsync the directory so the rename itself survives a power loss (POSIX leaves directory
 * entries unsynced otherwise). Best effort: Windows cannot open directories for sync.
 */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // not supported on this platform / filesystem; the data itself is already synced
  }
}

/** Hex sha256 of a file, streamed (constant memory even for the ~95 MB weight file). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
