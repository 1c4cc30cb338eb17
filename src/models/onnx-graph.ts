/**
 * A small ONNX graph builder over onnx-proto's protobuf messages (the ONNX IR spec:
 * https://onnx.ai/onnx/repo-docs/IR.html). The model builders in this folder describe their
 * networks as calls to `node` and `initializer`; this file knows the protobuf field names.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** ONNX IR version 8 is the one that goes with opset 17 (ONNX 1.12's release notes). */
const IR_VERSION = 8;

export type AttributeValue = number | number[] | string | { float: number };

/** A dimension: a number, or a name for a dynamic (symbolic) dimension such as "batch". */
export type Dim = number | string;

export class OnnxGraph {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly used = new Set<string>();

  /** Adds a float32 constant (a weight) and returns its name. */
  initializer(name: string, dims: number[], data: Float32Array): string {
    this.claim(name);
    this.initializers.push({
      name,
      dims,
      dataType: onnx.TensorProto.DataType.FLOAT,
      // raw_data is little-endian by the spec, which is what a Float32Array holds on LE hosts.
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** Adds one node and returns its output name (`output` defaults to the node name). */
  node(opType: string, inputs: string[], name: string, attrs: Record<string, AttributeValue> = {}, output = name): string {
    this.claim(output);
    this.nodes.push({
      opType,
      name,
      input: inputs,
      output: [output],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return output;
  }

  /** Serialises the graph as a ModelProto. */
  toModelBytes(opts: { name: string; inputs: ValueInfo[]; outputs: ValueInfo[]; opset: number; docString?: string }): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      irVersion: IR_VERSION,
      producerName: "diffeval",
      docString: opts.docString ?? "",
      opsetImport: [{ domain: "", version: opts.opset }],
      graph: {
        name: opts.name,
        node: this.nodes,
        initializer: this.initializers,
        input: opts.inputs.map(valueInfo),
        output: opts.outputs.map(valueInfo),
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`ONNX graph: name '${name}' defined twice`);
    this.used.add(name);
  }
}

export interface ValueInfo {
  name: string;
  dims: Dim[];
  /** The element type; float32 when left out. */
  elemType?: "float" | "int64";
}

function valueInfo(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType === "int64" ? onnx.TensorProto.DataType.INT64 : onnx.TensorProto.DataType.FLOAT,
        shape: { dim: v.dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Integers become INT / INTS; `{ float: x }` a FLOAT (a bare number would be ambiguous). */
function attribute(name: string, v: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === "number") return { name, type: T.INT, i: v };
  if (typeof v === "string") return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  return { name, type: T.FLOAT, f: v.float };
}
