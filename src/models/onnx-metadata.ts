/**
 * Provenance inside converted models: the sha256 of the weight file an .onnx was converted from,
 * stored in the ONNX model's `metadata_props`, so that `--weights model.onnx` still records which
 * weights produced a number.
 *
 * Protobuf merges repeated fields across concatenated messages, so appending an encoded
 * ModelProto that holds only `metadata_props` to a serialised model adds the entries without
 * re-encoding the 95 MB of weights.
 */
import { readFile } from "node:fs/promises";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

export function appendOnnxMetadata(model: Uint8Array, props: Record<string, string>): Uint8Array {
  const extra = onnx.ModelProto.encode({
    metadataProps: Object.entries(props).map(([key, value]) => ({ key, value })),
  }).finish();
  const out = new Uint8Array(model.length + extra.length);
  out.set(model, 0);
  out.set(extra, model.length);
  return out;
}

export function readOnnxMetadata(model: Uint8Array): Record<string, string> {
  const decoded = onnx.ModelProto.decode(model);
  const props: Record<string, string> = {};
  for (const p of decoded.metadataProps ?? []) if (p.key) props[p.key] = p.value ?? "";
  return props;
}

export async function readOnnxMetadataFile(file: string): Promise<Record<string, string>> {
  return readOnnxMetadata(new Uint8Array(await readFile(file)));
}
