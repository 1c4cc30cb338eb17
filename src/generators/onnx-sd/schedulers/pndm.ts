/**
 * diffusers' `PNDMScheduler` in its PLMS form (`skip_prk_steps`, the form every Stable Diffusion
 * config sets): pseudo linear multistep (Liu et al., "Pseudo Numerical Methods for Diffusion
 * Models on Manifolds", ICLR 2022), Adams-Bashforth combinations of the stored noise predictions
 * pushed through the transfer of Eq. 9.
 *
 * The call sequence (diffusers scheduling_pndm.py `step_plms`, `_get_prev_sample`), with
 * stride = N // steps and ets the model outputs kept (the last four):
 *   call 0 (t0):      store e0, remember x;   x1  = transfer(x, t0 -> t0 - stride, e0)
 *   call 1 (t1 = t0 - stride, the repeated entry): ets unchanged, e = (e1 + e0) / 2, and start
 *                     again from the remembered x: x1' = transfer(x, t1 + stride -> t1, e)
 *   call k >= 2:      store ek;  e = (3e_-1 - e_-2)/2, (23e_-1 - 16e_-2 + 5e_-3)/12, or
 *                     (55e_-1 - 59e_-2 + 37e_-3 - 9e_-4)/24 by how many are stored;
 *                     x = transfer(x, t -> t - stride, e)
 *   transfer(x, t -> p, e): a = alphas_cumprod[t], a' = alphas_cumprod[p] (final_alpha_cumprod
 *     below 0), b = 1 - a, b' = 1 - a'; v_prediction first turns e into sqrt(a) e + sqrt(b) x;
 *     x_p = sqrt(a'/a) x - (a' - a) e / (a sqrt(b') + sqrt(a b a'))
 * The scheduler keeps ets and the remembered sample, so calls must come in order 0, 1, 2, ...
 * Arithmetic is float32 op by op (Math.fround) in Python's evaluation order, the integer and
 * 1/24 factors being float32 scalars as torch applies them.
 */
import { DiffevalError } from "../../../errors.js";
import { alphasCumprod, checkCall, timestepsFor, type SchedulerConfig } from "./config.js";
import type { Scheduler } from "./scheduler.js";

const f32 = Math.fround;

export function createPndm(config: SchedulerConfig, steps: number): Scheduler {
  const timesteps = timestepsFor(config, steps, "pndm");
  const ac = alphasCumprod(config);
  const finalAlpha = config.setAlphaToOne ? 1 : ac[0];
  const stride = Math.floor(config.numTrainTimesteps / steps);
  const alphaAt = (t: number): number => {
    if (t >= ac.length) throw new DiffevalError("E_SCHEDULER", `${config.source}: PNDM reached timestep ${t}, beyond the ${ac.length} training timesteps; choose another timestep_spacing or number of steps`);
    return t >= 0 ? ac[t] : finalAlpha;
  };

  let counter = 0;
  let ets: Float32Array[] = [];
  let remembered: Float32Array | null = null;
  return {
    name: "pndm",
    timesteps,
    initNoiseSigma: 1,
    scaleModelInput(sample, i) {
      checkCall("pndm", i, timesteps.length);
      return sample;
    },
    step(modelOutput, i, sample) {
      checkCall("pndm", i, timesteps.length, modelOutput, sample);
      if (i !== counter) throw new DiffevalError("E_USAGE", `pndm scheduler: step ${i} called after ${counter} steps; PLMS keeps a history, so calls must come in order`);
      let t = timesteps[i];
      let prevT = t - stride;
      if (counter !== 1) {
        ets = [...ets.slice(-3), Float32Array.from(modelOutput)];
      } else {
        prevT = t;
        t = t + stride;
      }
      let x = sample;
      let e: Float32Array;
      if (ets.length === 1 && counter === 0) {
        e = modelOutput;
        remembered = Float32Array.from(sample);
      } else if (ets.length === 1 && counter === 1) {
        e = combine([ets[0], modelOutput], [1, 1], 2);
        x = remembered!;
        remembered = null;
      } else if (ets.length === 2) {
        e = combine(ets.slice(-2), [-1, 3], 2);
      } else if (ets.length === 3) {
        e = combine(ets.slice(-3), [5, -16, 23], 12);
      } else {
        e = combine(ets.slice(-4), [-9, 37, -59, 55], 24);
      }
      counter++;
      return transfer(x, e, alphaAt(t), alphaAt(prevT), config.predictionType);
    },
  };
}

/**
 * The Adams-Bashforth combination as diffusers' torch expression evaluates it, oldest first in
 * `terms` (newest last): ((w_new e_new - |w| e ...) ...) then / divisor, except the 4-term form,
 * which diffusers writes as (1/24) * (...), a multiplication by the float32 of 1/24. The
 * averaging step (model_output + ets[-1]) / 2 adds newest-first too (a + b is commutative in IEEE).
 */
function combine(terms: Float32Array[], weights: number[], divisor: number): Float32Array {
  const n = terms.length;
  const out = new Float32Array(terms[0].length);
  const inv24 = f32(1 / 24);
  for (let j = 0; j < out.length; j++) {
    // Newest term first, as in `3 * ets[-1] - ets[-2]`; a weight of +-1 is a plain add/subtract.
    let acc = weights[n - 1] === 1 ? terms[n - 1][j] : f32(weights[n - 1] * terms[n - 1][j]);
    for (let k = n - 2; k >= 0; k--) {
      const w = weights[k];
      const term = Math.abs(w) === 1 ? terms[k][j] : f32(Math.abs(w) * terms[k][j]);
      acc = f32(w < 0 ? acc - term : acc + term);
    }
    out[j] = divisor === 24 ? f32(inv24 * acc) : f32(acc / divisor);
  }
  return out;
}

/** `_get_prev_sample`: Eq. 9 of the PNDM paper from timestep alpha `a` to `aPrev`. */
function transfer(x: Float32Array, e: Float32Array, a: number, aPrev: number, prediction: SchedulerConfig["predictionType"]): Float32Array {
  const b = f32(1 - a);
  const bPrev = f32(1 - aPrev);
  const sqrtA = f32(Math.sqrt(a));
  const sqrtB = f32(Math.sqrt(b));
  const sampleCoeff = f32(Math.sqrt(f32(aPrev / a)));
  const denom = f32(f32(a * f32(Math.sqrt(bPrev))) + f32(Math.sqrt(f32(f32(a * b) * aPrev))));
  const diff = f32(aPrev - a);
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    const eps = prediction === "v_prediction" ? f32(f32(sqrtA * e[j]) + f32(sqrtB * x[j])) : e[j];
    out[j] = f32(f32(sampleCoeff * x[j]) - f32(f32(diff * eps) / denom));
  }
  return out;
}
