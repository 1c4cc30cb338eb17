/**
 * diffusers' `DDIMScheduler` with eta = 0 (the deterministic DDIM of Song et al., "Denoising
 * Diffusion Implicit Models", ICLR 2021, Eq. 12), as `OnnxStableDiffusionPipeline` drives it.
 *
 * Step at timestep t (diffusers scheduling_ddim.py `step`):
 *   prev_t = t - N // steps                      (for every spacing, as diffusers does)
 *   a_t = alphas_cumprod[t], a_prev = alphas_cumprod[prev_t], or final_alpha_cumprod when prev_t < 0
 *   (1 with set_alpha_to_one, else alphas_cumprod[0]); b_t = 1 - a_t
 *   epsilon:      x0 = (x - sqrt(b_t) eps) / sqrt(a_t)
 *   sample:       x0 = output,                     eps = (x - sqrt(a_t) x0) / sqrt(b_t)
 *   v_prediction: x0 = sqrt(a_t) x - sqrt(b_t) v,  eps = sqrt(a_t) v + sqrt(b_t) x
 *   clip_sample:  x0 clamped to [-clip_sample_range, clip_sample_range] (eps is not re-derived)
 *   x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps
 * Every operation is one float32 torch operation, so each is rounded with Math.fround in the
 * order Python evaluates it; the scalars (a_t, sqrt(a_t), ...) are float32 0-d tensors there too.
 */
import { alphasCumprod, checkCall, timestepsFor, type SchedulerConfig } from "./config.js";
import type { Scheduler } from "./scheduler.js";

const f32 = Math.fround;

/** The float32 scalars of one DDIM step. */
interface DdimCoefficients {
  sqrtAlpha: number;
  sqrtBeta: number;
  sqrtAlphaPrev: number;
  /** sqrt(1 - a_prev - std^2) with std = eta * sqrt(variance) = 0. */
  sqrtBetaPrev: number;
}

function coefficients(ac: Float32Array, t: number, prevT: number, finalAlpha: number): DdimCoefficients {
  const a = ac[t];
  const aPrev = prevT >= 0 ? ac[prevT] : finalAlpha;
  return {
    sqrtAlpha: f32(Math.sqrt(a)),
    sqrtBeta: f32(Math.sqrt(f32(1 - a))),
    sqrtAlphaPrev: f32(Math.sqrt(aPrev)),
    sqrtBetaPrev: f32(Math.sqrt(f32(1 - aPrev))),
  };
}

export function createDdim(config: SchedulerConfig, steps: number): Scheduler {
  const timesteps = timestepsFor(config, steps, "ddim");
  const ac = alphasCumprod(config);
  const finalAlpha = config.setAlphaToOne ? 1 : ac[0];
  const stride = Math.floor(config.numTrainTimesteps / steps);
  const perCall = timesteps.map((t) => coefficients(ac, t, t - stride, finalAlpha));
  const clip = config.clipSample ? f32(config.clipSampleRange) : Infinity;
  return {
    name: "ddim",
    timesteps,
    initNoiseSigma: 1,
    scaleModelInput(sample, i) {
      checkCall("ddim", i, timesteps.length);
      return sample;
    },
    step(modelOutput, i, sample) {
      checkCall("ddim", i, timesteps.length, modelOutput, sample);
      return ddimStep(modelOutput, sample, perCall[i], config.predictionType, clip);
    },
  };
}

function ddimStep(out: Float32Array, x: Float32Array, c: DdimCoefficients, prediction: SchedulerConfig["predictionType"], clip: number): Float32Array {
  const prev = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    let x0: number;
    let eps: number;
    if (prediction === "epsilon") {
      x0 = f32(f32(x[j] - f32(c.sqrtBeta * out[j])) / c.sqrtAlpha);
      eps = out[j];
    } else if (prediction === "sample") {
      x0 = out[j];
      eps = f32(f32(x[j] - f32(c.sqrtAlpha * x0)) / c.sqrtBeta);
    } else {
      x0 = f32(f32(c.sqrtAlpha * x[j]) - f32(c.sqrtBeta * out[j]));
      eps = f32(f32(c.sqrtAlpha * out[j]) + f32(c.sqrtBeta * x[j]));
    }
    if (x0 > clip) x0 = clip;
    else if (x0 < -clip) x0 = -clip;
    prev[j] = f32(f32(c.sqrtAlphaPrev * x0) + f32(c.sqrtBetaPrev * eps));
  }
  return prev;
}
