/**
 * diffusers' `EulerDiscreteScheduler` without churn (s_churn = 0): Euler's method on the
 * probability-flow ODE in sigma (Karras et al., "Elucidating the Design Space of Diffusion-Based
 * Generative Models", NeurIPS 2022, Algorithm 2 with gamma = 0), as k-diffusion's `sample_euler`.
 *
 * Numbers as diffusers makes them (scheduling_euler_discrete.py):
 * - Training sigmas sqrt((1 - a)/a) over alphas_cumprod, computed as float32 torch ops.
 * - At each (float32) timestep, sigma by `np.interp` over t = 0..N-1 in float64 (exact at integer
 *   t; slope (s[j+1] - s[j]) * (t - j) + s[j] between), then a final sigma (0, or the smallest
 *   training sigma for final_sigmas_type "sigma_min"), all stored as float32.
 * - init_noise_sigma: the largest sigma for linspace/trailing spacing, sqrt(sigma_max^2 + 1) for
 *   leading.
 * - scale_model_input: x / sqrt(sigma^2 + 1).
 * - step: x0 = x - sigma eps (epsilon), eps * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1)
 *   (v_prediction), or the output itself (sample); derivative = (x - x0) / sigma;
 *   x_next = x + derivative * (sigma_next - sigma).
 * The UNet is fed the float timesteps themselves (linspace, 10 steps: 999, 888, ..., 0).
 */
import { alphasCumprod, checkCall, timestepsFor, type SchedulerConfig } from "./config.js";
import type { Scheduler } from "./scheduler.js";

const f32 = Math.fround;

/** sqrt((1 - a)/a) per training timestep, as torch computes it on the float32 alphas_cumprod. */
function trainingSigmas(ac: Float32Array): Float32Array {
  return ac.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** `np.interp(t, arange(len(table)), table)` in float64. */
function interpolate(table: Float32Array, t: number): number {
  const last = table.length - 1;
  if (t >= last) return table[last];
  if (t <= 0) return table[0];
  const j = Math.floor(t);
  if (j === t) return table[j];
  const slope = table[j + 1] - table[j];
  return slope * (t - j) + table[j];
}

/** The step sigmas (one per timestep) and the final one, as the float32 tensor diffusers stores. */
export function eulerSigmas(config: SchedulerConfig, timesteps: readonly number[]): Float32Array {
  const table = trainingSigmas(alphasCumprod(config));
  const out = new Float32Array(timesteps.length + 1);
  timesteps.forEach((t, i) => (out[i] = interpolate(table, t)));
  out[timesteps.length] = config.finalSigmasType === "sigma_min" ? table[0] : 0;
  return out;
}

/** sqrt(sigma^2 + 1) in float32 torch ops. */
function inputScale(sigma: number): number {
  return f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
}

export function createEuler(config: SchedulerConfig, steps: number): Scheduler {
  const timesteps = timestepsFor(config, steps, "euler");
  const sigmas = eulerSigmas(config, timesteps);
  const sigmaMax = sigmas.reduce((m, s) => Math.max(m, s), 0);
  const initNoiseSigma = config.timestepSpacing === "leading" ? inputScale(sigmaMax) : sigmaMax;
  return {
    name: "euler",
    timesteps,
    initNoiseSigma,
    scaleModelInput(sample, i) {
      checkCall("euler", i, timesteps.length);
      const scale = inputScale(sigmas[i]);
      return sample.map((v) => f32(v / scale));
    },
    step(modelOutput, i, sample) {
      checkCall("euler", i, timesteps.length, modelOutput, sample);
      return eulerStep(modelOutput, sample, sigmas[i], sigmas[i + 1], config.predictionType);
    },
  };
}

function eulerStep(out: Float32Array, x: Float32Array, sigma: number, sigmaNext: number, prediction: SchedulerConfig["predictionType"]): Float32Array {
  const dt = f32(sigmaNext - sigma);
  // v-prediction's c_out and c_skip denominators (float32 0-d tensors in diffusers).
  const sigmaSqPlusOne = f32(f32(sigma * sigma) + 1);
  const cOut = f32(-sigma / f32(Math.sqrt(sigmaSqPlusOne)));
  const prev = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const x0 = prediction === "epsilon" ? f32(x[j] - f32(sigma * out[j])) : prediction === "v_prediction" ? f32(f32(out[j] * cOut) + f32(x[j] / sigmaSqPlusOne)) : out[j];
    const derivative = f32(f32(x[j] - x0) / sigma);
    prev[j] = f32(x[j] + f32(derivative * dt));
  }
  return prev;
}
