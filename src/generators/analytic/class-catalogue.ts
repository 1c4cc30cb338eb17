/**
 * The analytic data distribution: a few classes of small RGB pictures, each named by a prompt
 * keyword ("red circle", ...), each a mixture of COMPONENTS_PER_CLASS Gaussians.
 *
 * A component is a prototype picture (one shape, drawn by rasterise.ts with position, size,
 * rotation, shape colour and background drawn from a fixed internal seed) plus a covariance
 * U U^T + sigma^2 I whose columns of U are plausible variations of that picture: the finite-
 * difference derivatives of the rendering with respect to x shift, y shift, size and rotation,
 * each times the parameter's standard deviation, plus per-channel shape-colour changes and a
 * background brightness change. sigma^2 is pixel noise. Everything is deterministic: the same
 * resolution always gives the same distribution.
 *
 * The unconditional model (the empty prompt) is what a caption-dropout model learns: the class
 * prior over every image it was trained on. Those are the labelled classes (weight 1 - rho, equal
 * per class) and, with weight rho = UNCONDITIONAL_LOOSE_SHARE, a "looser twin" of every class
 * component: same prototype, same variation directions, LOOSE_SPREAD times the standard
 * deviations, standing for the images whose captions were dropped or name no class precisely.
 * Why not the bare class mixture (rho = 0): with well-separated classes the unconditional density
 * near a class sample is that class's own component, so eps_cond = eps_uncond there and guidance
 * only extrapolates away from the other classes, which spreads samples apart (measured: mean
 * pairwise distance of "red circle" 19.4 at s = 1 -> 21.0 at s = 9). CFG's diversity-for-fidelity
 * trade rests on the conditional being narrower than the unconditional around the same content:
 * for Gaussians the guided precision s P_cond - (s - 1) P_uncond grows with s exactly where
 * P_uncond < P_cond. With the twins it does (19.4 -> 14.7), as it does for real models.
 * The reference set (`analytic:real`) is the labelled classes alone: what a prompt asks for.
 */
import { DiffevalError } from "../../errors.js";
import { createRng, type Rng } from "../../random/rng.js";
import { gaussianComponent, gaussianMixture, looserTwin, mixtureOfMixtures, type GaussianComponent, type GaussianMixture } from "./gaussian-mixture.js";
import { renderShape, shapeCoverage, type ShapeKind, type ShapeParams } from "./rasterise.js";
import { symmetricEigenSmall } from "./small-eigen.js";

export interface ClassSpec {
  /** The prompt keyword, lower case. */
  readonly name: string;
  readonly shape: ShapeKind;
  readonly colour: readonly [number, number, number];
}

const CLASS_SPECS: readonly ClassSpec[] = [
  { name: "red circle", shape: "circle", colour: [0.8, -0.7, -0.65] },
  { name: "blue square", shape: "square", colour: [-0.65, -0.3, 0.8] },
  { name: "green triangle", shape: "triangle", colour: [-0.55, 0.75, -0.5] },
  { name: "yellow ring", shape: "ring", colour: [0.8, 0.7, -0.6] },
  { name: "purple cross", shape: "cross", colour: [0.45, -0.6, 0.75] },
];

export const COMPONENTS_PER_CLASS = 3;
/** The model's own resolution unless asked otherwise: 32 x 32 x 3 = 3072 dimensions. */
export const DEFAULT_RESOLUTION = 32;
/** sigma^2, the isotropic pixel-noise variance (std 0.1 = 12.75 grey levels). */
export const PIXEL_NOISE_VARIANCE = 0.01;
/** rho: the unconditional model's share of looser, unlabelled images. */
export const UNCONDITIONAL_LOOSE_SHARE = 2 / 3;
/** How much wider (in standard deviation) the looser twins' variations are. */
export const LOOSE_SPREAD = 2;
/** The fixed seed the prototypes are drawn from (class i uses CATALOGUE_SEED + i). */
const CATALOGUE_SEED = 20240801;

/** Standard deviations of the variations, at 32 x 32 (positions scale with the resolution). */
const SHIFT_STD_PX = 0.6;
const SIZE_STD_FRACTION = 0.05;
const ROTATION_STD_RAD = 0.08;
const COLOUR_STD = 0.1;
const BACKGROUND_STD = 0.1;

export interface AnalyticClass {
  readonly name: string;
  readonly spec: ClassSpec;
  readonly mixture: GaussianMixture;
  /** The components' prototype pictures (= their means), HWC in [-1, 1]. */
  readonly prototypes: readonly Float64Array[];
}

export interface AnalyticModel {
  readonly resolution: number;
  readonly dim: number;
  readonly classes: readonly AnalyticClass[];
  /** The unconditional model: labelled classes (1 - rho) and their looser twins (rho). */
  readonly prior: GaussianMixture;
  /**
   * The labelled classes alone, equally weighted: sum_y pi_y p(x | y) with pi_y = 1 / C, the
   * marginal that the exact Bayes classifier p(y | x) divides by (generator option
   * `unconditional: "mixture"` puts it in the unconditional slot).
   */
  readonly labelled: GaussianMixture;
}

/** The class keywords, in catalogue order (prompts and negative prompts for sweeps). */
export function analyticClasses(): string[] {
  return CLASS_SPECS.map((c) => c.name);
}

const MODELS = new Map<number, AnalyticModel>();

/** The whole data distribution at `resolution` x `resolution` (built once per resolution, then cached). */
export function analyticModel(resolution = DEFAULT_RESOLUTION): AnalyticModel {
  if (!Number.isInteger(resolution) || resolution < 4 || resolution > 256) {
    throw new DiffevalError("E_GENERATOR_SPEC", `analytic generator: resolution must be an integer in [4, 256], got ${resolution}`);
  }
  let model = MODELS.get(resolution);
  if (!model) {
    const classes = CLASS_SPECS.map((spec, i) => buildClass(spec, i, resolution));
    const labelled = mixtureOfMixtures(
      classes.map((c) => c.mixture),
      classes.map(() => 1),
    );
    const prior = mixtureOfMixtures([labelled, looseMixture(classes)], [1 - UNCONDITIONAL_LOOSE_SHARE, UNCONDITIONAL_LOOSE_SHARE]);
    model = { resolution, dim: resolution * resolution * 3, classes, prior, labelled };
    MODELS.set(resolution, model);
  }
  return model;
}

/** The class named `name` (exact keyword, any case). */
export function classModel(name: string, resolution = DEFAULT_RESOLUTION): AnalyticClass {
  const wanted = name.trim().toLowerCase();
  const found = analyticModel(resolution).classes.find((c) => c.name === wanted);
  if (!found) throw unknownClass(name, "class");
  return found;
}

/** The unconditional model: the labelled classes and their looser twins (see the file comment). */
export function unconditionalModel(resolution = DEFAULT_RESOLUTION): GaussianMixture {
  return analyticModel(resolution).prior;
}

/**
 * The class a prompt names: the one keyword found in it as whole words, any case ("A photo of a
 * Red Circle" -> "red circle"). No keyword, or keywords of two classes, is an error that lists the
 * known ones.
 */
export function classForPrompt(prompt: string, resolution = DEFAULT_RESOLUTION, role = "prompt"): AnalyticClass {
  const text = ` ${prompt.toLowerCase().replace(/[^a-z0-9]+/g, " ")} `;
  const hits = analyticModel(resolution).classes.filter((c) => text.includes(` ${c.name} `));
  if (hits.length === 1) return hits[0];
  if (hits.length > 1) {
    throw new DiffevalError(
      "E_GENERATOR_REQUEST",
      `analytic generator: ${role} "${prompt}" names several classes (${hits.map((c) => c.name).join(", ")}); name exactly one of: ${analyticClasses().join(", ")}`,
    );
  }
  throw unknownClass(prompt, role);
}

function unknownClass(text: string, role: string): DiffevalError {
  return new DiffevalError(
    "E_GENERATOR_REQUEST",
    `analytic generator: ${role} "${text}" names no known class; the analytic model knows: ${analyticClasses().join(", ")} (use "" as the negative prompt for the unconditional model)`,
  );
}

function buildClass(spec: ClassSpec, index: number, res: number): AnalyticClass {
  const rng = createRng(CATALOGUE_SEED + index);
  const components: GaussianComponent[] = [];
  for (let k = 0; k < COMPONENTS_PER_CLASS; k++) components.push(buildComponent(spec, prototypeParams(spec, rng, res), res));
  return {
    name: spec.name,
    spec,
    mixture: gaussianMixture(
      components,
      components.map(() => 1),
    ),
    prototypes: components.map((c) => c.mean),
  };
}

/** Position, size, rotation and colours of one prototype, drawn in resolution-independent units. */
function prototypeParams(spec: ClassSpec, rng: Rng, res: number): ShapeParams {
  const jitter = (scale: number): number => scale * (2 * rng.uniform() - 1);
  const grey = -0.7 + 0.35 * rng.uniform();
  return {
    cx: res * (0.5 + jitter(0.12)),
    cy: res * (0.5 + jitter(0.12)),
    size: res * (0.2 + 0.1 * rng.uniform()),
    angle: jitter(Math.PI / 6),
    colour: [spec.colour[0] + jitter(0.08), spec.colour[1] + jitter(0.08), spec.colour[2] + jitter(0.08)],
    background: [grey + jitter(0.06), grey + jitter(0.06), grey + jitter(0.06)],
  };
}

/** The looser twins of every class component, equally weighted (see UNCONDITIONAL_LOOSE_SHARE). */
function looseMixture(classes: readonly AnalyticClass[]): GaussianMixture {
  const comps = classes.flatMap((c) => c.mixture.components.map((m) => looserTwin(m, LOOSE_SPREAD)));
  return gaussianMixture(
    comps,
    comps.map(() => 1),
  );
}

/** The component N(prototype, U U^T + sigma^2 I), U rotated to orthogonal columns. */
function buildComponent(spec: ClassSpec, p: ShapeParams, res: number): GaussianComponent {
  const mean = renderShape(spec.shape, p, res);
  const factor = variationColumns(spec.shape, p, res);
  const { basis, variances } = orthogonalFactor(factor, res * res * 3);
  return gaussianComponent(mean, basis, variances, PIXEL_NOISE_VARIANCE);
}

/** The columns of U (each a d-vector): derivative images times parameter standard deviations. */
function variationColumns(kind: ShapeKind, p: ShapeParams, res: number): Float64Array[] {
  const px = res / 32;
  const derivative = (change: (q: ShapeParams, h: number) => ShapeParams, h: number, std: number): Float64Array => {
    // central difference of the rendering; coverage is piecewise linear, so h of a quarter pixel is accurate
    const plus = renderShape(kind, change(p, h), res);
    const minus = renderShape(kind, change(p, -h), res);
    return plus.map((v, i) => ((v - minus[i]) / (2 * h)) * std);
  };
  const columns = [
    derivative((q, h) => ({ ...q, cx: q.cx + h }), 0.25, SHIFT_STD_PX * px),
    derivative((q, h) => ({ ...q, cy: q.cy + h }), 0.25, SHIFT_STD_PX * px),
    derivative((q, h) => ({ ...q, size: q.size + h }), 0.25, SIZE_STD_FRACTION * p.size),
  ];
  if (kind !== "circle" && kind !== "ring") columns.push(derivative((q, h) => ({ ...q, angle: q.angle + h }), 0.01, ROTATION_STD_RAD));
  const cover = shapeCoverage(kind, p, res);
  for (let ch = 0; ch < 3; ch++) {
    const col = new Float64Array(res * res * 3);
    cover.forEach((c, i) => (col[i * 3 + ch] = c * COLOUR_STD));
    columns.push(col);
  }
  const bg = new Float64Array(res * res * 3);
  cover.forEach((c, i) => bg.fill((1 - c) * BACKGROUND_STD, i * 3, i * 3 + 3));
  columns.push(bg);
  return columns;
}

/**
 * U (d x r, given as its columns) -> Q, lambda with U U^T = Q^T diag(lambda) Q, Q's rows
 * orthonormal: eigen-decompose the Gram matrix U^T U = V diag(lambda) V^T; then q_j = U v_j /
 * sqrt(lambda_j) (the thin SVD of U through its Gram matrix, fine at this conditioning).
 * Directions with a negligible variance are dropped.
 */
function orthogonalFactor(columns: Float64Array[], d: number): { basis: Float64Array; variances: Float64Array } {
  const r = columns.length;
  const gram = new Float64Array(r * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) gram[i * r + j] = dotVectors(columns[i], columns[j]);
  const { values, vectors } = symmetricEigenSmall(gram, r);
  const keep = [...values.keys()].filter((j) => values[j] > 1e-9 * values[0]);
  const basis = new Float64Array(keep.length * d);
  keep.forEach((j, row) => {
    const scale = 1 / Math.sqrt(values[j]);
    for (let c = 0; c < r; c++) {
      const w = vectors[c * r + j] * scale;
      const col = columns[c];
      for (let i = 0; i < d; i++) basis[row * d + i] += w * col[i];
    }
  });
  return { basis, variances: Float64Array.from(keep, (j) => values[j]) };
}

function dotVectors(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
