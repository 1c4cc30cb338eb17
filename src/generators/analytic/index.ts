/** The analytic generator: an exact diffusion model of a known Gaussian-mixture image distribution. */
export {
  createAnalyticGenerator,
  encodePng,
  referenceImages,
  toUint8,
  DEFAULT_STEPS,
  UNCONDITIONAL_MODELS,
  type AnalyticGeneratorOptions,
  type UnconditionalName,
} from "./analytic-generator.js";
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
  classLogPosterior,
  classLogPosteriorGrad,
  gaussianComponent,
  gaussianMixture,
  looserTwin,
  mixtureClassifier,
  mixtureEps,
  mixtureOfMixtures,
  noisedLogDensity,
  sampleComponent,
  sampleMixture,
  type GaussianComponent,
  type GaussianMixture,
  type MixtureClassifier,
} from "./gaussian-mixture.js";
export { classifierGuidedEps, GUIDANCE_RULES, type GuidanceName, type GuidanceRule } from "./sampler.js";
export { epsPrediction, guidedEps, initialNoise, sampleDdim, sampleDpmSolver2m, sampleWith, SAMPLERS, type EvaluationCounter, type SampleOptions, type SamplerName } from "./sampler.js";
export { alphaBar, samplingTimesteps, TRAIN_TIMESTEPS } from "./schedule.js";
