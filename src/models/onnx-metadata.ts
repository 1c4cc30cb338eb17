/**
 * Provenance inside converted models: the sha256 of the weight file an .onnx was converted from,
 * stored in the ONNX model's `metadata_props`, so that `--weights model.onnx` still records which
 * weights produced a number.
 *
 * Protobuf merges repeated fields across concatenated messages, so appending an encoded
 * ModelProto that holds only `metadata_props` to a serialised model adds the entries without
 * re-encoding the 95 MB of weights.
 *
 * The .onnx bytes come from the user (`--weights model.onnx`), so every decode goes through
 * `decodeOnnxModel`, which turns whatever the protobuf decoder throws into E_WEIGHTS_FORMAT naming
 * the file.
 */
import { readFile } from "node:fs/promises";
import onnxProto from "onnx-proto";
import { DiffevalError } from "../errors.js";

const { onnx } = onnxProto;

type ModelProto = InstanceType<typeof onnx.ModelProto>;

/** TensorProto.DataType.FLOAT (onnx.proto3). */
const ONNX_FLOAT = 1;

export function appendOnnxMetadata(model: Uint8Array, props: Record<string, string>): Uint8Array {
  const extra = onnx.ModelProto.encode({
    metadataProps: Object.entries(props).map(([key, value]) => ({ key, value })),
  }).finish();
  const out = new Uint8Array(model.length + extra.length);
  out.set(model, 0);
  out.set(extra, model.length);
  return out;
}

function notOnnxError(file: string, why: string): DiffevalError {
  return new DiffevalError(
    "E_WEIGHTS_FORMAT",
    `${file}: not a readable ONNX model (${why}); pass the .pth weights, or an .onnx written by \`diffeval model convert\``,
  );
}

/**
 * The ModelProto in `bytes`; E_WEIGHTS_FORMAT naming `file` when the bytes are not one.
 *
 * protobufjs is the parser here, and it reports malformed input only with generic exceptions:
 * `Error: invalid wire type 7 at offset 3` (Reader.skipType), `RangeError: index out of range:
 * 94 + 64 > 157` (a length past the end) and, for messages or groups nested thousands deep
 * (GraphProto -> NodeProto -> AttributeProto -> GraphProto..., or nested groups in skipType),
 * `RangeError: Maximum call stack size exceeded`. So its exceptions are caught and re-thrown as a
 * DiffevalError. Catching the stack overflow is safe: V8 unwinds the stack to this frame, and a
 * decode only builds fresh objects (a Reader per call, no shared state), so nothing is left half
 * done. Nesting cannot be bounded before decoding without re-implementing the decoder: the wire
 * format does not say which length-delimited field is a message.
 */
export function decodeOnnxModel(bytes: Uint8Array, file: string): ModelProto {
  let decoded: ModelProto;
  try {
    decoded = onnx.ModelProto.decode(bytes);
  } catch (e) {
    const why = e instanceof RangeError && /call stack/i.test(e.message) ? "messages nested too deep" : `protobuf: ${(e as Error).message}`;
    throw notOnnxError(file, why.slice(0, 200));
  }
  // Every ONNX model has a graph (onnx.proto: ModelProto.graph is "the parameterized graph");
  // protobuf decodes many random byte strings without complaint, so this is what tells them apart.
  if (!decoded.graph) throw notOnnxError(file, "no graph in it");
  return decoded;
}

/** The `metadata_props` of the model in `model` (the bytes of `file`). */
export function readOnnxMetadata(model: Uint8Array, file = "the ONNX model"): Record<string, string> {
  const decoded = decodeOnnxModel(model, file);
  const props: Record<string, string> = {};
  for (const p of decoded.metadataProps ?? []) if (p.key) props[p.key] = p.value ?? "";
  return props;
}

async function readOnnxFile(file: string): Promise<Uint8Array> {
  const buf = await readFile(file).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${file}: cannot read the ONNX model (${e.code ?? e.message})`);
  });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export async function readOnnxMetadataFile(file: string): Promise<Record<string, string>> {
  return readOnnxMetadata(await readOnnxFile(file), file);
}

/**
 * A float32 initializer (a weight) of an ONNX model file, e.g. `fc.weight` of the FID Inception,
 * which the Inception Score needs for torch-fidelity's bias-free logits.
 */
export async function readOnnxInitializer(file: string, name: string): Promise<{ dims: number[]; data: Float32Array }> {
  return onnxInitializerOf(await readOnnxFile(file), file, name);
}

/**
 * The float32 initializer `name` of the model in `bytes` (the bytes of `file`). Its dims are
 * checked (non-negative safe integers) and its element count against the bytes it holds before
 * anything is allocated: E_MODEL_OUTPUTS when they disagree or the initializer is absent,
 * E_WEIGHTS_DTYPE when it is not float32.
 */
export function onnxInitializerOf(bytes: Uint8Array, file: string, name: string): { dims: number[]; data: Float32Array } {
  const t = decodeOnnxModel(bytes, file).graph?.initializer?.find((i) => i.name === name);
  if (!t) throw new DiffevalError("E_MODEL_OUTPUTS", `${file}: the model has no initializer '${name}'`);
  const bad = (what: string) => new DiffevalError("E_MODEL_OUTPUTS", `${file}: initializer '${name}' ${what}`);
  if ((t.dataType ?? 0) !== ONNX_FLOAT) {
    throw new DiffevalError("E_WEIGHTS_DTYPE", `${file}: initializer '${name}' has ONNX data type ${t.dataType}, not float32 (1)`);
  }
  // int64 dims arrive as Long objects (or numbers); Number() of one beyond 2^53 is inexact, so
  // only safe integers count, and the product is checked as it grows (no overflow to Infinity).
  const dims = (t.dims ?? []).map(Number);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const have = raw ? raw.length / 4 : (t.floatData?.length ?? 0);
  const shape = `dims [${dims.join(", ")}]`;
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw bad(`has ${shape}: not all non-negative integers`);
    count *= d;
    if (count > have) break;
  }
  if (count !== have) {
    const holds = raw ? `${raw.length} bytes` : `${have} values`;
    throw bad(`holds ${holds}, but its ${shape} ${count > have ? "promise more" : `say ${count} float32 values`}`);
  }
  if (!raw) return { dims, data: Float32Array.from(t.floatData ?? []) };
  // raw_data is little-endian float32 (onnx.proto); a copy, since the view may be unaligned.
  const aligned = new Uint8Array(raw.length);
  aligned.set(raw);
  return { dims, data: new Float32Array(aligned.buffer) };
}
