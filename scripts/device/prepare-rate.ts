/**
 * How fast the decode/resize workers alone prepare images (no inference), by thread count: the
 * question behind the H200 numbers, where features end to end reached 250 img/s while inference
 * alone ran at ~600. 512 in-memory images (the 32 fixture photos, cycled), protocol "clean",
 * `4 x threads` requests in flight as extract.ts keeps them. Run it with different
 * UV_THREADPOOL_SIZE values: sharp's work runs on libuv's pool, one per process (4 threads by
 * default), shared by every worker thread. Then the same images through extract.ts's loop with a
 * network that answers at once (zeros): the pipeline's own ceiling, reading and hashing included.
 *
 *   node .bench-build/scripts/device/prepare-rate.js [threads,threads,...]
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { extractFeatures } from "../../src/features/extract.js";
import { OUTPUT_DIMS } from "../../src/features/inception-runner.js";
import { createImagePreparer } from "../../src/features/prepare-pool.js";
import type { ImageItem } from "../../src/io/sources.js";
import { fixture } from "../../test/helpers/fixtures.js";

async function main(): Promise<void> {
  const dir = fixture("images", "real");
  const files = (await readdir(dir)).sort();
  const photos = await Promise.all(files.map((f) => readFile(path.join(dir, f))));
  const images = Array.from({ length: 512 }, (_, i) => new Uint8Array(photos[i % photos.length]));
  const counts = (process.argv[2] ?? "1,4,8,15").split(",").map(Number);
  const result: Record<string, number | string> = { uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? "4 (default)" };
  for (const threads of counts) {
    const preparer = createImagePreparer({ kind: "fid", protocol: "clean" }, threads);
    await Promise.all(images.slice(0, 2 * threads).map((b, i) => preparer.prepare(b, `warm-${i}`)));
    const t0 = performance.now();
    let next = 0;
    const lane = async () => {
      while (next < images.length) {
        const i = next++;
        await preparer.prepare(images[i], `img-${i}`);
      }
    };
    await Promise.all(Array.from({ length: 4 * threads }, lane));
    result[`threads_${threads}_img_per_s`] = Math.round(images.length / ((performance.now() - t0) / 1000));
    const items: ImageItem[] = images.map((bytes, i) => ({ name: `img-${i}`, location: `img-${i}`, read: async () => bytes }));
    const zeros = (n: number) => ({ pool3: new Float32Array(n * OUTPUT_DIMS.pool3), logits: new Float32Array(n * OUTPUT_DIMS.logits) });
    const t1 = performance.now();
    await extractFeatures(items, { run: async (_images, n) => zeros(n), preparer, batchSize: 16 });
    result[`threads_${threads}_extract_loop_img_per_s`] = Math.round(images.length / ((performance.now() - t1) / 1000));
    await preparer.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
