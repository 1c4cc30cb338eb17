import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  alphasCumprod,
  createScheduler,
  eulerSigmas,
  parseSchedulerConfig,
  schedulerNameOfClass,
  SCHEDULERS,
  timestepsFor,
  type SchedulerConfig,
  type SchedulerName,
} from "../../../src/generators/onnx-sd/schedulers/index.js";
import { errorOf } from "../../helpers/errors.js";
import { fixture } from "../../helpers/fixtures.js";

const CONFIG_FILE = fixture("sd", "sd-tiny", "scheduler", "scheduler_config.json");
/** Stable Diffusion v1.5's scheduler_config.json (a PNDMScheduler config). */
const SD15: Record<string, unknown> = JSON.parse(readFileSync(CONFIG_FILE, "utf8"));
const EXPECTED = JSON.parse(readFileSync(fixture("sd", "reference", "sd_expected.json"), "utf8")) as {
  cases: Array<{ name: string; scheduler: SchedulerName; steps: number; timesteps: number[]; init_noise_sigma: number }>;
};

const sd = (kind: SchedulerName, over: Record<string, unknown> = {}): SchedulerConfig => parseSchedulerConfig({ ...SD15, ...over }, "sd15.json", kind);

/** Inclusive integer range [from, to] stepping by `step` (negative steps count down). */
function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; step > 0 ? v <= to : v >= to; v += step) out.push(v);
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) throw new Error(`element ${i}: ${actual[i]} vs ${expected[i]} (tolerance ${tol})`);
  }
}

// A small latent and model outputs for the single-step checks.
const X = Float32Array.from([0.9, -1.3, 0.25, 2.1]);
const E = Float32Array.from([0.4, 0.8, -1.1, -0.2]);

describe("diffusers' timesteps", () => {
  it("match the reference pipeline's timesteps and init_noise_sigma for every fixture case", () => {
    expect(EXPECTED.cases.length).toBeGreaterThanOrEqual(4);
    for (const c of EXPECTED.cases) {
      const s = createScheduler(c.scheduler, parseSchedulerConfig(SD15, CONFIG_FILE, c.scheduler), c.steps);
      expect(s.timesteps, c.name).toEqual(c.timesteps);
      expect(Math.abs(s.initNoiseSigma / c.init_noise_sigma - 1), c.name).toBeLessThan(1e-6);
    }
  });

  it("space SD1.5's 50 steps as the published 981, 961, ..., 1 (leading, steps_offset 1)", () => {
    // ratio = 1000 // 50 = 20: arange(50) * 20 + 1, reversed.
    const leading50 = range(981, 1, -20);
    expect(timestepsFor(sd("ddim"), 50)).toEqual(leading50);
    // PLMS repeats the second entry: 981, 961, 961, 941, ..., 1 (51 UNet calls).
    expect(timestepsFor(sd("pndm"), 50)).toEqual([981, 961, ...range(961, 1, -20)]);
    // Euler from the same file spaces by its own default, linspace, without the offset.
    const euler = timestepsFor(sd("euler"), 50);
    expect(euler.length).toBe(50);
    expect([euler[0], euler[49]]).toEqual([999, 0]);
    expect(euler[1]).toBe(Math.fround((48 * 999) / 49)); // 978.6122..., kept as float32
  });

  it("space trailing as round(arange(N, 0, -N/steps)) - 1 with numpy's half-to-even rounding", () => {
    // 10 steps: 1000, 900, ..., 100 minus 1.
    expect(timestepsFor(sd("ddim", { timestep_spacing: "trailing" }), 10)).toEqual(range(999, 99, -100));
    // 16 steps: 1000 - 62.5 k rounds half to even: 937.5 -> 938, 812.5 -> 812, 687.5 -> 688, 562.5 -> 562, ...
    expect(timestepsFor(sd("ddim", { timestep_spacing: "trailing" }), 16)).toEqual([999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]);
    // Euler trailing: the same values, and sigma_max as the initial sigma (t = 999 is the largest).
    expect(timestepsFor(sd("euler", { timestep_spacing: "trailing" }), 10)).toEqual(range(999, 99, -100));
    // PNDM trailing: ascending t = 99, ..., 999; PLMS list 999, 899, 899, 799, ..., 99 (no offset).
    expect(timestepsFor(sd("pndm", { timestep_spacing: "trailing" }), 10)).toEqual([999, 899, ...range(899, 99, -100)]);
  });

  it("space linspace as linspace(0, N-1, steps), rounded half to even for DDIM and PNDM, float32 for Euler", () => {
    // 999/4 = 249.75: 0, 249.75, 499.5, 749.25, 999 -> 0, 250, 500 (half to even), 749, 999.
    expect(timestepsFor(sd("ddim", { timestep_spacing: "linspace" }), 5)).toEqual([999, 749, 500, 250, 0]);
    expect(timestepsFor(sd("pndm", { timestep_spacing: "linspace" }), 5)).toEqual([999, 749, 749, 500, 250, 0]);
    // 999/6 = 166.5: Euler keeps the halves.
    expect(timestepsFor(sd("euler"), 7)).toEqual([999, 832.5, 666, 499.5, 333, 166.5, 0]);
  });

  it("give Euler's leading spacing the offset and sqrt(sigma_max^2 + 1) as the initial sigma", () => {
    // ratio = 1000 // 7 = 142: 6*142 + 1 = 853 down to 1.
    const s = createScheduler("euler", sd("euler", { timestep_spacing: "leading" }), 7);
    expect(s.timesteps).toEqual([853, 711, 569, 427, 285, 143, 1]);
    const ac = alphasCumprod(sd("euler"));
    const sigmaMax = Math.sqrt((1 - ac[853]) / ac[853]);
    expect(s.initNoiseSigma).toBeCloseTo(Math.sqrt(sigmaMax * sigmaMax + 1), 5);
  });

  it("refuse step counts diffusers cannot give (0, fractional, above N, trailing's extra arange value, a timestep past N-1)", () => {
    for (const steps of [0, 2.5, 1001]) {
      const e = errorOf(() => createScheduler("ddim", sd("ddim"), steps));
      expect(e.code).toBe("E_SCHEDULER");
      expect(e.message).toContain("sd15.json");
      expect(e.message).toContain(String(steps));
    }
    // 1000 / (1000/61) = 61.00000000000001: numpy's arange gives 62 values, the last -1.
    const trailing61 = errorOf(() => createScheduler("euler", sd("euler", { timestep_spacing: "trailing" }), 61));
    expect(trailing61.code).toBe("E_SCHEDULER");
    expect(trailing61.message).toContain("62 timesteps");
    expect(timestepsFor(sd("ddim", { timestep_spacing: "trailing" }), 60).length).toBe(60);
    // Leading with steps_offset 1 at 1000 steps reaches t = 1000.
    const pastEnd = errorOf(() => createScheduler("ddim", sd("ddim"), 1000));
    expect(pastEnd.code).toBe("E_SCHEDULER");
    expect(pastEnd.message).toContain("timestep 1000");
    expect(createScheduler("ddim", sd("ddim", { steps_offset: 0 }), 1000).timesteps[0]).toBe(999);
  });
});

describe("alphasCumprod", () => {
  it("gives Stable Diffusion's scaled_linear schedule (betas linspace(sqrt 0.00085, sqrt 0.012, 1000)^2)", () => {
    const ac = alphasCumprod(sd("ddim"));
    expect(ac.length).toBe(1000);
    expect(Math.abs(ac[0] - (1 - 0.00085))).toBeLessThan(1e-6);
    // The float64 product of the same schedule: 0.0046601 at t = 999.
    let product = 1;
    const a = Math.sqrt(0.00085);
    const b = Math.sqrt(0.012);
    for (let t = 0; t < 1000; t++) {
      product *= 1 - (a + ((b - a) * t) / 999) ** 2;
      if (t === 499) expect(Math.abs(ac[t] - product)).toBeLessThan(1e-6);
    }
    expect(product).toBeCloseTo(0.0046601, 7);
    expect(Math.abs(ac[999] - product)).toBeLessThan(1e-6);
  });

  it("gives DDPM's linear schedule by default and the cosine schedule for squaredcos_cap_v2", () => {
    const linear = alphasCumprod(parseSchedulerConfig({}, "defaults.json", "ddim"));
    let product = 1;
    for (let t = 0; t < 1000; t++) product *= 1 - (0.0001 + ((0.02 - 0.0001) * t) / 999);
    expect(Math.abs(linear[999] - product)).toBeLessThan(1e-7);
    // Cosine: the product telescopes to alpha_bar((t+1)/N) / alpha_bar(0) until betas hit the 0.999 cap.
    const cosine = alphasCumprod(parseSchedulerConfig({ beta_schedule: "squaredcos_cap_v2" }, "cos.json", "ddim"));
    const alphaBar = (u: number) => Math.cos(((u + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    for (const t of [0, 250, 500, 900]) expect(Math.abs(cosine[t] - alphaBar((t + 1) / 1000) / alphaBar(0))).toBeLessThan(1e-6);
  });

  it("uses trained_betas when given, as float32", () => {
    const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
    const ac = alphasCumprod(parseSchedulerConfig({ num_train_timesteps: 10, trained_betas: betas, beta_schedule: "scaled_linear" }, "tb.json", "ddim"));
    let product = 1;
    betas.forEach((beta, t) => {
      product *= 1 - Math.fround(beta);
      expect(Math.abs(ac[t] - product)).toBeLessThan(1e-7);
    });
  });
});

describe("DDIM step (eta 0)", () => {
  // DDIM Eq. 12 in float64: x0 from the prediction, x_prev = sqrt(a') x0 + sqrt(1 - a') eps.
  function ddimReference(x: ArrayLike<number>, out: ArrayLike<number>, a: number, aPrev: number, kind: "epsilon" | "v_prediction" | "sample", clip?: number): number[] {
    return Array.from(x, (xi, j) => {
      let x0: number;
      let eps: number;
      if (kind === "epsilon") {
        eps = out[j];
        x0 = (xi - Math.sqrt(1 - a) * eps) / Math.sqrt(a);
      } else if (kind === "v_prediction") {
        x0 = Math.sqrt(a) * xi - Math.sqrt(1 - a) * out[j];
        eps = Math.sqrt(a) * out[j] + Math.sqrt(1 - a) * xi;
      } else {
        x0 = out[j];
        eps = (xi - Math.sqrt(a) * x0) / Math.sqrt(1 - a);
      }
      if (clip !== undefined) x0 = Math.min(clip, Math.max(-clip, x0));
      return Math.sqrt(aPrev) * x0 + Math.sqrt(1 - aPrev) * eps;
    });
  }

  it("takes t = 901 to 801 for epsilon prediction", () => {
    const s = createScheduler("ddim", sd("ddim"), 10);
    const ac = alphasCumprod(sd("ddim"));
    expect(s.timesteps[0]).toBe(901);
    const before = Float32Array.from(X);
    expectClose(s.step(E, 0, X), ddimReference(X, E, ac[901], ac[801], "epsilon"), 1e-5);
    expect(X).toEqual(before); // inputs untouched
    expect(s.scaleModelInput(X, 0)).toBe(X);
  });

  it("ends with final_alpha_cumprod: alphas_cumprod[0], or 1 with set_alpha_to_one", () => {
    const ac = alphasCumprod(sd("ddim"));
    const last = (one: boolean) => createScheduler("ddim", sd("ddim", { set_alpha_to_one: one }), 10);
    expect(last(false).timesteps[9]).toBe(1); // prev = 1 - 100 < 0
    expectClose(last(false).step(E, 9, X), ddimReference(X, E, ac[1], ac[0], "epsilon"), 1e-5);
    expectClose(last(true).step(E, 9, X), ddimReference(X, E, ac[1], 1, "epsilon"), 1e-5);
  });

  it("converts v-prediction (x0 = sqrt(a) x - sqrt(1-a) v)", () => {
    const s = createScheduler("ddim", sd("ddim", { prediction_type: "v_prediction" }), 10);
    const ac = alphasCumprod(sd("ddim"));
    expectClose(s.step(E, 4, X), ddimReference(X, E, ac[501], ac[401], "v_prediction"), 1e-5);
  });

  it("clips the predicted x0 to clip_sample_range, without re-deriving eps", () => {
    const ac = alphasCumprod(sd("ddim"));
    // At t = 101, x0 = (x - sqrt(b) eps)/sqrt(a) is about 1.1 x: elements beyond 1 get clipped.
    const clipped = createScheduler("ddim", sd("ddim", { clip_sample: true }), 10).step(E, 8, X);
    const free = createScheduler("ddim", sd("ddim"), 10).step(E, 8, X);
    expectClose(clipped, ddimReference(X, E, ac[101], ac[1], "epsilon", 1), 1e-5);
    expect(Math.abs(clipped[3] - free[3])).toBeGreaterThan(0.1);
    const wider = createScheduler("ddim", sd("ddim", { clip_sample: true, clip_sample_range: 1.5 }), 10).step(E, 8, X);
    expectClose(wider, ddimReference(X, E, ac[101], ac[1], "epsilon", 1.5), 1e-5);
    // "sample" prediction: x0 is the output itself (clipped), eps derived from it.
    const out = Float32Array.from([1.4, -0.3, 0.2, -2]);
    const sample = createScheduler("ddim", sd("ddim", { prediction_type: "sample", clip_sample: true }), 10).step(out, 2, X);
    expectClose(sample, ddimReference(X, out, ac[701], ac[601], "sample", 1), 1e-5);
  });

  it("steps back by N // steps for every spacing, as diffusers does (linspace 999 -> 899, not 888)", () => {
    const cfg = sd("ddim", { timestep_spacing: "linspace" });
    const s = createScheduler("ddim", cfg, 10);
    const ac = alphasCumprod(cfg);
    expect(s.timesteps.slice(0, 2)).toEqual([999, 888]);
    expectClose(s.step(E, 0, X), ddimReference(X, E, ac[999], ac[899], "epsilon"), 1e-5);
  });
});

describe("Euler step", () => {
  const sigmaOf = (ac: Float32Array, t: number) => Math.sqrt((1 - ac[t]) / ac[t]);

  it("scales the input by 1/sqrt(sigma^2 + 1) and steps x + (x - x0)/sigma (sigma_next - sigma)", () => {
    const cfg = sd("euler");
    const ac = alphasCumprod(cfg);
    const s = createScheduler("euler", cfg, 10);
    expect(s.timesteps[2]).toBe(777);
    const sigma = sigmaOf(ac, 777);
    const next = sigmaOf(ac, 666);
    const before = Float32Array.from(X);
    expectClose(s.scaleModelInput(X, 2), Array.from(X, (v) => v / Math.sqrt(sigma * sigma + 1)), 1e-6);
    expect(X).toEqual(before);
    // epsilon: x0 = x - sigma eps.
    const expected = Array.from(X, (x, j) => x + ((x - (x - sigma * E[j])) / sigma) * (next - sigma));
    expectClose(s.step(E, 2, X), expected, 1e-5);
  });

  it("ends at sigma 0, so the last step returns x0 itself", () => {
    const cfg = sd("euler");
    const ac = alphasCumprod(cfg);
    const s = createScheduler("euler", cfg, 10);
    const sigma = sigmaOf(ac, 0);
    expectClose(s.step(E, 9, X), Array.from(X, (x, j) => x - sigma * E[j]), 1e-6);
    // final_sigmas_type "sigma_min" stops at the smallest training sigma instead.
    const sigmas = eulerSigmas(sd("euler", { final_sigmas_type: "sigma_min" }), s.timesteps);
    expect(sigmas[10]).toBeCloseTo(sigmaOf(ac, 0), 6);
  });

  it("converts v-prediction (x0 = -sigma/sqrt(sigma^2+1) v + x/(sigma^2+1))", () => {
    const cfg = sd("euler", { prediction_type: "v_prediction" });
    const ac = alphasCumprod(cfg);
    const s = createScheduler("euler", cfg, 10);
    const sigma = sigmaOf(ac, 888);
    const next = sigmaOf(ac, 777);
    const expected = Array.from(X, (x, j) => {
      const x0 = (-sigma / Math.sqrt(sigma * sigma + 1)) * E[j] + x / (sigma * sigma + 1);
      return x + ((x - x0) / sigma) * (next - sigma);
    });
    expectClose(s.step(E, 1, X), expected, 1e-5);
  });

  it("interpolates sigma linearly at fractional timesteps (np.interp)", () => {
    const cfg = sd("euler");
    const ac = alphasCumprod(cfg);
    const sigmas = eulerSigmas(cfg, timestepsFor(cfg, 7)); // t = 999, 832.5, 666, ...
    expect(sigmas.length).toBe(8);
    expect(sigmas[1]).toBeCloseTo((sigmaOf(ac, 832) + sigmaOf(ac, 833)) / 2, 5);
    expect(sigmas[3]).toBeCloseTo((sigmaOf(ac, 499) + sigmaOf(ac, 500)) / 2, 5);
    expect(sigmas[7]).toBe(0);
  });
});

describe("PNDM (PLMS) steps", () => {
  // An independent straightforward PLMS in float64. The transfer is written in DDIM's form
  // sqrt(a') (x - sqrt(1-a) e)/sqrt(a) + sqrt(1-a') e, which equals Eq. 9 of the PNDM paper.
  function transfer(x: number[], e: number[], a: number, aPrev: number): number[] {
    return x.map((xi, j) => (Math.sqrt(aPrev) * (xi - Math.sqrt(1 - a) * e[j])) / Math.sqrt(a) + Math.sqrt(1 - aPrev) * e[j]);
  }
  const lin = (terms: Array<[number, number[]]>, div: number) => terms[0][1].map((_, j) => terms.reduce((s, [w, v]) => s + w * v[j], 0) / div);
  const outputs = [0, 1, 2, 3, 4].map((k) => Float32Array.from([0.4, 0.8, -1.1, -0.2], (v, j) => v * Math.cos(k + j) + 0.1 * k));

  it("averages the first two outputs, then runs Adams-Bashforth 2, 3 and 4 (SD1.5, 10 steps)", () => {
    const cfg = sd("pndm");
    const ac = alphasCumprod(cfg);
    const s = createScheduler("pndm", cfg, 10);
    expect(s.timesteps.slice(0, 5)).toEqual([901, 801, 801, 701, 601]);
    const [e0, e1, e2, e3, e4] = outputs.map((o) => Array.from(o));
    const x0 = Array.from(X);
    // Call 0: x1 = T(x0, 901 -> 801, e0). Call 1 (UNet at 801 on x1): restart from x0 with (e0 + e1)/2.
    const x1 = transfer(x0, e0, ac[901], ac[801]);
    const x1b = transfer(x0, lin([[1, e0], [1, e1]], 2), ac[901], ac[801]);
    // Calls 2-4: e1 is not kept (diffusers drops the averaging call's output); AB2, AB3, AB4 over e0, e2, e3, e4.
    const x2 = transfer(x1b, lin([[3, e2], [-1, e0]], 2), ac[801], ac[701]);
    const x3 = transfer(x2, lin([[23, e3], [-16, e2], [5, e0]], 12), ac[701], ac[601]);
    const x4 = transfer(x3, lin([[55, e4], [-59, e3], [37, e2], [-9, e0]], 24), ac[601], ac[501]);

    let latents: Float32Array = Float32Array.from(X);
    const got: Float32Array[] = [];
    for (let i = 0; i < 5; i++) {
      expect(s.scaleModelInput(latents, i)).toBe(latents);
      latents = s.step(outputs[i], i, latents);
      got.push(latents);
    }
    [x1, x1b, x2, x3, x4].forEach((want, i) => expectClose(got[i], want, 2e-5));
  });

  it("ends at final_alpha_cumprod and converts v-prediction before the transfer", () => {
    const ac = alphasCumprod(sd("pndm"));
    // One step: the list is [1], prev = 1 - 1000 < 0 -> alphas_cumprod[0] (set_alpha_to_one false).
    const one = createScheduler("pndm", sd("pndm"), 1);
    expect(one.timesteps).toEqual([1]);
    expectClose(one.step(E, 0, X), transfer(Array.from(X), Array.from(E), ac[1], ac[0]), 1e-5);
    // v-prediction: e = sqrt(a) v + sqrt(1-a) x at the step's own timestep.
    const v = createScheduler("pndm", sd("pndm", { prediction_type: "v_prediction" }), 10);
    const eps = Array.from(X, (x, j) => Math.sqrt(ac[901]) * E[j] + Math.sqrt(1 - ac[901]) * x);
    expectClose(v.step(E, 0, X), transfer(Array.from(X), eps, ac[901], ac[801]), 1e-5);
  });

  it("refuses calls out of order (it keeps a history)", () => {
    const s = createScheduler("pndm", sd("pndm"), 10);
    s.step(E, 0, X);
    const e = errorOf(() => s.step(E, 2, X));
    expect(e.code).toBe("E_USAGE");
    expect(e.message).toContain("in order");
  });
});

describe("parseSchedulerConfig", () => {
  it("fills missing keys from the built class's defaults (from_config semantics)", () => {
    // SD1.5's PNDM file read for DDIM: its clip_sample false and set_alpha_to_one false, DDIM's leading spacing.
    const ddim = sd("ddim");
    expect([ddim.clipSample, ddim.setAlphaToOne, ddim.timestepSpacing, ddim.stepsOffset, ddim.betaSchedule, ddim.predictionType]).toEqual([false, false, "leading", 1, "scaled_linear", "epsilon"]);
    expect(sd("euler").timestepSpacing).toBe("linspace");
    expect(sd("pndm").timestepSpacing).toBe("leading");
    // An empty config: the class defaults themselves.
    const empty = parseSchedulerConfig({}, "empty.json", "ddim");
    expect([empty.numTrainTimesteps, empty.betaStart, empty.betaEnd, empty.betaSchedule, empty.trainedBetas, empty.clipSample, empty.clipSampleRange, empty.setAlphaToOne, empty.stepsOffset]).toEqual([1000, 0.0001, 0.02, "linear", null, true, 1, true, 0]);
    expect(parseSchedulerConfig({ skip_prk_steps: true }, "p.json", "pndm").setAlphaToOne).toBe(false);
    // The kind defaults to the file's class; Euler's old "original_sample" is "sample".
    expect(parseSchedulerConfig(SD15, "sd15.json").kind).toBe("pndm");
    expect(parseSchedulerConfig({ prediction_type: "original_sample" }, "e.json", "euler").predictionType).toBe("sample");
  });

  it("maps class names to the built-in schedulers", () => {
    expect(SCHEDULERS).toEqual(["ddim", "euler", "pndm"]);
    expect(["DDIMScheduler", "EulerDiscreteScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "toString", undefined].map(schedulerNameOfClass)).toEqual(["ddim", "euler", "pndm", undefined, undefined, undefined]);
  });

  it("rejects unknown values and wrong types with E_SCHEDULER naming the file and the key", () => {
    const cases: Array<[Record<string, unknown>, SchedulerName, string]> = [
      [{ beta_schedule: "cosine" }, "ddim", "beta_schedule"],
      [{ prediction_type: "x0" }, "ddim", "prediction_type"],
      [{ prediction_type: "sample" }, "pndm", "prediction_type"],
      [{ timestep_spacing: "even" }, "euler", "timestep_spacing"],
      [{ num_train_timesteps: "1000" }, "ddim", "num_train_timesteps"],
      [{ num_train_timesteps: 0 }, "ddim", "num_train_timesteps"],
      [{ steps_offset: -1 }, "ddim", "steps_offset"],
      [{ clip_sample: "no" }, "ddim", "clip_sample"],
      [{ beta_start: null, beta_end: Number.NaN }, "ddim", "beta_end"],
      [{ trained_betas: [0.1, 0.2] }, "ddim", "trained_betas"],
    ];
    for (const [over, kind, key] of cases) {
      const e = errorOf(() => parseSchedulerConfig({ ...SD15, ...over }, "/models/sd/scheduler/scheduler_config.json", kind));
      expect(e.code, key).toBe("E_SCHEDULER");
      expect(e.message, key).toContain("/models/sd/scheduler/scheduler_config.json");
      expect(e.message, key).toContain(key);
    }
  });

  it("rejects a config that is not a JSON object, or a class that is not built in", () => {
    for (const bad of [null, [], "PNDMScheduler", 3]) {
      const e = errorOf(() => parseSchedulerConfig(bad, "x/scheduler_config.json", "ddim"));
      expect(e.code).toBe("E_SCHEDULER");
      expect(e.message).toContain("x/scheduler_config.json");
      expect(e.message).toContain("JSON object");
    }
    const e = errorOf(() => parseSchedulerConfig({ _class_name: "LMSDiscreteScheduler" }, "lms.json"));
    expect(e.code).toBe("E_SCHEDULER");
    expect(e.message).toContain("LMSDiscreteScheduler");
  });

  it("refuses features that are not built in instead of ignoring them", () => {
    const cases: Array<[Record<string, unknown>, SchedulerName, string]> = [
      [{ skip_prk_steps: false }, "pndm", "skip_prk_steps"],
      [{ thresholding: true }, "ddim", "thresholding"],
      [{ rescale_betas_zero_snr: true }, "euler", "rescale_betas_zero_snr"],
      [{ use_karras_sigmas: true }, "euler", "use_karras_sigmas"],
      [{ interpolation_type: "log_linear" }, "euler", "interpolation_type"],
      [{ timestep_type: "continuous", prediction_type: "v_prediction" }, "euler", "timestep_type"],
    ];
    for (const [over, kind, key] of cases) {
      const e = errorOf(() => parseSchedulerConfig({ ...SD15, ...over }, "sd15.json", kind));
      expect(e.code, key).toBe("E_SCHEDULER");
      expect(e.message, key).toContain(key);
      expect(e.message, key).toContain("--scheduler");
    }
    // A PNDM config without skip_prk_steps defaults to the Runge-Kutta form: refused for PNDM, fine for the others.
    expect(errorOf(() => parseSchedulerConfig({}, "p.json", "pndm")).code).toBe("E_SCHEDULER");
    expect(parseSchedulerConfig({ ...SD15, use_karras_sigmas: true }, "sd15.json", "ddim").kind).toBe("ddim");
  });

  it("refuses to build a scheduler from a config resolved for another class", () => {
    const e = errorOf(() => createScheduler("euler", sd("ddim"), 10));
    expect(e.code).toBe("E_USAGE");
    expect(e.message).toContain('parseSchedulerConfig(json, file, "euler")');
  });
});
