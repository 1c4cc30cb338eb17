/** One image file's bytes -> the network input under a protocol (decode, then resize/normalise). */
import { decodeImage } from "../io/decode.js";
import { getProtocol, isProtocolName } from "../preprocess/protocols.js";
import { encoderPreprocess } from "./encoder-preprocess.js";

export async function prepareImage(bytes: Uint8Array, name: string, protocol: string): Promise<Float32Array> {
  const img = await decodeImage(bytes, name);
  // FID protocols by name; otherwise an encoder's preprocessing (encoder-preprocess.ts: clip, dinov2).
  return isProtocolName(protocol) ? getProtocol(protocol).preprocess(img) : encoderPreprocess(protocol)(img);
}
