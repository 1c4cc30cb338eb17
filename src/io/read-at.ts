/** Positioned reads of a file handle: the one helper every reader that reads in place uses. */
import type { FileHandle } from "node:fs/promises";

/**
 * Up to `length` bytes at `position` (fewer only at the end of the file). Callers check
 * `position` and `length` against the file size first, so `length` never comes from an
 * unchecked field. `fh.read` may return short counts; this loops until done or the end.
 */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, done);
}
