/**
 * Edits of a serialised ONNX model for tests: give an input or an output another element type or
 * rank, the way other exporters write the same model (int64 `input_ids`, a scalar or int64
 * `timestep`, float16 I/O), without touching the network: a Cast (and for a scalar a Reshape to
 * [1]) is put between the new graph input and the nodes that read the old one.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const DataType = onnx.TensorProto.DataType;

export type ElemType = "float32" | "float16" | "int32" | "int64";

const ELEM: Record<ElemType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
};

export interface InputEdit {
  type?: ElemType;
  /** Make the input a scalar (rank 0); the graph gets it back as a [1] vector. */
  scalar?: boolean;
}

/** `model` with `input` taken as another type/rank and converted to what the graph used inside. */
export function retypeInput(model: Uint8Array, input: string, edit: InputEdit): Uint8Array {
  const m = onnx.ModelProto.decode(model);
  const graph = m.graph!;
  const info = graph.input!.find((i) => i.name === input);
  if (!info) throw new Error(`no input ${input}`);
  const tensorType = info.type!.tensorType!;
  const original = tensorType.elemType!;
  const inner = `${input}__inner`;
  for (const node of graph.node!) node.input = node.input!.map((n) => (n === input ? inner : n));
  const added: onnxProto.onnx.INodeProto[] = [];
  let current = input;
  if (edit.type && ELEM[edit.type] !== original) {
    tensorType.elemType = ELEM[edit.type];
    const out = edit.scalar ? `${input}__cast` : inner;
    added.push({ opType: "Cast", name: `${input}_cast`, input: [current], output: [out], attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: original }] });
    current = out;
  }
  if (edit.scalar) {
    tensorType.shape = { dim: [] };
    const shapeName = `${input}__shape`;
    graph.initializer!.push({ name: shapeName, dims: [1], dataType: DataType.INT64, rawData: new Uint8Array(BigInt64Array.of(1n).buffer) });
    added.push({ opType: "Reshape", name: `${input}_reshape`, input: [current, shapeName], output: [inner] });
    current = inner;
  }
  if (current !== inner) throw new Error("retypeInput: nothing to do");
  graph.node = [...added, ...graph.node!];
  return onnx.ModelProto.encode(m).finish();
}

/** `model` with `output` given as float16 (a Cast after the node that made it). */
export function halfOutput(model: Uint8Array, output: string): Uint8Array {
  const m = onnx.ModelProto.decode(model);
  const graph = m.graph!;
  const info = graph.output!.find((o) => o.name === output);
  if (!info) throw new Error(`no output ${output}`);
  const inner = `${output}__f32`;
  for (const node of graph.node!) {
    node.output = node.output!.map((n) => (n === output ? inner : n));
    node.input = node.input!.map((n) => (n === output ? inner : n));
  }
  info.type!.tensorType!.elemType = DataType.FLOAT16;
  graph.node!.push({ opType: "Cast", name: `${output}_half`, input: [inner], output: [output], attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT16 }] });
  return onnx.ModelProto.encode(m).finish();
}

/** `model` with one more (unused) float input, as an SDXL UNet has `text_embeds`. */
export function extraInput(model: Uint8Array, name: string, dims: (number | string)[]): Uint8Array {
  const m = onnx.ModelProto.decode(model);
  const graph = m.graph!;
  graph.input!.push({
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  });
  // Keep it alive: ORT may prune an input nothing reads.
  const sink = `${name}__sink`;
  graph.node!.push({ opType: "Identity", name: `${name}_identity`, input: [name], output: [sink] });
  graph.output!.push({ name: sink, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } } });
  return onnx.ModelProto.encode(m).finish();
}
