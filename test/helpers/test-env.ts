/** Process variables a test sets for itself, and the Vulkan fixture paths the device tests share. */
import os from "node:os";
import { afterEach } from "vitest";

/** Mesa's lavapipe manifest where Debian installs it (mesa-vulkan-drivers; .ci/run installs it). */
export const LAVAPIPE_MANIFEST = `/usr/share/vulkan/icd.d/lvp_icd.${os.arch() === "arm64" ? "aarch64" : "x86_64"}.json`;

/**
 * A setter of process variables scoped to each test: call once per file, at the top level; after
 * every test the variables it set are put back (or removed).
 */
export function scopedEnv(): (vars: Record<string, string>) => void {
  const saved: Record<string, string | undefined> = {};
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
      delete saved[k];
    }
  });
  return (vars) => {
    for (const [k, v] of Object.entries(vars)) {
      if (!(k in saved)) saved[k] = process.env[k];
      process.env[k] = v;
    }
  };
}
