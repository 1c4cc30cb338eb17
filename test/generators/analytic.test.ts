import { CholeskyDecomposition, Matrix } from "ml-matrix";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import {
  alphaBar,
  analyticClasses,
  classForPrompt,
  classModel,
  createAnalyticGenerator,
  epsPrediction,
  gaussianMixture,
  noisedLogDensity,
  sampleComponent,
  sampleWith,
  samplingTimesteps,
  unconditionalModel,
  type GaussianComponent,
  type GaussianMixture,
  type SamplerName,
} from "../../src/generators/analytic/index.js";
import { symmetricEigenSmall } from "../../src/generators/analytic/small-eigen.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { createRng } from "../../src/random/rng.js";

const request = (over: Partial<GenerationRequest>): GenerationRequest => ({
  prompt: "red circle",
  negativePrompt: "",
  cfgScale: 1,
  seed: 0,
  steps: 50,
  width: 32,
  height: 32,
  extra: {},
  ...over,
});

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function row(m: Float64Array, j: number, d: number): Float64Array {
  return m.subarray(j * d, (j + 1) * d);
}

/** Directions (unit vectors) with their exact mean and variance under the component: each q_j, then an isotropic one. */
function principalDirections(comp: GaussianComponent): Array<{ v: Float64Array; mean: number; variance: number }> {
  const d = comp.mean.length;
  const out = [...comp.variances].map((lam, j) => {
    const v = row(comp.basis, j, d);
    return { v, mean: dot(v, comp.mean), variance: lam + comp.noiseVariance };
  });
  const iso = isotropicBasis(comp, 1, 1_000_003)[0]; // a seed no sample below uses for its noise
  out.push({ v: iso, mean: dot(iso, comp.mean), variance: comp.noiseVariance });
  return out;
}

interface DirectionCheck {
  /** (sample mean - exact mean) / standard error, per direction. */
  z: number[];
  /** sample variance / exact variance, per direction. */
  ratio: number[];
}

function checkDirections(samples: Float64Array[], comp: GaussianComponent): DirectionCheck {
  const n = samples.length;
  const z: number[] = [];
  const ratio: number[] = [];
  for (const { v, mean, variance } of principalDirections(comp)) {
    const proj = samples.map((x) => dot(x, v));
    const m = proj.reduce((s, p) => s + p, 0) / n;
    const s2 = proj.reduce((s, p) => s + (p - m) ** 2, 0) / (n - 1);
    z.push((m - mean) / Math.sqrt(variance / n));
    ratio.push(s2 / variance);
  }
  return { z, ratio };
}

const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;

function meanPairwiseDistance(xs: Float64Array[]): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < xs.length; i++) {
    for (let j = i + 1; j < xs.length; j++) {
      let s = 0;
      for (let k = 0; k < xs[i].length; k++) s += (xs[i][k] - xs[j][k]) ** 2;
      sum += Math.sqrt(s);
      count++;
    }
  }
  return sum / count;
}

function distance(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

function samples(sampler: SamplerName, cond: GaussianMixture, uncond: GaussianMixture, scale: number, seeds: number[]): Float64Array[] {
  return seeds.map((seed) => sampleWith(sampler, { cond, uncond, scale, steps: 50, seed }));
}

const seedsUpTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe("analytic schedule", () => {
  it("is DDPM's linear schedule: alphaBar_0 = 1 - 1e-4, alphaBar_999 = 4.04e-5", () => {
    expect(alphaBar(0)).toBeCloseTo(1 - 1e-4, 15);
    expect(alphaBar(1)).toBeCloseTo((1 - 1e-4) * (1 - (1e-4 + 0.0199 / 999)), 15);
    expect(alphaBar(999)).toBeCloseTo(4.036e-5, 8);
  });

  it("visits exactly `steps` distinct timesteps from 999 down to 0", () => {
    for (const steps of [1, 2, 10, 50, 200, 1000]) {
      const ts = [...samplingTimesteps(steps)];
      expect(ts.length).toBe(steps);
      expect(ts[0]).toBe(999);
      if (steps > 1) expect(ts[steps - 1]).toBe(0);
      for (let i = 1; i < steps; i++) expect(ts[i]).toBeLessThan(ts[i - 1]);
    }
  });
});

describe("analytic classes", () => {
  it("lists at least four classes and finds them in prompts by keyword, any case", () => {
    expect(analyticClasses().length).toBeGreaterThanOrEqual(4);
    expect(analyticClasses()).toContain("red circle");
    expect(classForPrompt("A photo of a Blue Square, centred").name).toBe("blue square");
  });

  it("rejects an unknown prompt with E_GENERATOR_REQUEST listing the known classes", () => {
    let error: unknown;
    try {
      classForPrompt("a photo of a cat");
    } catch (e) {
      error = e;
    }
    expect(isDiffevalError(error, "E_GENERATOR_REQUEST")).toBe(true);
    expect((error as Error).message).toContain("a photo of a cat");
    for (const name of analyticClasses()) expect((error as Error).message).toContain(name);
    expect(() => classForPrompt("red circle next to a blue square")).toThrow(/several classes/);
  });

  it("orthonormal principal directions reproduce the small eigenproblem (Jacobi check)", () => {
    const rng = createRng(5);
    const n = 6;
    const b = Float64Array.from({ length: n * n }, () => rng.normal());
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) s[i * n + j] += b[i * n + k] * b[j * n + k];
    const { values, vectors } = symmetricEigenSmall(s, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let rebuilt = 0;
        for (let k = 0; k < n; k++) rebuilt += vectors[i * n + k] * values[k] * vectors[j * n + k];
        expect(rebuilt).toBeCloseTo(s[i * n + j], 10);
      }
    }
    for (let k = 1; k < n; k++) expect(values[k]).toBeLessThanOrEqual(values[k - 1]);
    const comp = classModel("blue square").mixture.components[0];
    const d = comp.mean.length;
    for (let j = 0; j < comp.variances.length; j++) {
      for (let l = 0; l <= j; l++) expect(dot(row(comp.basis, j, d), row(comp.basis, l, d))).toBeCloseTo(j === l ? 1 : 0, 10);
    }
  });
});

describe("analytic eps is the exact noised score", () => {
  /** eps from dense algebra at small d: responsibilities from Cholesky log-determinants, Sigma_k(t)^-1 (x - a mu_k) by solves. */
  function denseEps(x: Float64Array, ab: number, mixture: GaussianMixture): Float64Array {
    const d = x.length;
    const a = Math.sqrt(ab);
    const logJoint: number[] = [];
    const solves: Float64Array[] = [];
    mixture.components.forEach((comp, k) => {
      const cov = Matrix.eye(d, d).mul(ab * comp.noiseVariance + 1 - ab);
      for (let j = 0; j < comp.variances.length; j++) {
        const q = row(comp.basis, j, d);
        for (let p = 0; p < d; p++) {
          for (let r = 0; r <= p; r++) {
            const v = cov.get(p, r) + ab * comp.variances[j] * q[p] * q[r];
            cov.set(p, r, v);
            cov.set(r, p, v);
          }
        }
      }
      const chol = new CholeskyDecomposition(cov);
      const resid = Matrix.columnVector(Array.from(x, (v, i) => v - a * comp.mean[i]));
      const solved = chol.solve(resid).to1DArray();
      let logDet = 0;
      const l = chol.lowerTriangularMatrix;
      for (let i = 0; i < d; i++) logDet += 2 * Math.log(l.get(i, i));
      const quad = solved.reduce((s, v, i) => s + v * resid.get(i, 0), 0);
      logJoint.push(mixture.logWeights[k] - 0.5 * (logDet + quad));
      solves.push(Float64Array.from(solved));
    });
    const max = Math.max(...logJoint);
    const w = logJoint.map((v) => Math.exp(v - max));
    const total = w.reduce((s, v) => s + v, 0);
    const eps = new Float64Array(d);
    solves.forEach((s, k) => s.forEach((v, i) => (eps[i] += (Math.sqrt(1 - ab) * w[k] * v) / total)));
    return eps;
  }

  it("matches dense Cholesky algebra at 4 x 4 x 3 for a class and for the prior", () => {
    const rng = createRng(11);
    for (const mixture of [classModel("green triangle", 4).mixture, unconditionalModel(4)]) {
      for (const t of [0, 20, 300, 999]) {
        const ab = alphaBar(t);
        // a point near the data: a noised draw from one component
        const clean = sampleComponent(mixture.components[t % mixture.components.length], rng);
        const x = clean.map((v) => Math.sqrt(ab) * v + Math.sqrt(1 - ab) * rng.normal());
        const got = epsPrediction(x, t, mixture);
        const want = denseEps(x, ab, mixture);
        const scale = Math.max(...want.map(Math.abs));
        for (let i = 0; i < x.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-9 * scale);
      }
    }
  });

  it("is -sqrt(1 - alphaBar) times the gradient of log p_t (central differences at 32 x 32 x 3)", () => {
    const rng = createRng(12);
    const prior = unconditionalModel();
    const d = prior.dim;
    for (const t of [30, 400]) {
      const ab = alphaBar(t);
      const clean = sampleComponent(prior.components[4], rng);
      const x = clean.map((v) => Math.sqrt(ab) * v + Math.sqrt(1 - ab) * rng.normal());
      const eps = epsPrediction(x, t, prior);
      for (let trial = 0; trial < 3; trial++) {
        const u = Float64Array.from({ length: d }, () => rng.normal());
        const norm = Math.sqrt(dot(u, u));
        u.forEach((v, i) => (u[i] = v / norm));
        const h = 1e-3;
        const plus = noisedLogDensity(x.map((v, i) => v + h * u[i]), ab, prior);
        const minus = noisedLogDensity(x.map((v, i) => v - h * u[i]), ab, prior);
        const fd = (plus - minus) / (2 * h);
        const analytic = -dot(eps, u) / Math.sqrt(1 - ab);
        expect(Math.abs(fd - analytic)).toBeLessThan(1e-5 * Math.max(1, Math.abs(analytic)));
      }
    }
  });
});

/**
 * The variance ratio (output / data) a sampler gives along a direction where the data is N(m, v)
 * and the model is that Gaussian: every step is linear there, eps = sqrt(1 - ab) (x - sqrt(ab) m) /
 * (ab v + 1 - ab), so x0 = A x_T + const and the ratio is A^2 / v. An independent scalar re-run
 * of DDIM (Song et al. 2021, eq. 12) and DPM-Solver++(2M) (Lu et al. 2022, Alg. 2).
 */
function expectedVarianceRatio(sampler: SamplerName, v: number, steps: number): number {
  const ts = [...samplingTimesteps(steps)];
  let xGain = 1; // x_t = xGain * x_T (zero mean: the mean does not change the gain)
  let x0PrevGain = 0;
  let hPrev = 0;
  for (let i = 0; i < ts.length; i++) {
    const ab = alphaBar(ts[i]);
    const k = Math.sqrt(1 - ab) / (ab * v + 1 - ab);
    const x0Gain = (xGain - Math.sqrt(1 - ab) * k * xGain) / Math.sqrt(ab);
    if (i === ts.length - 1) return (x0Gain * x0Gain) / v;
    const abNext = alphaBar(ts[i + 1]);
    const lambda = 0.5 * Math.log(ab / (1 - ab));
    const lambdaNext = 0.5 * Math.log(abNext / (1 - abNext));
    const h = lambdaNext - lambda;
    let d = x0Gain;
    if (sampler === "dpmpp-2m" && i > 0) {
      const r = hPrev / h;
      d = (1 + 1 / (2 * r)) * x0Gain - (1 / (2 * r)) * x0PrevGain;
    }
    xGain = Math.sqrt((1 - abNext) / (1 - ab)) * xGain + Math.sqrt(abNext) * (1 - Math.exp(-h)) * d;
    x0PrevGain = x0Gain;
    hPrev = h;
  }
  throw new Error("unreachable");
}

/** `count` orthonormal unit vectors orthogonal to the component's principal directions (Gram-Schmidt on seeded normals). */
function isotropicBasis(comp: GaussianComponent, count: number, seed: number): Float64Array[] {
  const d = comp.mean.length;
  const rng = createRng(seed);
  const against = [...comp.variances].map((_, j) => row(comp.basis, j, d));
  const out: Float64Array[] = [];
  while (out.length < count) {
    const u = Float64Array.from({ length: d }, () => rng.normal());
    for (const q of [...against, ...out]) {
      const c = dot(u, q);
      for (let i = 0; i < d; i++) u[i] -= c * q[i];
    }
    const norm = Math.sqrt(dot(u, u));
    out.push(u.map((x) => x / norm));
  }
  return out;
}

describe("analytic sampling at s = 1 reproduces the class distribution", () => {
  // One component of "red circle" as the whole class: its Gaussian is the exact target. n = 300
  // seeded samples. Along each principal direction q_j the mean's z-score is N(0, 1) and the
  // variance ratio has standard error sqrt(2 / (n - 1)) = 8.2%; pooled over 64 orthonormal
  // isotropic directions (independent, each of variance sigma^2) the standard error is 1.0%.
  // Tolerances: 4 standard errors: |z| < 4, each q_j ratio within 33%, their average over the
  // r = 7 directions within 12%, the pooled isotropic ratio within 4.1%. The ratios are compared
  // with what the sampler should give at 50 steps (expectedVarianceRatio): 1 - 1% for DPM-Solver++(2M),
  // ~0.9 for DDIM, whose first-order discretisation shrinks every variance.
  const comp = classModel("red circle").mixture.components[0];
  const single = gaussianMixture([comp], [1]);
  const n = 300;
  const seeds = seedsUpTo(n);
  const isotropic = isotropicBasis(comp, 64, 1_000_003);
  const se = Math.sqrt(2 / (n - 1));

  function check(sampler: SamplerName): { pooledIsotropic: number; expectedIsotropic: number; relative: number[] } {
    const xs = samples(sampler, single, unconditionalModel(), 1, seeds);
    const directions = checkDirections(xs, comp);
    for (const z of directions.z) expect(Math.abs(z)).toBeLessThan(4);
    const relative = [...comp.variances].map((lam, j) => directions.ratio[j] / expectedVarianceRatio(sampler, lam + comp.noiseVariance, 50));
    for (const r of relative) expect(Math.abs(r - 1)).toBeLessThan(4 * se);
    expect(Math.abs(mean(relative) - 1)).toBeLessThan((4 * se) / Math.sqrt(relative.length));
    let pooled = 0;
    for (const u of isotropic) {
      const proj = xs.map((x) => dot(x, u));
      const m = mean(proj);
      pooled += proj.reduce((acc, p) => acc + (p - m) ** 2, 0) / (n - 1);
    }
    const pooledIsotropic = pooled / isotropic.length / comp.noiseVariance;
    const expectedIsotropic = expectedVarianceRatio(sampler, comp.noiseVariance, 50);
    expect(Math.abs(pooledIsotropic / expectedIsotropic - 1)).toBeLessThan((4 * se) / Math.sqrt(isotropic.length));
    return { pooledIsotropic, expectedIsotropic, relative };
  }

  it("DPM-Solver++(2M), 50 steps: means and variances match the data along every principal direction and the isotropic part", () => {
    const { pooledIsotropic } = check("dpmpp-2m");
    for (const v of [comp.noiseVariance, ...comp.variances]) expect(Math.abs(expectedVarianceRatio("dpmpp-2m", v, 50) - 1)).toBeLessThan(0.01);
    expect(Math.abs(pooledIsotropic - 1)).toBeLessThan(0.05);
  });

  it("DDIM, 50 steps: means match; variances are DDIM's predicted first-order shrinkage (about 10% low)", () => {
    const { pooledIsotropic, expectedIsotropic } = check("ddim");
    expect(expectedIsotropic).toBeGreaterThan(0.85);
    expect(expectedIsotropic).toBeLessThan(0.93);
    expect(pooledIsotropic).toBeLessThan(0.95);
    // with many steps DDIM converges to the probability-flow ODE, exact for this model
    expect(Math.abs(expectedVarianceRatio("ddim", comp.variances[0] + comp.noiseVariance, 1000) - 1)).toBeLessThan(0.01);
  });
});

describe("analytic guidance", () => {
  const prior = unconditionalModel();
  const circle = classModel("red circle");
  const ring = classModel("yellow ring");
  const seeds = seedsUpTo(16);

  it("per-prompt diversity (mean pairwise distance) falls as s grows: 1, 3, 9", () => {
    const diversity = [1, 3, 9].map((s) => meanPairwiseDistance(samples("ddim", circle.mixture, prior, s, seeds)));
    expect(diversity[1]).toBeLessThan(0.95 * diversity[0]);
    expect(diversity[2]).toBeLessThan(0.95 * diversity[1]);
  });

  it("a negative prompt moves samples away from that class's prototypes", () => {
    const plain = samples("ddim", circle.mixture, prior, 3, seeds);
    const negative = samples("ddim", circle.mixture, ring.mixture, 3, seeds);
    const nearestRing = (x: Float64Array): number => Math.min(...ring.prototypes.map((p) => distance(x, p)));
    const meanRingDistance = (xs: Float64Array[]): number => mean(xs.map(nearestRing));
    expect(meanRingDistance(negative)).toBeGreaterThan(meanRingDistance(plain) + 1);
    // and along the direction from the circle's prototypes to the ring's
    const centroid = (ps: readonly Float64Array[]): Float64Array => ps[0].map((_, i) => mean(ps.map((p) => p[i])));
    const ringC = centroid(ring.prototypes);
    const circleC = centroid(circle.prototypes);
    const direction = ringC.map((v, i) => v - circleC[i]);
    const along = (xs: Float64Array[]): number => mean(xs.map((x) => dot(x, direction)));
    expect(along(negative)).toBeLessThan(along(plain));
  });
});

describe("analytic generator", () => {
  const generator = createAnalyticGenerator();

  it("returns PNGs of the requested size, native or upscaled by nearest neighbour", async () => {
    expect(generator.name).toBe("analytic");
    expect(generator.concurrency).toBe(1);
    for (const [width, height] of [
      [32, 32],
      [64, 48],
    ]) {
      const image = await generator.generate(request({ width, height, cfgScale: 2, negativePrompt: "blue square" }));
      expect(image.format).toBe("png");
      const meta = await sharp(image.bytes).metadata();
      expect([meta.width, meta.height, meta.channels]).toEqual([width, height, 3]);
      expect(image.used).toMatchObject({ class: "red circle", negativeClass: "blue square", width, height, steps: 50, sampler: "ddim", cfgScale: 2 });
    }
    const small = await sharp((await generator.generate(request({ seed: 3 }))).bytes).raw().toBuffer();
    const big = await sharp((await generator.generate(request({ seed: 3, width: 64, height: 64 }))).bytes).raw().toBuffer();
    expect(big[(2 * 64 * 5 + 2 * 7) * 3 + 1]).toBe(small[(32 * 5 + 7) * 3 + 1]);
  });

  it("is deterministic per seed, and a negative prompt changes nothing at s = 1", async () => {
    const a = await generator.generate(request({ seed: 7 }));
    const b = await generator.generate(request({ seed: 7, negativePrompt: "yellow ring" }));
    const c = await generator.generate(request({ seed: 8 }));
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    expect(Buffer.from(a.bytes).equals(Buffer.from(c.bytes))).toBe(false);
  });

  it("rejects unknown prompts, negative prompts and samplers with clear errors", async () => {
    await expect(generator.generate(request({ prompt: "a dog" }))).rejects.toThrow(/names no known class.*red circle/);
    await expect(generator.generate(request({ negativePrompt: "blurry" }))).rejects.toThrow(/negative prompt "blurry"/);
    await expect(generator.generate(request({ extra: { sampler: "euler" } }))).rejects.toThrow(/unknown sampler/);
    expect(() => createAnalyticGenerator({ sampler: "euler" as never })).toThrow(/unknown sampler/);
    expect(() => createAnalyticGenerator({ steps: 0 })).toThrow(/steps must be an integer/);
    const dpm = createAnalyticGenerator({ sampler: "dpmpp-2m", steps: 20 });
    expect((await dpm.generate(request({ steps: 0 }))).used).toMatchObject({ sampler: "dpmpp-2m", steps: 20 });
  });

  it("reference (analytic:real) rotates through the classes and decodes at the reference size", async () => {
    const got: Array<{ name: string; bytes: Uint8Array }> = [];
    for await (const image of generator.reference!(7, 1)) got.push(image);
    expect(got.map((g) => g.name)).toEqual([
      "000000-red-circle.png",
      "000001-blue-square.png",
      "000002-green-triangle.png",
      "000003-yellow-ring.png",
      "000004-purple-cross.png",
      "000005-red-circle.png",
      "000006-blue-square.png",
    ]);
    const meta = await sharp(got[0].bytes).metadata();
    expect([meta.width, meta.height]).toEqual([32, 32]);
    const again: Uint8Array[] = [];
    for await (const image of generator.reference!(2, 1)) again.push(image.bytes);
    expect(Buffer.from(again[1]).equals(Buffer.from(got[1].bytes))).toBe(true);
  });

  it("reference draws have the class's mean and variance along its principal directions", () => {
    // 2000 exact draws of one component: the ratio's standard error is sqrt(2 / 1999) = 3.2%
    const comp = classModel("purple cross").mixture.components[1];
    const rng = createRng(21);
    const n = 2000;
    const check = checkDirections(
      Array.from({ length: n }, () => sampleComponent(comp, rng)),
      comp,
    );
    for (const z of check.z) expect(Math.abs(z)).toBeLessThan(4);
    for (const r of check.ratio) expect(Math.abs(r - 1)).toBeLessThan(4 * Math.sqrt(2 / (n - 1)));
  });
});
