/**
 * The few float64 ONNX graphs the linear algebra runs on onnxruntime (see ort-float64.ts): a
 * general Gemm and one step of the blocked reduction of a symmetric matrix to band form.
 * All dims are symbolic, so one session serves every size.
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { OrtGraph } from "./ort-float64.js";

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
 * The GEMM part of one panel of the blocked Householder reduction of a symmetric matrix to band
 * form (the level-3 kernel of LAPACK dsytrd's dlatrd and of the SBR toolbox's dense-to-band
 * step; Golub & Van Loan, Matrix Computations 4th ed., 5.1.6 (WY form) and 8.3.1). With
 * Q = I - V T V^T acting on the trailing matrix A2 (k x k):
 *
 *   X = A2 V T,   Y = X - 1/2 V (T^T V^T X),   Q^T A2 Q = A2 - Y V^T - V Y^T = A2 - P
 *
 * This graph returns P = [Y V] [V Y]^T. A2 is read as full rows W (k x m, the trailing rows of
 * the m x m matrix, a zero-copy view) times VTpad = [0; V T] (m x b), so no column slice is
 * copied; the caller forms A2 - P in one pass (subtractBlock).
 */
export function bandUpdateGraph(): OrtGraph {
  return {
    key: "band-update",
    build: () => {
      const n = (opType: string, input: string[], output: string, attribute: OnnxTypes.IAttributeProto[] = []) =>
        onnx.NodeProto.create({ opType, input, output: [output], attribute });
      const nodes = [
        n("MatMul", ["W", "VTpad"], "X"),
        n("Transpose", ["V"], "Vt"),
        n("MatMul", ["Vt", "X"], "G"),
        n("Transpose", ["T"], "Tt"),
        n("MatMul", ["Tt", "G"], "S"),
        n("MatMul", ["V", "S"], "VS"),
        n("Mul", ["VS", "half"], "VShalf"),
        n("Sub", ["X", "VShalf"], "Y"),
        n("Concat", ["Y", "V"], "YV", [intAttr("axis", 1)]),
        n("Concat", ["V", "Y"], "VY", [intAttr("axis", 1)]),
        n("Transpose", ["VY"], "VYt"),
        n("MatMul", ["YV", "VYt"], "P"),
      ];
      const initializers = [onnx.TensorProto.create({ name: "half", dataType: DOUBLE, dims: [], doubleData: [0.5] })];
      return model(
        nodes,
        [matrixInput("W", "k", "m"), matrixInput("VTpad", "m", "b"), matrixInput("V", "k", "b"), matrixInput("T", "b", "b")],
        [matrixInput("P", "k", "k")],
        initializers,
      );
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
