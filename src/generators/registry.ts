/**
 * One entry point from a sweep spec's `generator` section to a `Generator`:
 * `{ type: "command" | "a1111" | "comfyui" | "analytic" | "onnx-sd", ...settings }`. Settings are checked
 * here field by field (type and spelling, errors naming `generator.FIELD`), so a typo in a spec
 * fails before any image is generated; the adapters check values (URLs, ranges) themselves.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { isPlainObject } from "../io/read-json.js";
import { createA1111Generator, type A1111GeneratorOptions } from "./a1111.js";
import { createComfyGenerator, type ComfyGeneratorOptions } from "./comfyui.js";
import { createCommandGenerator, type CommandGeneratorOptions } from "./command.js";
import type { AnalyticGeneratorOptions } from "./analytic/index.js";
import { DEVICES, type DeviceName } from "../models/session.js";
import type { OnnxSdGeneratorOptions } from "./onnx-sd/index.js";
import type { Generator } from "./generator.js";

export type GeneratorType = "command" | "a1111" | "comfyui" | "analytic" | "onnx-sd";

export type GeneratorSpec =
  | ({ type: "command" } & CommandGeneratorOptions)
  | ({ type: "a1111" } & A1111GeneratorOptions)
  /** `workflow` may be the API-format object or the path of its JSON file. */
  | ({ type: "comfyui" } & Omit<ComfyGeneratorOptions, "workflow"> & { workflow: object | string })
  | ({ type: "analytic" } & AnalyticGeneratorOptions)
  /** `model` is the export folder (relative to the spec's folder); `device` auto | cpu | cuda | webgpu. */
  | ({ type: "onnx-sd" } & { model: string; device?: string; scheduler?: string; steps?: number });

export interface CreateGeneratorOptions {
  /** Folder that relative paths in the spec (a ComfyUI workflow file, a command's cwd) are resolved from. */
  baseDir?: string;
  /** Prefix for field names in messages ("generator" -> "generator.baseUrl"). */
  field?: string;
  /** Device of in-process generators (onnx-sd) whose spec names none (default auto). */
  device?: DeviceName;
  /** Progress and notices of in-process generators. */
  log?: (line: string) => void;
}

type Kind = "string" | "integer" | "string[]" | "auth" | "env" | "workflow";

/** The settings each external generator accepts, and their JSON kinds. */
const SETTINGS: Record<GeneratorType, Record<string, Kind>> = {
  command: { argv: "string[]", timeoutMs: "integer", cwd: "string", env: "env", concurrency: "integer" },
  a1111: { baseUrl: "string", auth: "auth", concurrency: "integer", retries: "integer", timeoutMs: "integer", sampler: "string", backoffMs: "integer" },
  comfyui: {
    baseUrl: "string",
    workflow: "workflow",
    concurrency: "integer",
    pollIntervalMs: "integer",
    timeoutMs: "integer",
    retries: "integer",
    backoffMs: "integer",
  },
  // createAnalyticGenerator's AnalyticGeneratorOptions (it checks the sampler, guidance and unconditional names itself).
  analytic: { resolution: "integer", steps: "integer", sampler: "string", referenceSize: "integer", guidance: "string", unconditional: "string" },
  // createOnnxSdGenerator's options (the scheduler name is checked there, the device here).
  "onnx-sd": { model: "string", device: "string", scheduler: "string", steps: "integer" },
};
const REQUIRED: Record<GeneratorType, string[]> = {
  command: ["argv"],
  a1111: ["baseUrl"],
  comfyui: ["baseUrl", "workflow"],
  analytic: [],
  "onnx-sd": ["model"],
};
const TYPES: GeneratorType[] = ["command", "a1111", "comfyui", "analytic", "onnx-sd"];

/** `value` as a GeneratorSpec, or an E_GENERATOR_SPEC error naming the first bad field. */
export function checkGeneratorSpec(value: unknown, field = "generator"): GeneratorSpec {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw specError(`${field} must be an object with a "type" (${TYPES.join(", ")})`);
  }
  const spec = value as Record<string, unknown>;
  const type = spec.type;
  if (!TYPES.includes(type as GeneratorType)) {
    throw specError(`${field}.type must be one of ${TYPES.join(", ")}, got ${JSON.stringify(type)}`);
  }
  const settings = SETTINGS[type as GeneratorType];
  for (const [key, v] of Object.entries(spec)) {
    if (key === "type") continue;
    const kind = settings[key];
    if (!kind) throw specError(`${field}.${key} is not a setting of the "${type}" generator (settings: ${Object.keys(settings).join(", ")})`);
    const problem = kindProblem(kind, v);
    if (problem) throw specError(`${field}.${key} ${problem}, got ${clipJson(v)}`);
  }
  for (const key of REQUIRED[type as GeneratorType]) {
    if (spec[key] === undefined) throw specError(`${field}.${key} is required for the "${type}" generator`);
  }
  return spec as GeneratorSpec;
}

/** What is wrong with `v` for a setting of this kind, or undefined when nothing is. */
function kindProblem(kind: Kind, v: unknown): string | undefined {
  switch (kind) {
    case "string":
      return typeof v === "string" ? undefined : "must be a string";
    case "integer":
      return Number.isInteger(v) && (v as number) >= 0 ? undefined : "must be a non-negative integer";
    case "string[]":
      return Array.isArray(v) && v.every((s) => typeof s === "string") ? undefined : "must be an array of strings";
    case "auth":
      return isPlainObject(v) && typeof v.user === "string" && typeof v.password === "string" ? undefined : 'must be { "user": string, "password": string }';
    case "env":
      return isPlainObject(v) && Object.values(v).every((s) => typeof s === "string") ? undefined : "must be an object of string values";
    case "workflow":
      return typeof v === "string" || isPlainObject(v) ? undefined : "must be an API-format workflow object or the path of its JSON file";
  }
}

function clipJson(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function specError(message: string): DiffevalError {
  return new DiffevalError("E_GENERATOR_SPEC", message);
}

/** The generator a spec describes; no network or process is touched until `generate`. */
export async function createGenerator(value: unknown, options: CreateGeneratorOptions = {}): Promise<Generator> {
  const field = options.field ?? "generator";
  const spec = checkGeneratorSpec(value, field);
  const baseDir = options.baseDir ?? process.cwd();
  const { type: _type, ...settings } = spec;
  switch (spec.type) {
    case "command": {
      const s = settings as CommandGeneratorOptions;
      return createCommandGenerator({ ...s, cwd: s.cwd === undefined ? undefined : path.resolve(baseDir, s.cwd) });
    }
    case "a1111":
      return createA1111Generator(settings as A1111GeneratorOptions);
    case "comfyui": {
      const s = settings as Omit<ComfyGeneratorOptions, "workflow"> & { workflow: object | string };
      return createComfyGenerator({ ...s, workflow: workflowObject(s.workflow, baseDir, `${field}.workflow`) });
    }
    case "analytic":
      return analyticGenerator(settings as AnalyticGeneratorOptions);
    case "onnx-sd": {
      const s = settings as { model: string; device?: string; scheduler?: string; steps?: number };
      return onnxSdGenerator(
        {
          ...s,
          model: path.resolve(baseDir, s.model),
          device: deviceOf(s.device, `${field}.device`) ?? options.device,
          ...(options.log ? { log: options.log } : {}),
        },
        field,
      );
    }
  }
}

function deviceOf(value: string | undefined, field: string): DeviceName | undefined {
  if (value === undefined || (DEVICES as readonly string[]).includes(value)) return value as DeviceName | undefined;
  throw specError(`${field} must be ${DEVICES.slice(0, -1).join(", ")} or ${DEVICES.at(-1)}, got ${JSON.stringify(value)}`);
}

/** The workflow itself, read from its JSON file when the spec gives a path. */
function workflowObject(workflow: object | string, baseDir: string, field: string): object {
  if (typeof workflow !== "string") return workflow;
  const file = path.resolve(baseDir, workflow);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw specError(`${field}: cannot read ${file}: ${(err as Error).message}`);
  }
  return parseJsonText(text, `${field}: ${file}`, "E_GENERATOR_SPEC", "a ComfyUI workflow in API format (JSON)") as object;
}

/** Loaded lazily: the analytic model is the one generator that pulls in numeric code. */
async function analyticGenerator(settings: AnalyticGeneratorOptions): Promise<Generator> {
  const { createAnalyticGenerator } = await import("./analytic/index.js");
  return createAnalyticGenerator(settings);
}

/** Loaded lazily too: onnxruntime sessions open on the first image. */
async function onnxSdGenerator(settings: OnnxSdGeneratorOptions, field: string): Promise<Generator> {
  const { createOnnxSdGenerator, SCHEDULERS } = await import("./onnx-sd/index.js");
  if (settings.scheduler !== undefined && !(SCHEDULERS as readonly string[]).includes(settings.scheduler)) {
    throw specError(`${field}.scheduler must be one of ${SCHEDULERS.join(", ")}, got ${JSON.stringify(settings.scheduler)}`);
  }
  return createOnnxSdGenerator(settings);
}
