/**
 * Worker-thread entry: decodes and preprocesses images off the main thread (see prepare-pool.ts).
 * The preprocessing arrives once, as `workerData` (a structured clone of the PreprocessSpec).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { PreprocessSpec } from "../preprocess/preprocess-spec.js";
import { prepareImage } from "./prepare-image.js";

export interface PrepareRequest {
  id: number;
  bytes: Uint8Array;
  name: string;
}

export type PrepareResponse =
  | { id: number; tensor: Float32Array }
  | { id: number; error: { code?: string; message: string } };

const spec = workerData as PreprocessSpec;

parentPort?.on("message", async (req: PrepareRequest) => {
  try {
    const tensor = await prepareImage(req.bytes, req.name, spec);
    const res: PrepareResponse = { id: req.id, tensor };
    parentPort!.postMessage(res, [tensor.buffer as ArrayBuffer]);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const res: PrepareResponse = { id: req.id, error: { code: err.code, message: err.message ?? String(e) } };
    parentPort!.postMessage(res);
  }
});
