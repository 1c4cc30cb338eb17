/**
 * Decoding and resizing spread over worker threads, so that they overlap with inference (which
 * runs on onnxruntime's own threads) and use every core on machines with many. When running from
 * TypeScript sources (tests), Node cannot start a .ts worker: the pool then prepares images on the
 * calling thread, which gives the same numbers.
 */
import os from "node:os";
import { Worker } from "node:worker_threads";
import { DiffevalError, isErrorCode } from "../errors.js";
import type { PreprocessSpec } from "../preprocess/preprocess-spec.js";
import { prepareImage } from "./prepare-image.js";
import type { PrepareRequest, PrepareResponse } from "./prepare-worker.js";

export interface ImagePreparer {
  prepare(bytes: Uint8Array, name: string): Promise<Float32Array>;
  /** Number of worker threads (0: on the calling thread). */
  readonly threads: number;
  close(): Promise<void>;
}

export function defaultThreadCount(): number {
  return Math.max(1, Math.min(16, os.availableParallelism() - 1));
}

export function createImagePreparer(spec: PreprocessSpec, threads = defaultThreadCount()): ImagePreparer {
  const workerUrl = new URL("./prepare-worker.js", import.meta.url);
  const compiled = import.meta.url.endsWith(".js");
  if (threads <= 0 || !compiled) {
    return { threads: 0, prepare: (bytes, name) => prepareImage(bytes, name, spec), close: async () => {} };
  }
  return workerPreparer(workerUrl, spec, threads);
}

function workerPreparer(workerUrl: URL, spec: PreprocessSpec, threads: number): ImagePreparer {
  type Pending = { resolve: (t: Float32Array) => void; reject: (e: Error) => void };
  const pending = new Map<number, Pending>();
  const load = new Map<Worker, number>();
  let nextId = 0;

  const workers = Array.from({ length: threads }, () => {
    // The spec travels once per worker, structured-cloned (prepare-worker.ts reads workerData).
    const w = new Worker(workerUrl, { workerData: spec });
    w.unref();
    load.set(w, 0);
    w.on("message", (res: PrepareResponse) => {
      load.set(w, load.get(w)! - 1);
      const p = pending.get(res.id);
      pending.delete(res.id);
      if (!p) return;
      if ("tensor" in res) p.resolve(res.tensor);
      else p.reject(new DiffevalError(isErrorCode(res.error.code) ? res.error.code : "E_IMAGE_DECODE", res.error.message));
    });
    w.on("error", (e) => {
      for (const p of pending.values()) p.reject(e);
      pending.clear();
    });
    return w;
  });

  return {
    threads,
    prepare(bytes, name) {
      // Least-loaded worker: images differ a lot in decode cost.
      const w = workers.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
      load.set(w, load.get(w)! + 1);
      const id = nextId++;
      return new Promise<Float32Array>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        const req: PrepareRequest = { id, bytes, name };
        w.postMessage(req);
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
