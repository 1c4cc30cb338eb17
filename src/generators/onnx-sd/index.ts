/** The built-in ONNX Stable Diffusion generator (`onnx-sd`, `diffeval generate`). */
export { openSdExport, DEFAULT_VAE_SCALING, LATENT_FACTOR, type SdExport } from "./export-folder.js";
export { generateSd, generateSdBatch, guide, DEFAULT_SIZE, type SdBatchOptions, type SdGenerateOptions, type SdImage } from "./pipeline.js";
export { createOnnxSdGenerator, encodeSdPng, schedulerFrom, DEFAULT_SD_STEPS, type OnnxSdGeneratorOptions } from "./onnx-sd-generator.js";
export { toHalfArray, fromHalfArray, toHalfBits, fromHalfBits } from "./float16.js";
export { SCHEDULERS, type SchedulerName } from "./schedulers/index.js";
