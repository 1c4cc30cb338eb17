/**
 * The metric registry: every metric diffeval computes is described here once, and everything else
 * derives from its entry: `diffeval metrics --metrics` (names, defaults, help), the sweep's spec
 * check and columns, the gate's rules and directions, the README's metric table (a test compares
 * them), and the per-metric skip rules (what a metric needs, which feature spaces it exists in, the
 * fewest images it can work with).
 *
 * An entry's `compute` is a pure function of the two sides' matrices (features, Gaussians, spatial
 * features, lazily decoded images) and the settings: metrics never see paths or open files.
 */
import { DiffevalError } from "../errors.js";
import { frechetDistanceOfSides } from "../stats/frechet.js";
import type { FeatureMatrix, Gaussian, RgbImage } from "../types.js";
import { bootstrapIntervals } from "./bootstrap.js";
import { clipScore, negativeClipScores, type NegativePromptPairs, type PairedEmbeddings } from "./clip-score.js";
import { cmmd } from "./cmmd.js";
import { meanControlF1, type ControlImages } from "./control-f1.js";
import { costPerImage, type GenerationCost } from "./cost.js";
import { byGroup, meanPairwiseDistance, selectRows } from "./diversity.js";
import { fidInfinity } from "./fid-infinity.js";
import { gaussianity, type GaussianityResult } from "./gaussianity.js";
import { inceptionScore, TORCH_FIDELITY_SHUFFLE_SEED, unbiasedLogits } from "./inception-score.js";
import { kid } from "./kid.js";
import { msSsimDiversityLazy } from "./ms-ssim.js";
import { prdc } from "./prdc.js";
import { meanCrossCosine, meanPairedCosine } from "./subject.js";
import { vendiScore } from "./vendi.js";

/** One side of a comparison, as the metrics see it. */
export interface MetricSide {
  /** How the side was named (for messages). */
  spec: string;
  /** What the side is ("images", "features", "stats"), for the reason a metric is skipped. */
  kind?: string;
  gaussian: Gaussian;
  /** Per-image features (absent for a stats file; a features file has them, but no images or spatial features). */
  features?: FeatureMatrix;
  /** sFID's spatial features, when extracted. */
  spatial?: FeatureMatrix;
  /** Image names, in feature-row order. */
  names?: string[];
  /** The side's images, decoded on demand (image sources only). */
  images?: { count: number; read(i: number): Promise<RgbImage> };
}

/** Per-pair embeddings for the CLIP score: image row i against its own prompt's text row i. */
export type PromptPairs = PairedEmbeddings;

export interface MetricSettings {
  /** Bootstrap replicates for the metrics that have a bootstrap (0 or absent: none). */
  bootstrap?: number;
  /** Seed of every random draw (KID subsets, bootstrap, pairs, projections). */
  metricSeed?: number;
  prK?: number;
  dcK?: number;
  kidSubsets?: number;
  kidSubsetSize?: number;
  msssimPairs?: number;
  /**
   * The Inception Score's row shuffle: numpy's RandomState(seed).permutation before the splits, as
   * torch-fidelity does (default 2020, its default); null splits in the given order.
   */
  isShuffleSeed?: number | null;
  /** Group (e.g. prompt) of each fake image, by name: diversity metrics are also reported per group. */
  groups?: Map<string, string>;
}

export interface MetricContext {
  real: MetricSide;
  fake: MetricSide;
  /** The feature space (features/encoders.ts). */
  encoder: string;
  settings: MetricSettings;
  /** The Inception fc.weight (the Inception Score's logits), read only when IS is asked for. */
  fcWeight?: () => Promise<Float32Array>;
  /** For the CLIP score: each fake image's embedding and its prompt's. */
  prompts?: PromptPairs;
  /** For neg_clip: each fake image's embedding against its negative prompt's, and its counterpart's without one. */
  negativePrompts?: NegativePromptPairs;
  /** For the cost metrics: what each fake image took to generate (a sweep's manifest). */
  generation?: readonly GenerationCost[];
  /** For control_f1: each fake image's control image (ControlNet conditioning) and the Canny thresholds. */
  controls?: ControlImages;
}

/** What a metric's values are: a number, or an estimate with its spread. */
export type MetricValue = number | { mean: number; std: number; ci95?: [number, number] } | Record<string, unknown>;

/** A JSON key a metric writes, and which way is better (the gate's direction). */
export interface MetricKey {
  key: string;
  better: "lower" | "higher";
  /** What the key holds, for the README and the gate's messages. */
  about: string;
  /**
   * The number the gate compares, when the value is neither a number nor {mean|value, ...}
   * (e.g. a per-group result): returns the value to hand to the gate's estimate reader.
   */
  gateValue?: (value: unknown) => unknown;
}

/** What a metric needs, beyond two resolved sides. */
export type MetricNeed =
  | "features" // per-image features on both sides
  | "fake-features" // per-image features of the fake side
  | "any-features" // per-image features on at least one side
  | "spatial" // sFID's spatial features on both sides
  | "fake-images" // the fake side's images (decoded on demand)
  | "logits" // the Inception fc layer, to turn the fake features into logits (a model loaded for an image side)
  | "prompts" // the fake images' prompts (CLIP embeddings of both)
  | "negative-prompts" // the fake images' negative prompt (CLIP embeddings), and counterparts generated without it
  | "generation" // what each fake image cost to generate (a sweep's manifest)
  | "controls"; // each fake image's control image (diffeval control, or a sweep with a control field)

export interface MetricEntry {
  /** The name in `--metrics`, sweep specs and the README table. */
  name: string;
  /** One line for `--help` and the README. */
  title: string;
  keys: readonly MetricKey[];
  /** The feature spaces the metric exists in: "inception" only, any encoder, or the encoders listed (features/encoders.ts names). */
  encoders: "inception" | "any" | readonly string[];
  needs: readonly MetricNeed[];
  /** In the default `--metrics` list of `diffeval metrics`: for inception, for the other encoders. */
  defaultFor: readonly ("inception" | "other")[];
  /** The fewest images per side the metric can work with (fake side only for fake-only metrics). */
  minImages: (s: MetricSettings) => number;
  /** Whether minImages counts the fake side alone. */
  fakeOnly?: boolean;
  compute(ctx: MetricContext): Promise<Record<string, MetricValue>> | Record<string, MetricValue>;
  /** The point values recomputed on a resample (for --bootstrap), keyed like `keys`. */
  bootstrap?: (real: FeatureMatrix, fake: FeatureMatrix, s: MetricSettings) => Record<string, number>;
}

const two = () => 2;
const seedOf = (s: MetricSettings) => s.metricSeed ?? 0;
/** Kynkaanniemi et al.'s k for precision and recall. */
export const DEFAULT_PR_K = 3;
const prK = (s: MetricSettings) => s.prK ?? DEFAULT_PR_K;
const dcK = (s: MetricSettings) => s.dcK ?? 5;
const kidOf = (r: FeatureMatrix, f: FeatureMatrix, s: MetricSettings) =>
  kid(r, f, { subsets: s.kidSubsets, subsetSize: s.kidSubsetSize, seed: seedOf(s) });
const meanOverGroups = (v: unknown) => (v && typeof v === "object" ? (v as { meanOverGroups?: unknown }).meanOverGroups : v);

/**
 * A diversity measure of feature rows (vendi, pairwise): the fake side's value, the real side's
 * (`<key>_real`), and per group of fake images when groups are given (`<key>_by_group`).
 */
function diversityEntry(
  name: string,
  key: string,
  title: string,
  about: string,
  measure: (x: FeatureMatrix) => number,
): MetricEntry {
  return {
    name,
    title,
    keys: [
      { key, better: "higher", about: `${about}, fake images` },
      { key: `${key}_real`, better: "higher", about: `${about}, real images` },
      { key: `${key}_by_group`, better: "higher", about: `${about} within each group (--groups), mean over groups`, gateValue: meanOverGroups },
    ],
    encoders: "any",
    needs: ["fake-features"],
    defaultFor: [],
    minImages: two,
    fakeOnly: true,
    compute({ real, fake, settings }) {
      const out: Record<string, MetricValue> = { [key]: measure(fake.features!) };
      if (real.features) out[`${key}_real`] = measure(real.features);
      const groups = groupLabels(fake, settings.groups);
      if (groups) out[`${key}_by_group`] = { ...byGroup(groups, (rows) => measure(selectRows(fake.features!, rows))) };
      return out;
    },
  };
}

/**
 * The Frechet distance of the two sides' Gaussians (fid in Inception's space, fd in any encoder's):
 * each side's fitted Gaussian is reused, the Gram form taken when a side has fewer rows than dimensions.
 */
function frechetEntry(name: string, title: string, about: string, encoders: MetricEntry["encoders"], defaultFor: MetricEntry["defaultFor"]): MetricEntry {
  return {
    name,
    title,
    keys: [{ key: name, better: "lower", about }],
    encoders,
    needs: [],
    defaultFor,
    minImages: two,
    compute: ({ real, fake }) => ({ [name]: frechetDistanceOfSides(real, fake).value }),
    bootstrap: (r, f) => ({ [name]: frechetDistanceOfSides({ features: r }, { features: f }).value }),
  };
}

export const METRICS: readonly MetricEntry[] = [
  frechetEntry("fid", "Frechet distance of pool3 Gaussians (pytorch-fid / clean-fid formula)", "Frechet Inception Distance", "inception", ["inception"]),
  {
    name: "kid",
    title: "Kernel Inception Distance: unbiased MMD² with the (x.y/d + 1)³ kernel over seeded subsets",
    keys: [{ key: "kid", better: "lower", about: "KID mean and std over subsets" }],
    encoders: "any",
    needs: ["features"],
    defaultFor: ["inception", "other"],
    minImages: two,
    compute({ real, fake, settings }) {
      const r = kidOf(real.features!, fake.features!, settings);
      return { kid: { mean: r.mean, std: r.std } };
    },
    bootstrap: (r, f, s) => ({ kid: kidOf(r, f, s).mean }),
  },
  {
    name: "is",
    title: "Inception Score of the fake set (torch-fidelity: bias-free logits, 1008 classes, shuffled, 10 splits)",
    keys: [{ key: "is", better: "higher", about: "Inception Score mean and std over splits" }],
    encoders: "inception",
    needs: ["fake-features", "logits"],
    defaultFor: ["inception"],
    minImages: () => 10,
    fakeOnly: true,
    async compute({ fake, settings, fcWeight }) {
      if (!fcWeight) throw new DiffevalError("E_INTERNAL", "the Inception Score needs the model's fc.weight");
      const shuffle = settings.isShuffleSeed === undefined ? TORCH_FIDELITY_SHUFFLE_SEED : settings.isShuffleSeed;
      const r = inceptionScore(unbiasedLogits(fake.features!, await fcWeight()), { splits: 10, ...(shuffle === null ? {} : { shuffleSeed: shuffle }) });
      return { is: { mean: r.mean, std: r.std } };
    },
  },
  {
    name: "pr",
    title: "precision and recall (Kynkäänniemi et al. 2019, k = 3), as the prdc package computes them",
    keys: [
      { key: "precision", better: "higher", about: "share of fakes inside the real manifold" },
      { key: "recall", better: "higher", about: "share of reals inside the fake manifold" },
    ],
    encoders: "any",
    needs: ["features"],
    defaultFor: ["inception", "other"],
    minImages: (s) => prK(s) + 1,
    compute({ real, fake, settings }) {
      const r = prdc(real.features!, fake.features!, { k: prK(settings) });
      return { precision: r.precision, recall: r.recall };
    },
    bootstrap(r, f, s) {
      const v = prdc(r, f, { k: prK(s) });
      return { precision: v.precision, recall: v.recall };
    },
  },
  {
    name: "dc",
    title: "density and coverage (Naeem et al. 2020, k = 5), as prdc computes them",
    keys: [
      { key: "density", better: "higher", about: "density of fakes among real neighbourhoods" },
      { key: "coverage", better: "higher", about: "share of real neighbourhoods holding a fake" },
    ],
    encoders: "any",
    needs: ["features"],
    defaultFor: ["inception", "other"],
    minImages: (s) => dcK(s) + 1,
    compute({ real, fake, settings }) {
      const r = prdc(real.features!, fake.features!, { k: dcK(settings) });
      return { density: r.density, coverage: r.coverage };
    },
  },
  {
    name: "sfid",
    title: "sFID (Nash et al. 2021): FID on Mixed_6d.branch1x1's first 7 channels (2023-d)",
    keys: [{ key: "sfid", better: "lower", about: "spatial FID" }],
    encoders: "inception",
    needs: ["spatial"],
    defaultFor: [],
    minImages: two,
    compute: ({ real, fake }) => ({ sfid: frechetDistanceOfSides({ features: real.spatial! }, { features: fake.spatial! }).value }),
  },
  frechetEntry(
    "fd",
    "Frechet distance in the encoder's feature space (FD-DINOv2 with dinov2; equals fid for inception)",
    "Frechet distance in the encoder's space",
    "any",
    ["other"],
  ),
  {
    name: "cmmd",
    title: "CMMD (Jayasumana et al. 2024): RBF-kernel MMD² of L2-normalised embeddings, sigma 10, x1000",
    keys: [{ key: "cmmd", better: "lower", about: "CMMD" }],
    encoders: "any",
    needs: ["features"],
    defaultFor: [],
    minImages: two,
    compute: ({ real, fake }) => ({ cmmd: cmmd(real.features!, fake.features!) }),
  },
  diversityEntry("vendi", "vendi", "Vendi score (Friedman & Dieng 2023), cosine kernel", "Vendi score", (x) => vendiScore(x).score),
  diversityEntry("pairwise", "mean_pairwise_distance", "mean Euclidean distance over all pairs of features", "mean pairwise distance", meanPairwiseDistance),
  {
    name: "msssim",
    title: "mean MS-SSIM over seeded pairs of fake images (lower = more diverse)",
    keys: [{ key: "msssim", better: "lower", about: "MS-SSIM between random pairs of fakes" }],
    encoders: "any",
    needs: ["fake-images"],
    defaultFor: [],
    minImages: two,
    fakeOnly: true,
    async compute({ fake, settings }) {
      const { count, read } = fake.images!;
      const r = await msSsimDiversityLazy(count, read, { pairs: settings.msssimPairs ?? 100, seed: seedOf(settings) });
      return { msssim: { mean: r.mean, std: r.std } };
    },
  },
  {
    name: "gauss",
    title: "how Gaussian the features are: median KS distance of random 1-d projections, with a Gaussian yardstick",
    keys: [
      {
        key: "gauss",
        better: "lower",
        about: "median KS distance of the fake features' projections to a normal (the real side's when no fake features)",
        gateValue: (v) => {
          const g = v as { fake?: GaussianityResult; real?: GaussianityResult } | undefined;
          return (g?.fake ?? g?.real)?.medianKs;
        },
      },
    ],
    encoders: "any",
    needs: ["any-features"],
    defaultFor: [],
    minImages: two,
    compute({ real, fake, settings }) {
      const g: Record<string, GaussianityResult> = {};
      for (const [name, side] of [["real", real], ["fake", fake]] as const) {
        if (side.features) g[name] = gaussianity(side.features, { seed: seedOf(settings) });
      }
      return { gauss: { ...g } };
    },
  },
  {
    name: "fidinf",
    title: "FID-infinity (Chong & Forsyth 2020): FID at 15 subset sizes extrapolated to 1/N = 0",
    keys: [{ key: "fid_infinity", better: "lower", about: "FID extrapolated to infinitely many images" }],
    encoders: "inception",
    needs: ["fake-features"],
    defaultFor: [],
    minImages: two,
    fakeOnly: true,
    compute: ({ real, fake, settings }) => ({ fid_infinity: { ...fidInfinity(real.gaussian, fake.features!, { seed: seedOf(settings) }) } }),
  },
  {
    name: "clipscore",
    title: "CLIP score (torchmetrics: 100 x cosine of each image and its own prompt, mean, clamped at 0)",
    keys: [{ key: "clip_score", better: "higher", about: "CLIP score of fake images against their prompts" }],
    encoders: "any",
    needs: ["prompts"],
    defaultFor: [],
    minImages: () => 1,
    fakeOnly: true,
    compute: ({ prompts }) => ({ clip_score: clipScore(prompts!.images, prompts!.texts).score }),
  },
  {
    name: "negclip",
    title: "negative-prompt adherence: the CLIP score of each image against its negative prompt, and its change from the same seeds without one",
    keys: [
      { key: "neg_clip", better: "lower", about: "CLIP score (clip_score's definition) of fake images against their negative prompt" },
      { key: "neg_clip_delta", better: "lower", about: "neg_clip minus that of the same prompts and seeds generated without the negative prompt" },
    ],
    encoders: "any",
    needs: ["negative-prompts"],
    defaultFor: [],
    minImages: () => 1,
    fakeOnly: true,
    compute: ({ negativePrompts }) => ({ ...negativeClipScores(negativePrompts!) }),
  },
  {
    // DreamBooth's CLIP-I and DINO (Ruiz et al. 2023): real = the subject's reference photos, fake =
    // the generated images; the key names the space the features are in.
    name: "subject",
    title: "subject fidelity (DreamBooth): mean cosine of every fake image's embedding with every real (reference) image's",
    keys: [
      { key: "clip_i", better: "higher", about: "DreamBooth's CLIP-I: mean cosine of CLIP image embeddings, fake x real" },
      { key: "dinov2_i", better: "higher", about: "DreamBooth's DINO score in DINOv2's space: mean cosine of class tokens, fake x real" },
    ],
    encoders: ["clip", "dinov2"],
    needs: ["features"],
    defaultFor: [],
    minImages: () => 1,
    compute: ({ real, fake, encoder }) => ({ [`${encoder}_i`]: meanCrossCosine(fake.features!, real.features!) }),
  },
  {
    name: "clipt",
    title: "prompt fidelity (DreamBooth's CLIP-T): mean cosine of each image's CLIP embedding and its prompt's",
    keys: [{ key: "clip_t", better: "higher", about: "DreamBooth's CLIP-T: mean cosine of each fake image and its prompt (clip_score / 100, unclamped)" }],
    encoders: "any",
    needs: ["prompts"],
    defaultFor: [],
    minImages: () => 1,
    fakeOnly: true,
    compute: ({ prompts }) => ({ clip_t: meanPairedCosine(prompts!.images, prompts!.texts) }),
  },
  {
    name: "control",
    title: "control adherence (ControlNet): pixel F1 of the fake images' Canny edges against their control images' (cv2.Canny; thresholds 100,200 unless set)",
    keys: [{ key: "control_f1", better: "higher", about: "mean over fake images of the edge F1 against the image's control (precision: shared / generated edges, recall: shared / control edges)" }],
    encoders: "any",
    needs: ["fake-images", "controls"],
    defaultFor: [],
    minImages: () => 1,
    fakeOnly: true,
    compute: async ({ fake, controls }) => ({ control_f1: await meanControlF1(fake.images!, controls!) }),
  },
  {
    name: "cost",
    title: "generation cost per image: denoiser evaluations (built-in generators' own count) and wall-clock seconds",
    keys: [
      { key: "model_evals_per_image", better: "lower", about: "denoiser evaluations per image as the generator counted them (classifier-free guidance: 2 per step, 1 per step at s = 1); built-in generators only" },
      { key: "seconds_per_image", better: "lower", about: "mean seconds from request to image on disk (the sweep manifest's per-image seconds)" },
    ],
    encoders: "any",
    needs: ["generation"],
    defaultFor: [],
    minImages: () => 1,
    fakeOnly: true,
    compute: ({ generation }) => ({ ...costPerImage(generation!) }),
  },
];

export const METRIC_NAMES: readonly string[] = METRICS.map((m) => m.name);

export function getMetric(name: string): MetricEntry {
  const entry = METRICS.find((m) => m.name === name);
  if (!entry) throw new DiffevalError("E_USAGE", `unknown metric '${name}': choose from ${METRIC_NAMES.join(", ")}`);
  return entry;
}

/** Every JSON key a metric can write, with its entry. */
export const METRIC_KEYS: readonly (MetricKey & { metric: string })[] = METRICS.flatMap((m) => m.keys.map((k) => ({ ...k, metric: m.name })));

export function metricKey(key: string): (MetricKey & { metric: string }) | undefined {
  return METRIC_KEYS.find((k) => k.key === key);
}

/** The default `--metrics` of `diffeval metrics` for an encoder. */
export function defaultMetrics(encoder: string): string[] {
  const which = encoder === "inception" ? "inception" : "other";
  return METRICS.filter((m) => m.defaultFor.includes(which)).map((m) => m.name);
}

/** `--metrics a,b,c` (or a spec's list) checked against the registry, duplicates dropped. */
export function parseMetricNames(names: readonly string[], where = "--metrics"): string[] {
  const list = names.map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new DiffevalError("E_USAGE", `${where} is empty; choose from ${METRIC_NAMES.join(", ")}`);
  for (const n of list) getMetric(n);
  return [...new Set(list)];
}

/** Why per-image features are missing, naming the stats-file sides; undefined when every side has them. */
function statsFilesAmong(sides: MetricSide[]): string | undefined {
  const missing = sides.filter((s) => !s.features);
  if (missing.length === 0) return undefined;
  const several = missing.length > 1;
  return `needs per-image features; ${missing.map((s) => s.spec).join(" and ")} ${several ? "are" : "is a"} stats file${several ? "s" : ""}`;
}

/** A side without images, as a reason names it: "x.npz is a features file". */
function noImages(side: MetricSide): string {
  return `${side.spec} is a ${side.kind === "features" ? "features" : "stats"} file`;
}

/** Why sFID's spatial features are missing (a features file holds pool3 rows only). */
function noSpatial({ real, fake }: MetricContext): string | undefined {
  const files = [real, fake].filter((s) => s.kind === "features");
  if (files.length === 1) return `needs sFID's spatial features; ${noImages(files[0])}, which holds none`;
  if (files.length === 2) return `needs sFID's spatial features; ${real.spec} and ${fake.spec} are features files, which hold none`;
  return real.spatial && fake.spatial ? undefined : "needs sFID's spatial features, which were not extracted";
}

/** For each need: why these sides do not meet it, or undefined when they do. */
const UNMET: Record<MetricNeed, (ctx: MetricContext) => string | undefined> = {
  features: ({ real, fake }) => statsFilesAmong([real, fake]),
  "fake-features": ({ fake }) => statsFilesAmong([fake]),
  "any-features": ({ real, fake }) => (real.features || fake.features ? undefined : "needs per-image features; both sides are stats files"),
  spatial: (ctx) => statsFilesAmong([ctx.real, ctx.fake]) ?? noSpatial(ctx),
  "fake-images": ({ fake }) => (fake.images ? undefined : `needs images; ${noImages(fake)}`),
  logits: ({ fcWeight }) =>
    fcWeight ? undefined : "needs the Inception model's fc layer (for the logits), which is loaded only when a side is images",
  prompts: ({ prompts }) => (prompts ? undefined : "needs each image's prompt (diffeval clipscore, or a sweep with a clip field)"),
  "negative-prompts": ({ negativePrompts }) => (negativePrompts ? undefined : "needs each image's negative prompt (a sweep with a clip field and negative_prompts)"),
  generation: ({ generation }) => (generation?.length ? undefined : "needs each image's generation record (a sweep's manifest)"),
  controls: ({ controls }) => (controls ? undefined : "needs each image's control image (diffeval control, or a sweep with a control field)"),
};

/** Why a metric cannot be computed on these sides, or undefined when it can. */
export function whyNot(entry: MetricEntry, ctx: MetricContext): string | undefined {
  const spaces = entry.encoders === "any" ? undefined : entry.encoders === "inception" ? ["inception"] : entry.encoders;
  if (spaces && !spaces.includes(ctx.encoder)) {
    const which = `the ${spaces.join(" and ")} encoder${spaces.length > 1 ? "s" : ""}`;
    return `exists only for ${which}, not ${ctx.encoder}${entry.name === "fid" ? "; fd is the Frechet distance in this encoder's space" : ""}`;
  }
  for (const need of entry.needs) {
    const why = UNMET[need](ctx);
    if (why) return why;
  }
  const { real, fake } = ctx;
  const need = entry.minImages(ctx.settings);
  const n = (side: MetricSide) => side.features?.n ?? side.gaussian.n;
  const have = entry.fakeOnly ? n(fake) : Math.min(n(real) || Infinity, n(fake) || Infinity);
  if (Number.isFinite(have) && have < need) return `needs at least ${need} images per side, got ${have}`;
  return undefined;
}

/**
 * The metrics `names` of two sides: each computed from its entry, or skipped with the reason
 * (a stats-file side, another encoder's space, too few images), plus bootstrap intervals.
 */
export async function computeMetricValues(
  names: readonly string[],
  ctx: MetricContext,
): Promise<{ metrics: Record<string, MetricValue>; skipped: Record<string, string> }> {
  const metrics: Record<string, MetricValue> = {};
  const skipped: Record<string, string> = {};
  const computed: MetricEntry[] = [];
  for (const entry of names.map(getMetric)) {
    const why = whyNot(entry, ctx);
    if (why) {
      skipped[entry.name] = why;
      continue;
    }
    Object.assign(metrics, await entry.compute(ctx));
    computed.push(entry);
  }
  const replicates = ctx.settings.bootstrap ?? 0;
  if (replicates > 0) addBootstrap(metrics, computed, ctx, replicates, skipped);
  return { metrics, skipped };
}

/** Replaces the point values of the bootstrapped metrics by {mean, std, ci95}. */
function addBootstrap(
  metrics: Record<string, MetricValue>,
  entries: MetricEntry[],
  ctx: MetricContext,
  replicates: number,
  skipped: Record<string, string>,
): void {
  const withBootstrap = entries.filter((e) => e.bootstrap);
  if (withBootstrap.length === 0) return;
  const { real, fake, settings } = ctx;
  if (!real.features || !fake.features) {
    skipped.bootstrap = "needs per-image features on both sides";
    return;
  }
  const intervals = bootstrapIntervals(
    real.features,
    fake.features,
    (r, f) => Object.assign({}, ...withBootstrap.map((e) => e.bootstrap!(r, f, settings))) as Record<string, number>,
    { replicates, seed: seedOf(settings) },
  );
  for (const [key, iv] of Object.entries(intervals)) {
    const point = metrics[key];
    const mean = typeof point === "number" ? point : (point as { mean: number }).mean;
    metrics[key] = { mean, std: iv.std, ci95: iv.ci95 };
  }
}

function groupLabels(side: MetricSide, groups: Map<string, string> | undefined): string[] | undefined {
  if (!groups || !side.names) return undefined;
  return side.names.map((name) => {
    const g = groups.get(name);
    if (g === undefined) throw new DiffevalError("E_GROUPS", `the groups file names no group for image '${name}'`);
    return g;
  });
}

