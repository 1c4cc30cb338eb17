/** The analytic generator: an exact diffusion model of a known Gaussian-mixture image distribution. */
export { createAnalyticGenerator, encodePng, referenceImages, toUint8, DEFAULT_STEPS, type AnalyticGeneratorOptions } from "./analytic-generator.js";
export {
  analyticClasses,
  analyticModel,
  classForPrompt,
  classModel,
  unconditionalModel,
  COMPONENTS_PER_CLASS,
  DEFAULT_RESOLUTION,
  LOOSE_SPREAD,
  PIXEL_NOISE_VARIANCE,
  UNCONDITIONAL_LOOSE_SHARE,
  type AnalyticClass,
  type AnalyticModel,
  type ClassSpec,
} from "./class-catalogue.js";
export {
  gaussianComponent,
  gaussianMixture,
  looserTwin,
  mixtureEps,
  mixtureOfMixtures,
  noisedLogDensity,
  sampleComponent,
  sampleMixture,
  type GaussianComponent,
  type GaussianMixture,
} from "./gaussian-mixture.js";
export { epsPrediction, guidedEps, initialNoise, sampleDdim, sampleDpmSolver2m, sampleWith, SAMPLERS, type SampleOptions, type SamplerName } from "./sampler.js";
export { alphaBar, samplingTimesteps, TRAIN_TIMESTEPS } from "./schedule.js";
