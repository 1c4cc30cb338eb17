/**
 * The diffusion schedulers of the built-in ONNX Stable Diffusion generator: diffusers'
 * DDIMScheduler (eta 0), EulerDiscreteScheduler (no churn) and PNDMScheduler (PLMS form), built
 * from a `scheduler_config.json` so that a seed gives diffusers' latents (see config.ts for the
 * config semantics, each scheduler's file for its step).
 *
 * Usage, one scheduler per image (PNDM keeps a history):
 *   const s = createScheduler(name, parseSchedulerConfig(JSON.parse(text), file, name), steps);
 *   latents = unit Gaussian * s.initNoiseSigma
 *   for i in 0 .. s.timesteps.length - 1:
 *     eps = guided UNet(s.scaleModelInput(latents, i), s.timesteps[i]);  latents = s.step(eps, i, latents)
 */
import { DiffevalError } from "../../../errors.js";
import type { SchedulerConfig, SchedulerName } from "./config.js";
import { createDdim } from "./ddim.js";
import { createEuler } from "./euler.js";
import { createPndm } from "./pndm.js";
import type { Scheduler } from "./scheduler.js";

export {
  alphasCumprod,
  betas,
  parseSchedulerConfig,
  schedulerNameOfClass,
  timestepsFor,
  SCHEDULERS,
  type BetaSchedule,
  type PredictionType,
  type SchedulerConfig,
  type SchedulerName,
  type TimestepSpacing,
} from "./config.js";
export { eulerSigmas } from "./euler.js";
export type { Scheduler } from "./scheduler.js";

/** A fresh scheduler `name` for `steps` inference steps; `config` must have been parsed for `name`. */
export function createScheduler(name: SchedulerName, config: SchedulerConfig, steps: number): Scheduler {
  if (config.kind !== name) {
    throw new DiffevalError("E_USAGE", `${config.source} was read with the ${config.kind} scheduler's defaults, not ${name}'s; parse it with parseSchedulerConfig(json, file, "${name}")`);
  }
  switch (name) {
    case "ddim":
      return createDdim(config, steps);
    case "euler":
      return createEuler(config, steps);
    case "pndm":
      return createPndm(config, steps);
    default:
      throw new DiffevalError("E_USAGE", `unknown scheduler ${JSON.stringify(name)}; built in: ddim, euler, pndm`);
  }
}
