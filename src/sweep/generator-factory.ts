/**
 * The generator a spec describes, through the generators' registry, with the spec's folder as
 * the base of relative paths (a ComfyUI workflow file, a command's cwd) and errors naming
 * `spec.generator.FIELD`.
 */
import { createGenerator } from "../generators/registry.js";
import type { Generator } from "../generators/generator.js";
import type { SweepSpec } from "./spec.js";

export function createSweepGenerator(spec: SweepSpec): Promise<Generator> {
  return createGenerator({ ...spec.generator }, { baseDir: spec.baseDir, field: "spec.generator" });
}
