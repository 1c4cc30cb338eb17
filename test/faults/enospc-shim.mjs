/**
 * TEST-ONLY fs shim for test/faults/disk-full.test.ts: a full disk without root (no tmpfs to mount).
 *
 * failWritesWithEnospc(match) makes every file opened through node:fs/promises whose path contains
 * `match` hand out a handle whose writes put half the bytes on disk and then fail as write(2) does
 * on a full disk (ENOSPC, errno 28), so a test also sees the partial temp file cleaned up.
 * module.syncBuiltinESMExports() makes `import { open } from "node:fs/promises"` see the patch.
 * Loaded into a CLI child with `NODE_OPTIONS=--import=<this file>`, it reads `match` from
 * $DIFFEVAL_TEST_ENOSPC.
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

function enospc() {
  return Object.assign(new Error("ENOSPC: no space left on device, write"), { errno: -28, code: "ENOSPC", syscall: "write" });
}

/** Writes the first half of `data` through the real handle, then rejects like a full disk. */
async function halfThenFull(fh, data) {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  await fh.write(bytes, 0, bytes.length >> 1);
  throw enospc();
}

/** Installs the fault; returns the function that removes it. */
export function failWritesWithEnospc(match) {
  const realOpen = fs.promises.open;
  fs.promises.open = async function open(file, ...rest) {
    const fh = await realOpen.call(fs.promises, file, ...rest);
    if (!String(file).includes(match)) return fh;
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === "writeFile" || prop === "write") return (data) => halfThenFull(target, data);
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
  syncBuiltinESMExports();
  return () => {
    fs.promises.open = realOpen;
    syncBuiltinESMExports();
  };
}

if (process.env.DIFFEVAL_TEST_ENOSPC) failWritesWithEnospc(process.env.DIFFEVAL_TEST_ENOSPC);
