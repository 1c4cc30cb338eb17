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
import { DiffevalError } from "../errors.js";

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

/**
 * A float32 initializer (a weight) of an ONNX model file, e.g. `fc.weight` of the FID Inception,
 * which the Inception Score needs for torch-fidelity's bias-free logits.
 */
export async function readOnnxInitializer(file: string, name: string): Promise<{ dims: number[]; data: Float32Array }> {
  const decoded = onnx.ModelProto.decode(new Uint8Array(await readFile(file)));
  const t = decoded.graph?.initializer?.find((i) => i.name === name);
  if (!t) throw new DiffevalError("E_MODEL_OUTPUTS", `${file}: the model has no initializer '${name}'`);
  const dims = (t.dims ?? []).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const data =
    t.rawData && t.rawData.length > 0
      ? new Float32Array(t.rawData.slice().buffer, 0, count) // slice(): aligned copy of the bytes
      : Float32Array.from(t.floatData ?? []);
  if (data.length !== count) throw new DiffevalError("E_MODEL_OUTPUTS", `${file}: initializer '${name}' holds ${data.length} values, dims say ${count}`);
  return { dims, data };
}
