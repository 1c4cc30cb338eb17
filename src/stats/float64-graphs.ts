/**
 * The few float64 ONNX graphs the linear algebra runs on onnxruntime (see ort-float64.ts): Gemm,
 * MatMul and the panel factor of the blocked reduction of a symmetric matrix to band form.
 * All dims are symbolic, so one session serves every size. Gemm's alpha and beta are float32
 * attributes; the values used (1, -1, -0.5) are exact.
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { OrtGraph } from "./ort-graph.js";

const { onnx } = onnxProto;
const DOUBLE = onnx.TensorProto.DataType.DOUBLE;

/** Y = alpha * op(A) * op(B) [+ beta * C], op = transpose when the flag is set (ONNX Gemm). */
export function gemmGraph(transA: boolean, transB: boolean, alpha: number, beta: number | null): OrtGraph {
  return {
    key: `gemm:${+transA}${+transB}:${alpha}:${beta}`,
    build: () => {
      const inputs = beta === null ? ["A", "B"] : ["A", "B", "C"];
      const node = onnx.NodeProto.create({
        opType: "Gemm",
        input: inputs,
        output: ["Y"],
        attribute: [
          intAttr("transA", transA ? 1 : 0),
          intAttr("transB", transB ? 1 : 0),
          floatAttr("alpha", alpha),
          floatAttr("beta", beta ?? 0),
        ],
      });
      return model([node], inputs.map((n) => matrixInput(n, `${n}r`, `${n}c`)), [matrixInput("Y", "m", "n")], []);
    },
  };
}

/** Y = A B (ONNX MatMul: MLAS DGEMM, measurably faster than Gemm with a transposed operand). */
export function matmulGraph(): OrtGraph {
  return {
    key: "matmul",
    build: () =>
      model(
        [onnx.NodeProto.create({ opType: "MatMul", input: ["A", "B"], output: ["Y"] })],
        [matrixInput("A", "m", "k"), matrixInput("B", "k", "n")],
        [matrixInput("Y", "m", "n")],
        [],
      ),
  };
}

/**
 * The factor Y of one panel's symmetric update in the blocked reduction to band form (LAPACK
 * dlatrd's W; Golub & Van Loan, Matrix Computations 4th ed., 5.1.6 and 8.3.1). With
 * Q = I - V T V^T and the current matrix A^(p) = A - Z^T Zs (pending updates of earlier panels,
 * applied lazily; `lazy` = false when there are none):
 *
 *   X = A^(p) V T = A B - Z^T (Zs B),  B = V T,
 *   Y = X - 1/2 V (T^T (V^T X)),  so that Q^T A^(p) Q = A^(p) - Y V^T - V Y^T.
 *
 * V and B come zero-padded to the matrix's m rows, so A is read whole and never sliced.
 */
export function panelUpdateFactorGraph(lazy: boolean): OrtGraph {
  return {
    key: `panel-y:${+lazy}`,
    build: () => {
      const n = (opType: string, input: string[], output: string, attribute: OnnxTypes.IAttributeProto[] = []) =>
        onnx.NodeProto.create({ opType, input, output: [output], attribute });
      const nodes = lazy
        ? [
            n("MatMul", ["A", "B"], "AB"),
            n("MatMul", ["Zs", "B"], "S"),
            n("Gemm", ["Z", "S", "AB"], "X", [intAttr("transA", 1), floatAttr("alpha", -1), floatAttr("beta", 1)]),
          ]
        : [n("MatMul", ["A", "B"], "X")];
      nodes.push(
        n("Gemm", ["V", "X"], "G", [intAttr("transA", 1)]),
        n("Gemm", ["T", "G"], "TG", [intAttr("transA", 1)]),
        n("Gemm", ["V", "TG", "X"], "Y", [floatAttr("alpha", -0.5), floatAttr("beta", 1)]),
      );
      const inputs = [matrixInput("A", "m", "m"), matrixInput("B", "m", "b"), matrixInput("V", "m", "b"), matrixInput("T", "b", "b")];
      if (lazy) inputs.push(matrixInput("Z", "k", "m"), matrixInput("Zs", "k", "m"));
      return model(nodes, inputs, [matrixInput("Y", "m", "b")], []);
    },
  };
}

function model(
  nodes: OnnxTypes.INodeProto[],
  inputs: OnnxTypes.IValueInfoProto[],
  outputs: OnnxTypes.IValueInfoProto[],
  initializer: OnnxTypes.ITensorProto[],
): Uint8Array {
  const graph = onnx.GraphProto.create({ name: "diffeval-float64", node: nodes, input: inputs, output: outputs, initializer });
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "diffeval",
    graph,
  });
  return onnx.ModelProto.encode(m).finish();
}

function matrixInput(name: string, rows: string, cols: string): OnnxTypes.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: DOUBLE, shape: { dim: [{ dimParam: rows }, { dimParam: cols }] } } },
  });
}

function intAttr(name: string, i: number): OnnxTypes.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}

function floatAttr(name: string, f: number): OnnxTypes.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });
}
