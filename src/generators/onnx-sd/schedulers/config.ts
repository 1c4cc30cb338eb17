/**
 * A diffusers `scheduler_config.json` read as diffusers reads it, and the two tables every
 * scheduler derives from it: the training schedule (alphas_cumprod) and the inference timesteps.
 *
 * Why this exactness: the built-in ONNX Stable Diffusion generator must give diffusers' image for
 * a seed, so each number here is diffusers' own (diffusers schedulers/scheduling_ddim.py,
 * scheduling_euler_discrete.py, scheduling_pndm.py, read at 0.3x):
 *
 * - Missing keys take the defaults of the class that is built, not of the class the file names:
 *   `DDIMScheduler.from_config(pndm_file)` keeps the keys the file has and fills the rest from
 *   DDIM's `__init__` (so `clip_sample` is true unless the file says false, and an Euler config
 *   without `timestep_spacing` spaces by "linspace" while DDIM and PNDM space by "leading").
 *   Keys the built class does not take are ignored, as `from_config` ignores them.
 * - Betas are torch float32 tensors: `torch.linspace(b0, b1, N)` ("linear"),
 *   `torch.linspace(sqrt b0, sqrt b1, N) ** 2` ("scaled_linear", the latent-diffusion schedule),
 *   the GLIDE cosine `betas_for_alpha_bar` ("squaredcos_cap_v2"), or `trained_betas`. torch's CPU
 *   linspace computes `start + step*i` below the midpoint and `end - step*(N-1-i)` above it, in
 *   float32 with one rounding each (ATen RangeFactoriesKernel.cpp; see torchLinspaceF32).
 *   `alphas = 1 - betas` (float32), `alphas_cumprod = cumprod(alphas)`: torch's CPU cumprod keeps
 *   its running product in double (acc_type of float) and stores each entry as float32.
 * - Timesteps by `timestep_spacing` (Table 2 of Lin et al., "Common Diffusion Noise Schedules and
 *   Sample Steps are Flawed", 2023, as diffusers implements it, numpy arithmetic included:
 *   `np.linspace` is i*step with the last point set to the stop, `np.arange` with a float step is
 *   start + i*(fl(start+step) - start), `np.round` rounds half to even):
 *     leading  (arange(steps) * (N // steps))[::-1] + steps_offset
 *     linspace linspace(0, N-1, steps)[::-1], rounded to integers by DDIM and PNDM; Euler keeps
 *              the float32 values (10 steps: 999, 888, ..., 111, 0)
 *     trailing round(arange(N, 0, -N/steps)) - 1
 *   PNDM (PLMS form, `skip_prk_steps`) calls the UNet once more: its list is
 *   concat(t[:-1], t[-2:-1], t[-1:]) reversed, the second entry repeating the first step's target.
 * - Features that change the arithmetic but are not built in (PNDM's Runge-Kutta warm-up,
 *   dynamic thresholding, zero-terminal-SNR rescaling, Karras/exponential/beta sigmas,
 *   log-linear sigma interpolation) are refused with a message naming the file and the key,
 *   never silently ignored.
 */
import { DiffevalError } from "../../../errors.js";
import { describeJson } from "../../../io/read-json.js";

export type SchedulerName = "ddim" | "euler" | "pndm";

/**
 * The most training timesteps a config may declare. Every released DDPM, Stable Diffusion 1.x/2.x
 * and SDXL checkpoint was trained with 1000 (diffusers' default); the cap leaves a hundredfold room
 * for research schedules while keeping the tables built from it (a few float32 arrays of that
 * length) small: 10^9 would be gigabytes and minutes before the first step.
 */
export const MAX_TRAIN_TIMESTEPS = 100_000;

/** The built-in schedulers, in the order the CLI lists them. */
export const SCHEDULERS: readonly SchedulerName[] = ["ddim", "euler", "pndm"];

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type PredictionType = "epsilon" | "v_prediction" | "sample";
export type TimestepSpacing = "leading" | "linspace" | "trailing";

/** A scheduler config with every key resolved for one scheduler class (`kind`). */
export interface SchedulerConfig {
  /** The class whose defaults filled the missing keys; createScheduler builds only this one. */
  readonly kind: SchedulerName;
  /** Where the config came from (a file path), for messages. */
  readonly source: string;
  readonly numTrainTimesteps: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly betaSchedule: BetaSchedule;
  /** Explicit betas (length numTrainTimesteps); when given they replace the beta schedule. */
  readonly trainedBetas: readonly number[] | null;
  readonly predictionType: PredictionType;
  readonly stepsOffset: number;
  readonly timestepSpacing: TimestepSpacing;
  /** DDIM: clamp the predicted x0 to [-clipSampleRange, clipSampleRange] (false for the others). */
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
  /** DDIM and PNDM: the alphas_cumprod after the last step, 1 (true) or alphas_cumprod[0] (false). */
  readonly setAlphaToOne: boolean;
  /** Euler: the sigma after the last step, 0 ("zero") or the smallest training sigma ("sigma_min"). */
  readonly finalSigmasType: "zero" | "sigma_min";
}

const CLASS_NAMES: Readonly<Record<string, SchedulerName>> = {
  DDIMScheduler: "ddim",
  EulerDiscreteScheduler: "euler",
  PNDMScheduler: "pndm",
};

const CLASS_OF: Readonly<Record<SchedulerName, string>> = { ddim: "DDIMScheduler", euler: "EulerDiscreteScheduler", pndm: "PNDMScheduler" };

/** The scheduler named by a config's `_class_name`; undefined for any class that is not built in. */
export function schedulerNameOfClass(className: string | undefined): SchedulerName | undefined {
  return className !== undefined && Object.hasOwn(CLASS_NAMES, className) ? CLASS_NAMES[className] : undefined;
}

/** A scheduler error that names the config file. */
function configError(source: string, message: string): DiffevalError {
  return new DiffevalError("E_SCHEDULER", `${source}: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Reading the JSON
// ---------------------------------------------------------------------------------------------

/**
 * Resolve a parsed `scheduler_config.json` for the scheduler `kind` (default: the one its
 * `_class_name` names) with diffusers' `from_config` semantics: the file's keys where present,
 * the class defaults otherwise. Throws E_SCHEDULER naming `source` and the key at fault.
 */
export function parseSchedulerConfig(json: unknown, source: string, kind?: SchedulerName): SchedulerConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw configError(source, `a scheduler config must be a JSON object, got ${json === null ? "null" : Array.isArray(json) ? "an array" : typeof json}`);
  }
  const raw = json as Record<string, unknown>;
  const className = typeof raw._class_name === "string" ? raw._class_name : undefined;
  const resolvedKind = kind ?? schedulerNameOfClass(className);
  if (resolvedKind === undefined) {
    throw configError(source, `the scheduler class ${className ?? "(no _class_name)"} is not built in; choose one of ${SCHEDULERS.join(", ")}`);
  }
  const read = new KeyReader(raw, source, CLASS_OF[resolvedKind]);

  const numTrainTimesteps = read.integer("num_train_timesteps", 1000, 1, MAX_TRAIN_TIMESTEPS, "every released DDPM and Stable Diffusion model uses 1000");
  const trainedBetas = read.betas("trained_betas", numTrainTimesteps);
  const config: SchedulerConfig = {
    kind: resolvedKind,
    source,
    numTrainTimesteps,
    betaStart: read.number("beta_start", 0.0001),
    betaEnd: read.number("beta_end", 0.02),
    betaSchedule: read.choice("beta_schedule", "linear", ["linear", "scaled_linear", "squaredcos_cap_v2"] as const),
    trainedBetas,
    predictionType: predictionTypeFor(resolvedKind, read),
    // An offset of N or more puts every "leading" timestep past the training schedule.
    stepsOffset: read.integer("steps_offset", 0, 0, numTrainTimesteps - 1, "an offset within the num_train_timesteps training steps"),
    timestepSpacing: read.choice("timestep_spacing", resolvedKind === "euler" ? "linspace" : "leading", ["leading", "linspace", "trailing"] as const),
    clipSample: resolvedKind === "ddim" ? read.boolean("clip_sample", true) : false,
    clipSampleRange: resolvedKind === "ddim" ? read.number("clip_sample_range", 1.0, 0) : 1.0,
    setAlphaToOne: resolvedKind === "ddim" ? read.boolean("set_alpha_to_one", true) : resolvedKind === "pndm" ? read.boolean("set_alpha_to_one", false) : false,
    finalSigmasType: resolvedKind === "euler" ? read.choice("final_sigmas_type", "zero", ["zero", "sigma_min"] as const) : "zero",
  };
  refuseUnbuiltFeatures(resolvedKind, read, config);
  checkBetaRange(config);
  return config;
}

/**
 * beta_start and beta_end, where they make the betas (a linear or scaled_linear schedule without
 * trained_betas; diffusers ignores them otherwise): each beta is the variance of the noise one
 * training step adds (Ho et al. 2020, eq. 2), so 0 < beta < 1, and every published schedule rises.
 * A beta_end of 1.5 makes 1 - beta negative, alphas_cumprod change sign and the noise levels NaN.
 */
function checkBetaRange(config: SchedulerConfig): void {
  if (config.trainedBetas !== null || config.betaSchedule === "squaredcos_cap_v2") return;
  const { betaStart, betaEnd } = config;
  if (betaStart > 0 && betaStart <= betaEnd && betaEnd < 1) return;
  throw configError(
    config.source,
    `beta_start ${betaStart} and beta_end ${betaEnd} must satisfy 0 < beta_start <= beta_end < 1 (each beta is the variance of one training step's noise; Stable Diffusion uses 0.00085 and 0.012)`,
  );
}

/** diffusers' prediction types per class: DDIM all three, Euler all three ("original_sample" is its
 * old name for "sample"), PNDM epsilon and v_prediction. */
function predictionTypeFor(kind: SchedulerName, read: KeyReader): PredictionType {
  const names = {
    ddim: ["epsilon", "v_prediction", "sample"],
    euler: ["epsilon", "v_prediction", "sample", "original_sample"],
    pndm: ["epsilon", "v_prediction"],
  } as const;
  const value = read.choice<PredictionType | "original_sample">("prediction_type", "epsilon", names[kind]);
  return value === "original_sample" ? "sample" : value;
}

/** Keys whose non-default values change the arithmetic in ways not built in here. */
function refuseUnbuiltFeatures(kind: SchedulerName, read: KeyReader, config: SchedulerConfig): void {
  const other = SCHEDULERS.filter((s) => s !== kind).join(" or ");
  if (kind === "pndm" && !read.boolean("skip_prk_steps", false)) {
    read.refuse("skip_prk_steps", "false (PNDM's Runge-Kutta warm-up) is not built in; only its PLMS form (skip_prk_steps true, as Stable Diffusion configs set it) is", `choose --scheduler ${other}`);
  }
  if (kind === "ddim" && read.boolean("thresholding", false)) {
    read.refuse("thresholding", "true (dynamic thresholding) is not built in", `choose --scheduler ${other}`);
  }
  if (kind !== "pndm" && read.boolean("rescale_betas_zero_snr", false)) {
    read.refuse("rescale_betas_zero_snr", "true (zero-terminal-SNR rescaling) is not built in", `choose --scheduler ${other}`);
  }
  if (kind === "euler") {
    for (const key of ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"]) {
      if (read.boolean(key, false)) read.refuse(key, "true is not built in (only the interpolated training sigmas are)", `choose --scheduler ${other}`);
    }
    if (read.choice("interpolation_type", "linear", ["linear", "log_linear"] as const) !== "linear") {
      read.refuse("interpolation_type", '"log_linear" is not built in (only "linear" is)', `choose --scheduler ${other}`);
    }
    // Continuous timesteps change what the UNet is fed only for v-prediction (0.25 log sigma).
    if (read.choice("timestep_type", "discrete", ["discrete", "continuous"] as const) === "continuous" && config.predictionType === "v_prediction") {
      read.refuse("timestep_type", '"continuous" with v_prediction (timesteps 0.25 log sigma) is not built in', `choose --scheduler ${other}`);
    }
  }
}

/** Typed access to the config's keys, each missing or null key taking the class default. */
class KeyReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly source: string,
    private readonly className: string,
  ) {}

  private value(key: string): unknown {
    return Object.hasOwn(this.raw, key) ? this.raw[key] : undefined;
  }

  private bad(key: string, expected: string): DiffevalError {
    return configError(this.source, `"${key}" must be ${expected} (as ${this.className} takes it), got ${describeJson(this.value(key))}`);
  }

  refuse(key: string, what: string, advice: string): never {
    throw configError(this.source, `"${key}": ${what} for ${this.className}; ${advice}`);
  }

  number(key: string, fallback: number, min = -Infinity): number {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) throw this.bad(key, min === -Infinity ? "a finite number" : `a finite number >= ${min}`);
    return v;
  }

  /** An integer in [min, max]; `why` explains the upper bound in the message. */
  integer(key: string, fallback: number, min: number, max: number, why: string): number {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw this.bad(key, `an integer from ${min} to ${max} (${why})`);
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw this.bad(key, "true or false");
    return v;
  }

  choice<const T extends string>(key: string, fallback: T, names: readonly T[]): T {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || !(names as readonly string[]).includes(v)) {
      throw configError(this.source, `unknown ${key} ${typeof v === "string" ? JSON.stringify(v.slice(0, 80)) : describeJson(v)} for ${this.className}; known: ${names.map((n) => `"${n}"`).join(", ")}`);
    }
    return v as T;
  }

  /** `trained_betas`: null, or one beta in (0, 1) per training timestep (a beta of 0 makes the
   * noise level 0 at that step, and Euler's step divides by it). */
  betas(key: string, count: number): readonly number[] | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || v.length !== count || !v.every((b) => typeof b === "number" && b > 0 && b < 1)) {
      throw configError(this.source, `"${key}" must be null or ${count} numbers in (0, 1) (one per training timestep, num_train_timesteps = ${count})`);
    }
    return v as number[];
  }
}

// ---------------------------------------------------------------------------------------------
// The training schedule
// ---------------------------------------------------------------------------------------------

const f32 = Math.fround;

/**
 * `torch.linspace(start, end, n, dtype=float32)` as the CPU kernel computes it: float32 start, end
 * and step = (end - start)/(n - 1); `start + step*i` below the midpoint, `end - step*(n-1-i)` from
 * it, each a fused multiply-add (one rounding) in the compiled kernel. In float64 the product of a
 * float32 step and an integer below 2^29 is exact, and so is the sum for betas' magnitudes, so one
 * Math.fround of the float64 expression is that single rounding. (Checked bit for bit against
 * torch 2.11's CPU linspace, AVX2 and AVX512 dispatch, for both Stable Diffusion beta ranges.)
 */
function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const s = f32(start);
  const e = f32(end);
  if (n === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (n - 1));
  const halfway = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < halfway ? s + step * i : e - step * (n - i - 1);
  return out;
}

/** diffusers' `betas_for_alpha_bar(N)` with the cosine alpha_bar (Nichol & Dhariwal 2021), max beta 0.999. */
function cosineBetas(n: number): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  return Float32Array.from({ length: n }, (_, i) => Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999));
}

/** The betas as the float32 tensor diffusers builds. */
export function betas(config: SchedulerConfig): Float32Array {
  const n = config.numTrainTimesteps;
  if (config.trainedBetas) return Float32Array.from(config.trainedBetas);
  switch (config.betaSchedule) {
    case "linear":
      return torchLinspaceF32(config.betaStart, config.betaEnd, n);
    case "scaled_linear":
      return torchLinspaceF32(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), n).map((b) => f32(b * b));
    case "squaredcos_cap_v2":
      return cosineBetas(n);
  }
}

/**
 * alphas_cumprod = cumprod(1 - beta): float32 entries, the running product in float64 (torch CPU).
 * Refused when the product reaches a value whose noise level sqrt((1 - a)/a) is not a finite
 * float32 (betas near 1, or many steps of large betas): every scheduler divides by sqrt(a) there.
 */
export function alphasCumprod(config: SchedulerConfig): Float32Array {
  const b = betas(config);
  const out = new Float32Array(b.length);
  let product = 1;
  for (let i = 0; i < b.length; i++) {
    product *= f32(1 - b[i]);
    out[i] = product;
  }
  // With every beta in (0, 1) the product only falls: its last entry is the smallest.
  const last = out[out.length - 1];
  if (!(last > 0 && Number.isFinite(f32(f32(1 - last) / last)))) {
    throw configError(
      config.source,
      `alphas_cumprod falls to ${last} by the last of the ${out.length} training timesteps, where the noise level sqrt((1 - a)/a) is not a finite float32; lower beta_end or num_train_timesteps (Stable Diffusion's schedule ends at 0.0047)`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The inference timesteps
// ---------------------------------------------------------------------------------------------

/** numpy's `np.round` / `rint`: half to even. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** `np.linspace(0, stop, num)` in float64: i * (stop / (num - 1)), the last point exactly `stop`. */
function numpyLinspace(stop: number, num: number): number[] {
  if (num === 1) return [0];
  const step = stop / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step));
}

/** `np.arange(start, stop, step)` for a float step: ceil((stop - start)/step) values, start + i*delta
 * with delta = fl(start + step) - start (numpy's DOUBLE_fill). */
function numpyArange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length }, (_, i) => (i === 0 ? start : i === 1 ? start + step : start + i * delta));
}

/** arange(steps) * (N // steps) + steps_offset, ascending ("leading"). */
function leading(config: SchedulerConfig, steps: number): number[] {
  const ratio = Math.floor(config.numTrainTimesteps / steps);
  return Array.from({ length: steps }, (_, k) => k * ratio + config.stepsOffset);
}

/**
 * round(arange(N, 0, -N/steps)) - 1, descending ("trailing"). For some step counts (N = 1000: 61,
 * 103, 121, ...) N / (N/steps) rounds up past `steps`, numpy's arange returns one value more, and
 * diffusers runs an extra step at timestep -1; that flaw is refused rather than reproduced.
 */
function trailing(config: SchedulerConfig, steps: number): number[] {
  const n = config.numTrainTimesteps;
  const out = numpyArange(n, 0, -n / steps).map((t) => roundHalfEven(t) - 1);
  if (out.length !== steps) {
    throw configError(
      config.source,
      `${steps} steps with trailing spacing: diffusers' np.arange(${n}, 0, -${n}/${steps}) gives ${out.length} timesteps (the last ${out[out.length - 1]}), a rounding flaw not reproduced here; choose another number of steps or another timestep_spacing`,
    );
  }
  return out;
}

/**
 * The timesteps diffusers' `set_timesteps(steps)` gives the scheduler `kind` (default the config's):
 * DDIM's and Euler's `steps` values, descending; PNDM's PLMS list of steps + 1 UNet calls (steps
 * for a single step). Euler's are float32 values, the others integers.
 */
export function timestepsFor(config: SchedulerConfig, steps: number, kind: SchedulerName = config.kind): number[] {
  const n = config.numTrainTimesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > n) {
    throw configError(config.source, `${steps} inference steps: the number of steps must be an integer from 1 to num_train_timesteps (${n})`);
  }
  // Euler interpolates sigma at any t (np.interp clamps at the ends): no range check there.
  if (kind === "euler") return spaced(config, steps, f32);
  const descending = spaced(config, steps, roundHalfEven);
  let out = descending;
  if (kind === "pndm") {
    const t = descending.slice().reverse(); // PNDM's ascending `_timesteps`
    out = [...t.slice(0, -1), ...t.slice(-2, -1), ...t.slice(-1)].reverse();
  }
  const outside = out.find((t) => t < 0 || t >= n);
  if (outside !== undefined) {
    throw configError(
      config.source,
      `${steps} steps with ${config.timestepSpacing} spacing and steps_offset ${config.stepsOffset} give timestep ${outside}, outside the ${n} training timesteps; use fewer steps or another timestep_spacing`,
    );
  }
  return out;
}

/** The `steps` timesteps of the config's spacing, descending; `linspaceValue` turns linspace's
 * float64 points into the class's values (rounded half to even, or float32 for Euler). */
function spaced(config: SchedulerConfig, steps: number, linspaceValue: (t: number) => number): number[] {
  switch (config.timestepSpacing) {
    case "leading":
      return leading(config, steps).reverse();
    case "linspace":
      return numpyLinspace(config.numTrainTimesteps - 1, steps).map(linspaceValue).reverse();
    case "trailing":
      return trailing(config, steps);
  }
}

/** The checks every scheduler's `step`/`scaleModelInput` makes on its arguments. */
export function checkCall(name: SchedulerName, i: number, calls: number, ...arrays: Float32Array[]): void {
  if (!Number.isInteger(i) || i < 0 || i >= calls) {
    throw new DiffevalError("E_USAGE", `${name} scheduler: call index ${i} is outside 0..${calls - 1}`);
  }
  if (arrays.some((a) => a.length !== arrays[0].length)) {
    throw new DiffevalError("E_USAGE", `${name} scheduler: model output and sample differ in size (${arrays.map((a) => a.length).join(" vs ")})`);
  }
}
