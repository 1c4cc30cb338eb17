/**
 * The interface every diffusion scheduler implements, in its own file (as generators/generator.ts
 * is for generators) so that ddim.ts, euler.ts and pndm.ts import it without importing index.ts,
 * which imports them: no import circle (DESIGN.md; test/architecture/imports.test.ts).
 */
import type { SchedulerName } from "./config.js";

export interface Scheduler {
  readonly name: SchedulerName;
  /** The timestep value fed to the UNet at each call, in call order (PNDM/PLMS: steps+1 calls, the 2nd entry repeats). */
  readonly timesteps: readonly number[];
  /** Multiplier of the unit-Gaussian initial latents (Euler: sigma_max, or sqrt(sigma_max^2+1) for leading spacing; others 1). */
  readonly initNoiseSigma: number;
  /** The UNet input for call i (Euler divides by sqrt(sigma_i^2+1); others return `sample` itself). Must not modify `sample`. */
  scaleModelInput(sample: Float32Array, i: number): Float32Array;
  /** The latents after call i, given the (guided) model output of call i and the latents before it. Returns a new array; stateful schedulers (PNDM) keep their history internally, so calls must come in order i = 0, 1, 2, ... */
  step(modelOutput: Float32Array, i: number, sample: Float32Array): Float32Array;
}
