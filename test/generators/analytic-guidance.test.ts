/**
 * Classifier guidance in the analytic generator: the exact Bayes classifier's gradient, and the
 * identity that makes classifier-free guidance a classifier guidance (Ho & Salimans 2022, Sec. 3.2):
 * with the class mixture as the unconditional model, eps_cond - eps_uncond = -sqrt(1 - abar)
 * grad log p(y | x_t), so the two rules give the same images; with the broader default
 * unconditional model they do not.
 */
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import {
  alphaBar,
  analyticModel,
  classLogPosterior,
  classLogPosteriorGrad,
  createAnalyticGenerator,
  mixtureClassifier,
  noisedLogDensity,
  sampleComponent,
  sampleWith,
  type AnalyticModel,
  type GaussianMixture,
  type GuidanceRule,
} from "../../src/generators/analytic/index.js";
import { createGenerator } from "../../src/generators/registry.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { createRng } from "../../src/random/rng.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";

const STEPS = 20;
const SCALES = [1, 3, 7];
const SEEDS = [0, 1, 2];

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function distance(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;

function classifierOf(model: AnalyticModel) {
  return mixtureClassifier(
    model.classes.map((c) => c.mixture),
    model.classes.map(() => 1),
  );
}

/** The float sample the generator draws for (class y, seed, s) under a rule, with `uncond` in the unconditional slot. */
function sample(model: AnalyticModel, y: number, seed: number, scale: number, uncond: GaussianMixture, guidance: "cfg" | "classifier"): Float64Array {
  const rule: GuidanceRule = guidance === "cfg" ? { kind: "cfg" } : { kind: "classifier", classifier: classifierOf(model), target: y };
  return sampleWith("ddim", { cond: model.classes[y].mixture, uncond, scale, steps: STEPS, seed, guidance: rule });
}

const request = (over: Partial<GenerationRequest>): GenerationRequest => ({
  prompt: "red circle",
  negativePrompt: "",
  cfgScale: 3,
  seed: 0,
  steps: STEPS,
  width: 32,
  height: 32,
  extra: {},
  ...over,
});

describe("the exact Bayes classifier p(y | x_t)", () => {
  it("its gradient matches central finite differences of log p(y | x_t) (several t, points and classes)", () => {
    const rng = createRng(31);
    for (const resolution of [8, 32]) {
      const model = analyticModel(resolution);
      const clf = classifierOf(model);
      const d = model.dim;
      let checks = 0;
      for (const t of [40, 250, 600, 900]) {
        const ab = alphaBar(t);
        for (let point = 0; point < 2; point++) {
          // a noised draw of one class; the posterior of it and of another class is differentiated
          const from = (t + point) % model.classes.length;
          const comp = model.classes[from].mixture.components[point % 3];
          const x = sampleComponent(comp, rng).map((v) => Math.sqrt(ab) * v + Math.sqrt(1 - ab) * rng.normal());
          for (const y of [from, (from + 1) % model.classes.length]) {
            // near its own class at low noise log p(y | x_t) is 0 to double precision: nothing to differentiate there
            if (classLogPosterior(x, ab, clf, y) > -1e-12) continue;
            const grad = classLogPosteriorGrad(x, ab, clf, y);
            const u = Float64Array.from({ length: d }, () => rng.normal());
            const norm = Math.sqrt(dot(u, u));
            u.forEach((v, i) => (u[i] = v / norm));
            // along u and along the gradient itself (where the directional derivative is largest)
            for (const dir of [u, grad.map((g) => g / Math.sqrt(dot(grad, grad)))]) {
              const h = 1e-3;
              const plus = classLogPosterior(x.map((v, i) => v + h * dir[i]), ab, clf, y);
              const minus = classLogPosterior(x.map((v, i) => v - h * dir[i]), ab, clf, y);
              const fd = (plus - minus) / (2 * h);
              const analytic = dot(grad, dir);
              // relative 1e-5, or what a central difference can resolve at all: the log densities
              // behind log p(y | x_t) are ~|log p_t(x_t)| in size, each rounded to ~1e-16 of that
              const roundoff = (10 * Number.EPSILON * Math.abs(noisedLogDensity(x, ab, model.labelled))) / h;
              expect(Math.abs(fd - analytic)).toBeLessThan(1e-5 * Math.abs(analytic) + roundoff);
              checks++;
            }
          }
        }
      }
      // most (class, point) pairs are not saturated: 16 pairs x 2 directions, at most a quarter skipped
      expect(checks).toBeGreaterThanOrEqual(24);
    }
  });

  it("is Bayes' rule: log p(y | x_t) over the classes sums to one in probability", () => {
    const model = analyticModel(8);
    const clf = classifierOf(model);
    const rng = createRng(5);
    const x = Float64Array.from({ length: model.dim }, () => rng.normal());
    const total = model.classes.reduce((s, _, y) => s + Math.exp(classLogPosterior(x, alphaBar(500), clf, y)), 0);
    expect(Math.abs(total - 1)).toBeLessThan(1e-12);
  });
});

describe("classifier guidance against CFG", () => {
  const model = analyticModel();
  const classes = model.classes.map((_, y) => y);

  it('unconditional "mixture": CFG at s equals classifier guidance at s, for s in {1, 3, 7}, every prompt and seed (float within 1e-6)', () => {
    let worst = 0;
    for (const s of SCALES) {
      for (const y of classes) {
        for (const seed of SEEDS) {
          const cfg = sample(model, y, seed, s, model.labelled, "cfg");
          const cls = sample(model, y, seed, s, model.labelled, "classifier");
          worst = Math.max(worst, maxAbsDiff(cfg, cls));
        }
      }
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('unconditional "mixture" through the generator: the PNGs of the two rules are within one level', async () => {
    const generator = createAnalyticGenerator({ unconditional: "mixture" });
    for (const s of SCALES) {
      for (const prompt of model.classes.map((c) => c.name)) {
        for (const seed of SEEDS) {
          const [cfg, cls] = await Promise.all(
            (["cfg", "classifier"] as const).map(async (guidance) => {
              const image = await generator.generate(request({ prompt, seed, cfgScale: s, extra: { guidance } }));
              expect(image.used).toMatchObject({ guidance, unconditional: "mixture" });
              return sharp(image.bytes).raw().toBuffer();
            }),
          );
          expect(maxAbsDiff(cfg, cls)).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it("default (broad) unconditional model: the rules differ by a material fraction of what guidance itself changes", () => {
    // Per (prompt, seed): how far classifier guidance lands from CFG at the same s ("gap"), against
    // how far CFG at s lands from the unguided sample at s = 1 ("effect"), both pixel-space distances.
    const gapAndEffect = (s: number): { gap: number; effect: number } => {
      const gap: number[] = [];
      const effect: number[] = [];
      for (const y of classes) {
        for (const seed of SEEDS) {
          const plain = sample(model, y, seed, 1, model.prior, "cfg");
          const cfg = sample(model, y, seed, s, model.prior, "cfg");
          gap.push(distance(cfg, sample(model, y, seed, s, model.prior, "classifier")));
          effect.push(distance(cfg, plain));
        }
      }
      return { gap: mean(gap), effect: mean(effect) };
    };
    const at3 = gapAndEffect(3);
    expect(at3.gap).toBeGreaterThan(0.5 * at3.effect);
    const at7 = gapAndEffect(7);
    expect(at7.gap).toBeGreaterThan(0.5 * at7.effect);
    // even at s = 1, where CFG is the conditional model, classifier guidance with the broad prior is
    // not: eps_broad + eps_cond - eps_mixture
    expect(gapAndEffect(1).gap).toBeGreaterThan(0.25 * at3.effect);
  });

  it("with a negative prompt the two rules coincide for the broad unconditional model too (the p_t(x) terms cancel)", async () => {
    const generator = createAnalyticGenerator();
    const [cfg, cls] = await Promise.all(
      (["cfg", "classifier"] as const).map(async (guidance) =>
        sharp((await generator.generate(request({ prompt: "red circle", negativePrompt: "yellow ring", seed: 4, cfgScale: 5, extra: { guidance } }))).bytes)
          .raw()
          .toBuffer(),
      ),
    );
    expect(maxAbsDiff(cfg, cls)).toBeLessThanOrEqual(1);
  });
});

describe("guidance plumbing", () => {
  const base = {
    prompts: ["red circle"],
    guidance_scales: [1, 3],
    reference: { source: "analytic:real", count: 10 },
  };

  it("a sweep spec takes guidance as an axis and unconditional as an analytic setting; the registry builds that generator", async () => {
    const spec = parseSweepSpec({ ...base, generator: { type: "analytic", unconditional: "mixture" }, axes: { guidance: ["cfg", "classifier"] } }, { baseDir: "/tmp" });
    expect(spec.axes).toEqual([["guidance", ["cfg", "classifier"]]]);
    const generator = await createGenerator(spec.generator);
    const image = await generator.generate(request({ extra: { guidance: "classifier" } }));
    expect(image.used).toMatchObject({ guidance: "classifier", unconditional: "mixture" });
    const byDefault = await (await createGenerator({ type: "analytic", guidance: "classifier" })).generate(request({}));
    expect(byDefault.used).toMatchObject({ guidance: "classifier", unconditional: "broad" });
  });

  it("refuses classifier guidance for a generator without a classifier, and unknown values, naming the field", async () => {
    const refused = (json: object, code: string, pattern: RegExp) => {
      let error: unknown;
      try {
        parseSweepSpec(json, { baseDir: "/tmp" });
      } catch (e) {
        error = e;
      }
      expect(isDiffevalError(error, code as never)).toBe(true);
      expect((error as Error).message).toMatch(pattern);
    };
    refused({ ...base, generator: { type: "a1111", baseUrl: "http://127.0.0.1:7860" }, axes: { guidance: ["cfg", "classifier"] } }, "E_SWEEP_SPEC", /spec\.axes\.guidance\[1\].*only the "analytic" generator/);
    refused({ ...base, generator: { type: "analytic" }, axes: { guidance: ["cfg", "clf"] } }, "E_SWEEP_SPEC", /spec\.axes\.guidance\[1\].*"cfg" or "classifier"/);
    // cfg alone is what every generator does
    expect(parseSweepSpec({ ...base, generator: { type: "a1111", baseUrl: "http://127.0.0.1:7860" }, axes: { guidance: ["cfg"] } }, { baseDir: "/tmp" }).axes).toHaveLength(1);
    await expect(createGenerator({ type: "a1111", baseUrl: "http://127.0.0.1:7860", guidance: "classifier" })).rejects.toThrow(/generator\.guidance is not a setting of the "a1111" generator/);
    await expect(createGenerator({ type: "analytic", unconditional: "uniform" })).rejects.toThrow(/unconditional must be one of broad, mixture/);
    await expect(createAnalyticGenerator().generate(request({ extra: { guidance: "clf" } }))).rejects.toThrow(/unknown guidance "clf"/);
  });
});
