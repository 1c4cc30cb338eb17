/** The FID Inception network as a function: a batch of normalised 299x299 images -> pool3 and logits. */
import * as ort from "onnxruntime-node";

export const INPUT_SIZE = 299;
export const POOL3_DIM = 2048;
export const LOGITS_DIM = 1008;

export interface InceptionOutputs {
  pool3: Float32Array; // n x 2048
  logits: Float32Array; // n x 1008
}

/** Runs a batch (n x 3 x 299 x 299, NCHW) through the network. */
export type InceptionRunner = (images: Float32Array, n: number) => Promise<InceptionOutputs>;

export function inceptionRunner(session: ort.InferenceSession): InceptionRunner {
  return async (images, n) => {
    const input = new ort.Tensor("float32", images, [n, 3, INPUT_SIZE, INPUT_SIZE]);
    const out = await session.run({ images: input });
    return { pool3: out.pool3.data as Float32Array, logits: out.logits.data as Float32Array };
  };
}
