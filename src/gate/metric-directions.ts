/**
 * Which way each gateable metric gets worse, and how its value is read from a results file.
 * The keys are those of `diffeval metrics --json` (src/evaluate.ts).
 */
import { describeJson, isPlainObject } from "./read-json.js";

/** The direction of a regression: "up" when a higher value is worse (a distance), "down" when a lower one is. */
export type BadDirection = "up" | "down";

export const METRIC_DIRECTIONS: ReadonlyMap<string, BadDirection> = new Map<string, BadDirection>([
  // distances between the real and fake distributions: lower is better
  ["fid", "up"],
  ["kid", "up"],
  ["sfid", "up"],
  ["fid_infinity", "up"],
  // MS-SSIM between pairs of fakes is a similarity: higher means less diverse samples
  ["msssim", "up"],
  // quality, fidelity and diversity scores: higher is better
  ["is", "down"],
  ["precision", "down"],
  ["recall", "down"],
  ["density", "down"],
  ["coverage", "down"],
  ["vendi", "down"],
  ["mean_pairwise_distance", "down"],
]);

export const GATEABLE_METRICS: readonly string[] = [...METRIC_DIRECTIONS.keys()];

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
