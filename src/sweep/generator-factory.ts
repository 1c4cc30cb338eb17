/**
 * The generator a spec describes, through the generators' registry, with the spec's folder as
 * the base of relative paths (a ComfyUI workflow file, a command's cwd, an ONNX export folder),
 * errors naming the spec file and `spec.generator.FIELD`, and the sweep's --device for in-process generators.
 */
import { createGenerator } from "../generators/registry.js";
import type { Generator } from "../generators/generator.js";
import type { DeviceName } from "../models/session.js";
import { inSpecFile, type SweepSpec } from "./spec.js";

export function createSweepGenerator(spec: SweepSpec, opts: { device?: DeviceName; log?: (line: string) => void } = {}): Promise<Generator> {
  return createGenerator({ ...spec.generator }, { baseDir: spec.baseDir, field: "spec.generator", ...opts }).catch((e: unknown) => {
    throw inSpecFile(spec.file, e);
  });
}
