/**
 * The results files the gate compares, normalised to a list of cells.
 *
 * Accepted inputs:
 * - `diffeval fid --json`: one cell (no parameters), metric `fid`.
 * - `diffeval metrics --json`: one cell; the metric keys sit at the top level next to the
 *   provenance (`fid`, `kid: {mean, std[, ci95]}`, `precision`, ...).
 * - a sweep's `results.json`, one cell per point of the parameter grid. Its schema is defined
 *   here, for the sweep to write:
 *
 *   {
 *     "schema": "diffeval-sweep-results/1",  // optional; when present it must be exactly this
 *     "protocol": "clean",                   // required, as in fid/metrics --json
 *     "weights_sha256": "6726825d...",       // required
 *     "version": "0.2.0",                    // the diffeval that wrote it
 *     "real": "./coco", "n_real": 5000,      // optional: the reference side every cell shares
 *     "cells": [                             // required, at least one; params unique per cell
 *       {
 *         "params": { "cfg_scale": 7.5, "sampler": "euler", "negative_prompt": "" },
 *         "metrics": { "fid": 12.31, "kid": { "mean": 0.0012, "std": 0.0003 }, "precision": 0.71 },
 *         "fake": "runs/sweep/cell-003", "n_fake": 1000, "n_real": 5000, "seconds": 42.1
 *       }
 *     ]
 *   }
 *
 *   `params` (required) holds the grid coordinates: string, number, boolean or null values.
 *   `metrics` (required) has the same keys and shapes as `diffeval metrics --json`. `fake`,
 *   `n_fake`, `n_real` and `seconds` are optional; other keys are ignored (room to grow). All
 *   cells share the top-level protocol and weights: a cell may repeat them, not change them.
 *
 * Cells of two files are the same cell when their params are equal as canonical JSON (keys
 * sorted): `{"cfg_scale": 7.5}` and `{"cfg_scale": "7.5"}` are different cells.
 */
import { DiffevalError } from "../errors.js";
import { describeJson, isPlainObject, parseJsonText } from "../io/read-json.js";

export const SWEEP_SCHEMA = "diffeval-sweep-results/1";

export type ParamValue = string | number | boolean | null;
export type CellParams = Record<string, ParamValue>;

export interface ResultCell {
  params: CellParams;
  /** Canonical JSON of the params: the identity of the cell across files. */
  key: string;
  /** Metric key -> raw value, read by estimateOf when a rule asks for it. */
  metrics: Record<string, unknown>;
  n_real?: number | null;
  n_fake?: number | null;
}

export interface GateResults {
  file: string;
  kind: "single" | "sweep";
  protocol: string;
  weights_sha256: string;
  version?: string;
  cells: ResultCell[];
  /** The file's JSON as read: what --update-baseline writes back. */
  raw: Record<string, unknown>;
}

const INPUT_HINT = "the output of `diffeval fid --json`, `diffeval metrics --json` or a sweep's results.json";

/** Parses and validates one results file (E_GATE_INPUT naming the file and field on any problem). */
export function parseResults(text: string, file: string): GateResults {
  const json = parseJsonText(text, file, "E_GATE_INPUT", INPUT_HINT);
  if (!isPlainObject(json)) throw inputError(file, `the top level is ${describeJson(json)}; expected ${INPUT_HINT}`);
  const protocol = requiredString(json, "protocol", file);
  const weights = requiredString(json, "weights_sha256", file);
  const version = typeof json.version === "string" ? json.version : undefined;
  const common = { file, protocol, weights_sha256: weights, version, raw: json };
  if ("cells" in json) return { ...common, kind: "sweep", cells: sweepCells(json, file) };
  return { ...common, kind: "single", cells: [singleCell(json)] };
}

/** Canonical JSON of params (sorted keys): equal for the same grid point whatever the key order. */
export function cellKey(params: CellParams): string {
  return JSON.stringify(Object.keys(params).sort().map((k) => [k, params[k]]));
}

/**
 * How a cell is shown: `cfg_scale=7.5, sampler=euler`, strings quoted when they are not simple
 * words. The same text works as a rule's cell selector (`fid[cfg_scale=7.5]:+0.5`).
 */
export function cellLabel(params: CellParams): string {
  return Object.keys(params)
    .sort()
    .map((k) => `${k}=${paramText(params[k])}`)
    .join(", ");
}

/** A parameter value as labels and selectors write it: strings quoted when bare they would read as something else. */
export function paramText(v: ParamValue): string {
  if (typeof v !== "string") return String(v);
  const ambiguous = /^(-?\d|true$|false$|null$)/.test(v);
  return /^[\w./:+-]+$/.test(v) && !ambiguous ? v : JSON.stringify(v);
}

function singleCell(json: Record<string, unknown>): ResultCell {
  return { params: {}, key: cellKey({}), metrics: json, n_real: countOf(json.n_real), n_fake: countOf(json.n_fake) };
}

function sweepCells(json: Record<string, unknown>, file: string): ResultCell[] {
  if (json.schema !== undefined && json.schema !== SWEEP_SCHEMA) {
    throw inputError(file, `schema is ${describeJson(json.schema)}; this diffeval reads "${SWEEP_SCHEMA}"`);
  }
  if (!Array.isArray(json.cells) || json.cells.length === 0) {
    throw inputError(file, `cells is ${describeJson(json.cells)}; expected a non-empty array of {params, metrics}`);
  }
  const seen = new Map<string, number>();
  return json.cells.map((raw, i) => {
    const cell = sweepCell(raw, `${file}: cells[${i}]`, json);
    const first = seen.get(cell.key);
    if (first !== undefined) throw inputError(file, `cells[${i}] has the same params as cells[${first}] (${cellLabel(cell.params)})`);
    seen.set(cell.key, i);
    return cell;
  });
}

function sweepCell(raw: unknown, where: string, top: Record<string, unknown>): ResultCell {
  if (!isPlainObject(raw)) throw new DiffevalError("E_GATE_INPUT", `${where} is ${describeJson(raw)}; expected {params, metrics}`);
  if (!isPlainObject(raw.params)) {
    throw new DiffevalError("E_GATE_INPUT", `${where}.params is ${describeJson(raw.params)}; expected an object of parameter values`);
  }
  for (const [k, v] of Object.entries(raw.params)) {
    if (v !== null && !["string", "number", "boolean"].includes(typeof v)) {
      throw new DiffevalError("E_GATE_INPUT", `${where}.params.${k} is ${describeJson(v)}; expected a string, number, boolean or null`);
    }
  }
  if (!isPlainObject(raw.metrics)) {
    throw new DiffevalError("E_GATE_INPUT", `${where}.metrics is ${describeJson(raw.metrics)}; expected an object like metrics --json`);
  }
  for (const key of ["protocol", "weights_sha256"] as const) {
    if (raw[key] !== undefined && raw[key] !== top[key]) {
      throw new DiffevalError("E_GATE_INPUT", `${where}.${key} is ${describeJson(raw[key])} but the file's is ${describeJson(top[key])}; a sweep's cells share one ${key}`);
    }
  }
  const params = raw.params as CellParams;
  return {
    params,
    key: cellKey(params),
    metrics: raw.metrics,
    n_real: countOf(raw.n_real ?? top.n_real),
    n_fake: countOf(raw.n_fake),
  };
}

function requiredString(json: Record<string, unknown>, field: string, file: string): string {
  const v = json[field];
  if (typeof v === "string" && v !== "") return v;
  throw inputError(file, `${field} is ${describeJson(v)}; expected a string (is this ${INPUT_HINT}?)`);
}

function countOf(v: unknown): number | null | undefined {
  return typeof v === "number" || v === null ? v : undefined;
}

function inputError(file: string, message: string): DiffevalError {
  return new DiffevalError("E_GATE_INPUT", `${file}: ${message}`);
}
