/** One image file's bytes -> the network input under a preprocessing (decode, then resize/normalise). */
import { decodeImage } from "../io/decode.js";
import { preprocessImage, type PreprocessSpec } from "../preprocess/preprocess-spec.js";

export async function prepareImage(bytes: Uint8Array, name: string, spec: PreprocessSpec): Promise<Float32Array> {
  return preprocessImage(spec, await decodeImage(bytes, name));
}
