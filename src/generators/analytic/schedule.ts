/**
 * The noise schedule of the analytic diffusion model and the timesteps a sampler visits.
 *
 * - Training schedule: DDPM's linear betas, beta_t from 1e-4 to 0.02 over T = 1000 steps (Ho et
 *   al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, Sec. 4), alphaBar_t =
 *   prod_{s<=t} (1 - beta_s). The VP forward process is x_t = sqrt(alphaBar_t) x_0 +
 *   sqrt(1 - alphaBar_t) eps, t = 0..999 (0-based, as in diffusers).
 * - Sampling timesteps: `steps` distinct integers from 999 down to 0, spaced uniformly in
 *   log(sigma/alpha) (= uniformly in log-SNR, the spacing DPM-Solver recommends: Lu et al.,
 *   "DPM-Solver", NeurIPS 2022, Sec. 3.3). Why not DDIM's uniform spacing in t: this model's
 *   pixel noise has a small variance (0.01), and uniform-t steps jump across the noise levels
 *   near it (t = 20 -> 0) in one step, which shrinks that variance by 40% at 50 steps; the
 *   log-SNR grid resolves every scale with the same relative step.
 */

/** The number of training timesteps T. */
export const TRAIN_TIMESTEPS = 1000;

const BETA_START = 1e-4;
const BETA_END = 0.02;

const ALPHA_BARS = alphaBarTable();
/** log(sigma_t / alpha_t) per timestep, increasing in t. */
const LOG_SIGMA_OVER_ALPHA = Float64Array.from(ALPHA_BARS, (ab) => 0.5 * Math.log((1 - ab) / ab));

function alphaBarTable(): Float64Array {
  const out = new Float64Array(TRAIN_TIMESTEPS);
  let product = 1;
  for (let t = 0; t < TRAIN_TIMESTEPS; t++) {
    const beta = BETA_START + ((BETA_END - BETA_START) * t) / (TRAIN_TIMESTEPS - 1);
    product *= 1 - beta;
    out[t] = product;
  }
  return out;
}

/** alphaBar_t of the DDPM linear schedule, t an integer in [0, 999]. */
export function alphaBar(t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= TRAIN_TIMESTEPS) throw new RangeError(`timestep must be an integer in [0, ${TRAIN_TIMESTEPS - 1}], got ${t}`);
  return ALPHA_BARS[t];
}

/**
 * The sampler's timesteps, descending from 999, `steps` of them (1..1000), distinct: target
 * log(sigma/alpha) values uniform between those of t = 999 and t = 0, each rounded to the nearest
 * timestep, then pushed down where rounding would repeat one (and up where later steps would run
 * out of room), so the count is always exactly `steps`.
 */
export function samplingTimesteps(steps: number): Int32Array {
  if (!Number.isInteger(steps) || steps < 1 || steps > TRAIN_TIMESTEPS) {
    throw new RangeError(`steps must be an integer in [1, ${TRAIN_TIMESTEPS}], got ${steps}`);
  }
  const hi = LOG_SIGMA_OVER_ALPHA[TRAIN_TIMESTEPS - 1];
  const lo = LOG_SIGMA_OVER_ALPHA[0];
  const out = new Int32Array(steps);
  for (let i = 0; i < steps; i++) {
    const target = steps === 1 ? hi : hi + ((lo - hi) * i) / (steps - 1);
    let t = nearestTimestep(target);
    if (i > 0) t = Math.min(t, out[i - 1] - 1);
    out[i] = Math.max(t, steps - 1 - i);
  }
  return out;
}

/** The t whose log(sigma/alpha) is closest to `value` (binary search: the table is increasing). */
function nearestTimestep(value: number): number {
  let a = 0;
  let b = TRAIN_TIMESTEPS - 1;
  while (b - a > 1) {
    const m = (a + b) >> 1;
    if (LOG_SIGMA_OVER_ALPHA[m] < value) a = m;
    else b = m;
  }
  return Math.abs(LOG_SIGMA_OVER_ALPHA[a] - value) <= Math.abs(LOG_SIGMA_OVER_ALPHA[b] - value) ? a : b;
}
