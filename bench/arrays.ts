/**
 * Image arrays read as a stream (io/array-source.ts): peak resident memory while every row of a
 * generated uint8 N x 64 x 64 x 3 array is read through the source (the BMP each row becomes, not
 * the network), at two sizes N and for a stored (np.savez) and a deflated (np.savez_compressed)
 * .npz. Each run is a fresh child process (bench/arrays-child.ts), so one run's peak cannot hide
 * another's; `baseline_rss_mb` is the same child opening nothing. Memory independent of N is the
 * claim: the two sizes should differ by the rows' names and items (~100 bytes an image), not by the
 * data. A 2 GB-class .npy (BENCH_ARRAY_LARGE images, default 160,000) shows it at scale.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeNpz } from "../src/io/npz.js";
import { npyBytes } from "../test/helpers/image-bytes.js";
import { xorshift32 } from "../test/helpers/xorshift.js";

const SIZES = (process.env.BENCH_ARRAY_SIZES ?? "2000,8000").split(",").map(Number);
const SIDE = 64;
/** The 2 GB-class case: a .npy of this many 64x64x3 images (160,000: 1.97 GB), written in chunks. */
const LARGE = Number(process.env.BENCH_ARRAY_LARGE ?? 160_000);
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), "arrays-child.js");

/** Smooth gradients plus a little noise: compressible about as much as real photographs. */
function images(n: number): Uint8Array {
  const next = xorshift32(n);
  const out = new Uint8Array(n * SIDE * SIDE * 3);
  for (let i = 0, p = 0; i < n; i++) {
    const tint = i % 251;
    for (let y = 0; y < SIDE; y++)
      for (let x = 0; x < SIDE; x++)
        for (let c = 0; c < 3; c++, p++) out[p] = (x * 3 + y * 2 + c * 40 + tint + (next() & 15)) & 255;
  }
  return out;
}

interface ChildResult {
  rows: number;
  seconds: number;
  peak_rss_mb: number;
}

/** A LARGE x 64 x 64 x 3 uint8 .npy written 1,000 images at a time (never whole in memory), then read. */
function largeNpyRun(dir: string): Record<string, number> {
  const file = path.join(dir, `samples_${LARGE}x${SIDE}x${SIDE}x3.npy`);
  const fd = openSync(file, "w");
  try {
    writeSync(fd, npyBytes(`{'descr': '|u1', 'fortran_order': False, 'shape': (${LARGE}, ${SIDE}, ${SIDE}, 3), }`));
    for (let done = 0; done < LARGE; done += 1000) writeSync(fd, images(Math.min(1000, LARGE - done)));
  } finally {
    closeSync(fd);
  }
  const run = runChild(file);
  const fileMb = statSync(file).size / 2 ** 20;
  rmSync(file);
  return { file_mb: Number(fileMb.toFixed(1)), peak_rss_mb: run.peak_rss_mb, rows_per_s: Math.round(run.rows / run.seconds) };
}

function runChild(file?: string): ChildResult {
  const out = execFileSync(process.execPath, [CHILD, ...(file ? [file] : [])], { encoding: "utf8", maxBuffer: 1 << 20 });
  return JSON.parse(out) as ChildResult;
}

export async function benchArrays(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-bench-arrays-"));
  try {
    const results: Record<string, unknown> = { image: `${SIDE}x${SIDE}x3 uint8`, baseline_rss_mb: runChild().peak_rss_mb };
    for (const n of SIZES) {
      const data = images(n);
      for (const compress of [false, true]) {
        const file = path.join(dir, `samples_${n}x${SIDE}x${SIDE}x3${compress ? "_deflated" : ""}.npz`);
        writeFileSync(file, writeNpz({ arr_0: { dtype: "|u1", shape: [n, SIDE, SIDE, 3], data } }, { compress }));
        const run = runChild(file);
        results[`${compress ? "deflated" : "stored"}_${n}`] = {
          file_mb: Number((statSync(file).size / 2 ** 20).toFixed(1)),
          peak_rss_mb: run.peak_rss_mb,
          rows_per_s: Math.round(run.rows / run.seconds),
        };
        rmSync(file);
      }
    }
    results[`npy_${LARGE}`] = largeNpyRun(dir);
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
