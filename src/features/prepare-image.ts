/** One image file's bytes -> the network input under a protocol (decode, then resize/normalise). */
import { decodeImage } from "../io/decode.js";
import { getProtocol } from "../preprocess/protocols.js";

export async function prepareImage(bytes: Uint8Array, name: string, protocol: string): Promise<Float32Array> {
  const img = await decodeImage(bytes, name);
  return getProtocol(protocol).preprocess(img);
}
