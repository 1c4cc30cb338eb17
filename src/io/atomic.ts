/**
 * Atomic file writes and streamed content hashing.
 *
 * A reader (another diffeval process, a later run) must never see a half-written file: data goes
 * to a temp file in the *same directory* (rename(2) is only atomic within one filesystem), then is
 * renamed over the target. A crash (even `kill -9`) leaves the old target or the complete new one,
 * plus at most a stray hidden `.<name>.<pid>.<random>.tmp`; a failed write (full disk, file-size
 * limit, no permission) removes its temp file and throws E_OUTPUT naming the target. Every writer
 * of results and caches goes through writeFileAtomic (test/faults/ kills and starves them).
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { DiffevalError, isDiffevalError } from "../errors.js";

/** `<dir>/.<name>.<pid>.<random>.tmp`: hidden, unique per process and call, same directory. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const name = path.basename(target);
  return path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

export interface AtomicWriteOptions {
  /**
   * fsync the data and the directory before returning (default true), so the new file also
   * survives a power loss. Cache entries that carry their own checksum (features/feature-cache.ts)
   * pass false: a torn entry after a power loss is detected and recomputed, and an fsync per
   * image would cost milliseconds each on a spinning disk.
   */
  durable?: boolean;
  /** What the user can do instead, for the error message (default "choose another --out"). */
  elsewhere?: string;
}

/** For files diffeval keeps in its cache folder (converted models): where else to put them. */
export const CACHE_FILE: AtomicWriteOptions = { elsewhere: "point DIFFEVAL_CACHE at another folder" };

/**
 * Writes `data` to `target` atomically (temp file, optional fsync, rename). On failure the temp
 * file is removed, the old target (if any) is left as it was, and an E_OUTPUT error names the target.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const tmp = tempPathFor(target);
  try {
    await mkdir(path.dirname(target), { recursive: true });
    const fh = await open(tmp, "wx");
    try {
      await writeContents(fh, target, typeof data === "string" ? Buffer.from(data) : data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw outputError(target, e, opts.elsewhere ?? "choose another --out");
  }
  if (durable) await syncDir(path.dirname(target));
}

type Handle = Awaited<ReturnType<typeof open>>;

async function writeContents(fh: Handle, target: string, bytes: Uint8Array): Promise<void> {
  const crash = testCrashPoint(target);
  if (crash === "partial") {
    await fh.write(bytes, 0, bytes.length >> 1);
    await fh.sync();
    crashNow();
  }
  await fh.writeFile(bytes);
  if (crash === "written") {
    await fh.sync();
    crashNow();
  }
}

/**
 * TEST-ONLY fault injection, used by test/faults/atomic-outputs.test.ts and never set otherwise:
 * `DIFFEVAL_TEST_CRASH_AT=STAGE:SUFFIX` makes the process SIGKILL itself while writing a target
 * whose path ends with SUFFIX, at STAGE "partial" (half the bytes in the temp file) or "written"
 * (all bytes in the temp file, not yet renamed). A real kill lands at a random instant; this one
 * lands exactly in the window a torn file would come from.
 */
function testCrashPoint(target: string): "partial" | "written" | undefined {
  const spec = process.env.DIFFEVAL_TEST_CRASH_AT;
  if (!spec) return undefined;
  const colon = spec.indexOf(":");
  const stage = spec.slice(0, colon);
  if ((stage !== "partial" && stage !== "written") || !target.endsWith(spec.slice(colon + 1))) return undefined;
  return stage;
}

function crashNow(): never {
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable: SIGKILL did not end the process");
}

/** Errno codes that mean "no room": the disk, a quota, or this process's file-size limit (RLIMIT_FSIZE gives EFBIG). */
const NO_ROOM = new Map([
  ["ENOSPC", "no space left on the device"],
  ["EDQUOT", "disk quota exceeded"],
  ["EFBIG", "the file exceeds this process's file-size limit, ulimit -f"],
]);

/** The other usual reasons a write fails, in words (open(2), rename(2)). */
const OTHER_CAUSES = new Map([
  ["EACCES", "permission denied"],
  ["EPERM", "operation not permitted"],
  ["EROFS", "read-only file system"],
  ["ENOTDIR", "a part of the path is a file, not a folder"],
  ["EISDIR", "a folder is in the way"],
]);

/**
 * The E_OUTPUT error for a failed write of `target`: the errno in words and what to do about it.
 * Errors without an errno code (a bug, not the filesystem) pass through unchanged.
 */
export function outputError(target: string, e: unknown, elsewhere: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (isDiffevalError(e) || typeof code !== "string") return e;
  const room = NO_ROOM.get(code);
  const words = room ?? OTHER_CAUSES.get(code);
  const reason = words ? `${code}: ${words}` : code;
  const fix = room ? `free space or ${elsewhere}` : `check the folder and its permissions, or ${elsewhere}`;
  return new DiffevalError("E_OUTPUT", `${target}: cannot write (${reason}); the file is left as it was; ${fix}`, { cause: e });
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
