/**
 * Which way each gateable metric gets worse, and how its value is read from a results file. Both
 * come from the metric registry (metrics/registry.ts): every key `diffeval metrics --json` (or a
 * sweep's results) can hold is gateable, under the key's own name.
 */
import { METRIC_KEYS, metricKey } from "../metrics/registry.js";
import { describeJson, isPlainObject } from "../io/read-json.js";

/** The direction of a regression: "up" when a higher value is worse (a distance), "down" when a lower one is. */
export type BadDirection = "up" | "down";

/** Distances and similarities (worse when higher) first, then scores (worse when lower), each in registry order. */
export const METRIC_DIRECTIONS: ReadonlyMap<string, BadDirection> = new Map(
  [...METRIC_KEYS.filter((k) => k.better === "lower"), ...METRIC_KEYS.filter((k) => k.better === "higher")].map(
    (k): [string, BadDirection] => [k.key, k.better === "lower" ? "up" : "down"],
  ),
);

export const GATEABLE_METRICS: readonly string[] = [...METRIC_DIRECTIONS.keys()];

/** The value of `key` as the gate compares it (a per-group result: its mean over groups). */
export function gateValueOf(key: string, value: unknown): unknown {
  const read = metricKey(key)?.gateValue;
  return read && value !== undefined ? read(value) : value;
}

/** A metric's value as the gate compares it: the point estimate, and its bootstrap interval when there is one. */
export interface Estimate {
  mean: number;
  ci95?: [number, number];
}

/**
 * A results value as an Estimate: a number (`fid`), `{mean, std[, ci95]}` (`kid`, `is`,
 * `msssim`, anything under --bootstrap) or `{value, ...}` (`fid_infinity`). Returns undefined when
 * the value is absent and an error message (a string) when it has another shape: the caller
 * knows the file and cell to name.
 */
export function estimateOf(value: unknown): Estimate | string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? { mean: value } : `is ${value}`;
  if (!isPlainObject(value)) return `is ${describeJson(value)}, expected a number or {mean, std[, ci95]}`;
  const point = "mean" in value ? value.mean : value.value;
  if (typeof point !== "number" || !Number.isFinite(point)) {
    return `has mean ${describeJson(point)}, expected a finite number`;
  }
  if (value.ci95 === undefined) return { mean: point };
  const ci = value.ci95;
  if (!Array.isArray(ci) || ci.length !== 2 || !ci.every((x) => typeof x === "number" && Number.isFinite(x)) || ci[0] > ci[1]) {
    return `has ci95 ${describeJson(ci)}, expected [low, high]`;
  }
  return { mean: point, ci95: [ci[0], ci[1]] };
}
