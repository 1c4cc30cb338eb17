/** The FID Inception network as a function: a batch of normalised 299x299 images -> its outputs. */
import * as ort from "onnxruntime-node";
import { SPATIAL_DIM } from "../models/inception-onnx.js";

export const INPUT_SIZE = 299;
export const POOL3_DIM = 2048;
export const LOGITS_DIM = 1008;
export { SPATIAL_DIM };

/** Per-image widths of the outputs the model can have (`spatial` only when converted with it). */
export const OUTPUT_DIMS = { pool3: POOL3_DIM, logits: LOGITS_DIM, spatial: SPATIAL_DIM } as const;
export type OutputName = keyof typeof OUTPUT_DIMS;

/** Row-major n x dim outputs, by name. */
export type InceptionOutputs = Partial<Record<OutputName, Float32Array>> & { pool3: Float32Array; logits: Float32Array };

/** Runs a batch (n x 3 x 299 x 299, NCHW) through the network. */
export interface InceptionRunner {
  (images: Float32Array, n: number): Promise<InceptionOutputs>;
}

export function inceptionRunner(session: ort.InferenceSession): InceptionRunner {
  const names = session.outputNames.filter((name): name is OutputName => name in OUTPUT_DIMS);
  return async (images, n) => {
    const input = new ort.Tensor("float32", images, [n, 3, INPUT_SIZE, INPUT_SIZE]);
    const out = await session.run({ images: input });
    const result: Partial<Record<OutputName, Float32Array>> = {};
    for (const name of names) result[name] = out[name].data as Float32Array;
    return result as InceptionOutputs;
  };
}

/** The outputs a session provides, in a fixed order (used as the feature cache's layout). */
export function sessionOutputs(session: ort.InferenceSession): OutputName[] {
  return (Object.keys(OUTPUT_DIMS) as OutputName[]).filter((name) => session.outputNames.includes(name));
}
