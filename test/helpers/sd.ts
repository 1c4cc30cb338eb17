/** The sd/ fixture's reference cases (diffusers' OnnxStableDiffusionPipeline on sd-tiny), for tests and the bench. */
import { readFileSync } from "node:fs";
import type { SdGenerateOptions } from "../../src/generators/onnx-sd/index.js";
import type { SchedulerName } from "../../src/generators/onnx-sd/schedulers/index.js";
import { loadNpy } from "./arrays.js";
import { fixture } from "./fixtures.js";

export interface SdCase {
  name: string;
  scheduler: SchedulerName;
  guidance_scale: number;
  prompt: string;
  negative_prompt: string | null;
  steps: number;
  seed: number;
  timesteps: number[];
}

export function sdCases(): SdCase[] {
  return (JSON.parse(readFileSync(fixture("sd", "reference", "sd_expected.json"), "utf8")) as { cases: SdCase[] }).cases;
}

/** diffusers' image of a case: 128 x 128 x 3 values in [0, 1]. */
export function sdReferenceImage(c: SdCase): Float32Array {
  return loadNpy(fixture("sd", "reference", `sd_image_${c.name}.npy`)).data as Float32Array;
}

/** The generateSd request of a case (128 x 128, as the references were made). */
export function sdRequest(c: SdCase): SdGenerateOptions & { scheduler: SchedulerName } {
  return {
    prompt: c.prompt,
    ...(c.negative_prompt !== null ? { negativePrompt: c.negative_prompt } : {}),
    cfgScale: c.guidance_scale,
    steps: c.steps,
    scheduler: c.scheduler,
    seed: c.seed,
    width: 128,
    height: 128,
  };
}
