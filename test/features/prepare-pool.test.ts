/**
 * Image preparation on worker threads. Node cannot start a .ts worker, so this drives the compiled
 * pool in dist/ (the test run's global setup builds it): the PreprocessSpec reaches the workers as
 * a structured clone and must give the same tensors as the calling thread.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { prepareImage } from "../../src/features/prepare-image.js";
import type { createImagePreparer as CreateImagePreparer } from "../../src/features/prepare-pool.js";
import type { PreprocessSpec } from "../../src/preprocess/preprocess-spec.js";
import { fixture, projectRoot } from "../helpers/fixtures.js";

async function compiledPool(): Promise<typeof CreateImagePreparer> {
  const url = pathToFileURL(path.join(projectRoot, "dist", "features", "prepare-pool.js")).href;
  return ((await import(url)) as { createImagePreparer: typeof CreateImagePreparer }).createImagePreparer;
}

describe("createImagePreparer with worker threads (compiled)", () => {
  it("gives the calling thread's tensors for FID, CLIP and DINOv2 specs", async () => {
    const createImagePreparer = await compiledPool();
    const dir = fixture("images", "real");
    const files = readdirSync(dir).sort().slice(0, 3);
    const specs: PreprocessSpec[] = [
      { kind: "fid", protocol: "legacy-pytorch" },
      { kind: "clip", config: { size: 256, crop: 240, mean: [0.5, 0.25, 0.125], std: [0.2, 0.3, 0.4] } },
      { kind: "dinov2", size: 224 },
    ];
    for (const spec of specs) {
      const pool = createImagePreparer(spec, 2);
      try {
        expect(pool.threads).toBe(2);
        for (const f of files) {
          const bytes = new Uint8Array(readFileSync(path.join(dir, f)));
          const onWorker = await pool.prepare(bytes.slice(), f);
          const here = await prepareImage(bytes, f, spec);
          expect([spec.kind, f, onWorker.length]).toEqual([spec.kind, f, here.length]);
          expect(Buffer.from(onWorker.buffer, onWorker.byteOffset, onWorker.byteLength).equals(Buffer.from(here.buffer)), `${spec.kind} ${f}`).toBe(true);
        }
      } finally {
        await pool.close();
      }
    }
  });
});
