import { describe, expect, it } from "vitest";
import { openSession, parseDevice } from "../../src/models/session.js";
import { OnnxGraph } from "../../src/models/onnx-graph.js";

function reluModel(): Uint8Array {
  const g = new OnnxGraph();
  g.node("Relu", ["x"], "y");
  return g.toModelBytes({ name: "relu", inputs: [{ name: "x", dims: ["n", 4] }], outputs: [{ name: "y", dims: ["n", 4] }], opset: 17 });
}

describe("device selection", () => {
  it("auto falls back to a provider that works and says why it skipped the others", async () => {
    const opened = await openSession(reluModel(), "auto");
    // This machine class has no GPU: whatever auto picked must run, and cpu is always last.
    expect(["cpu", "cuda", "webgpu"]).toContain(opened.device);
    if (opened.device === "cpu") expect(opened.skipped.map((s) => s.split(":")[0])).toEqual(["cuda", "webgpu"]);
    await opened.session.release();
  });

  it("an explicit provider that cannot start is an E_DEVICE error with a hint", async () => {
    const attempt = openSession(reluModel(), "cuda").then(
      (o) => o.session.release().then(() => "started"),
      (e: { code: string; message: string }) => e,
    );
    const r = await attempt;
    if (r === "started") return; // a machine with the CUDA provider installed
    expect(r).toMatchObject({ code: "E_DEVICE", message: expect.stringContaining("ONNXRUNTIME_NODE_INSTALL=cuda12") });
  });

  it("rejects unknown device names", () => {
    expect(() => parseDevice("tpu")).toThrow(/auto, cpu, cuda, webgpu/);
    expect(parseDevice("webgpu")).toBe("webgpu");
  });
});
