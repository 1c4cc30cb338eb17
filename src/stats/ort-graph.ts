/**
 * What the float64 onnxruntime worker (ort-float64.ts) runs, in its own file so that the graph
 * builders (float64-graphs.ts) and the worker both import it without importing each other: the
 * worker uses a builder (matmulGraph) for its warm-up, so declaring the type in the worker made
 * an import circle (DESIGN.md; test/architecture/imports.test.ts).
 */

/** A graph the worker runs; `key` names it (sessions are cached per key), `build` makes the ONNX bytes. */
export interface OrtGraph {
  key: string;
  build(): Uint8Array;
}
