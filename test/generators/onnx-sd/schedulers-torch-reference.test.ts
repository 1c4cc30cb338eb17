/**
 * Bit-exactness of the schedulers' float32 arithmetic against torch, recorded once.
 *
 * The numbers below were produced by a short script (torch 2.11.0 CPU, numpy 2.5.2, the versions
 * that made the sd/ fixtures; identical under ATen's AVX2 and AVX512 dispatch) that evaluates
 * diffusers' published scheduler expressions on torch float32 tensors: `torch.linspace`,
 * `torch.cumprod`, the DDIM/Euler/PLMS step expressions in Python's evaluation order, and numpy's
 * `interp`/`linspace`. Inputs: x_j = 1.7 sin(1.3 j) and model output k: 1.1 cos(0.7 j + k), j < 64,
 * rounded to float32. Each result is recorded as the float64 sum of its float32 entries, which moves
 * with any one-ulp change of any entry, so these tests pin the exact rounding, not just the formula.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { alphasCumprod, betas, createScheduler, eulerSigmas, parseSchedulerConfig, type SchedulerName } from "../../../src/generators/onnx-sd/schedulers/index.js";
import { fixture } from "../../helpers/fixtures.js";

const SD15: Record<string, unknown> = JSON.parse(readFileSync(fixture("sd", "sd-tiny", "scheduler", "scheduler_config.json"), "utf8"));
const sd = (kind: SchedulerName, over: Record<string, unknown> = {}) => parseSchedulerConfig({ ...SD15, ...over }, "sd15.json", kind);

const X = Float32Array.from({ length: 64 }, (_, j) => Math.sin(j * 1.3) * 1.7);
const output = (k: number) => Float32Array.from({ length: 64 }, (_, j) => Math.cos(j * 0.7 + k) * 1.1);
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

describe("agreement with torch float32, bit for bit", () => {
  it("alphas_cumprod of the scaled_linear (SD) and linear (DDPM default) schedules", () => {
    const scaled = alphasCumprod(sd("ddim"));
    expect(sum(scaled)).toBe(373.3764712619595);
    expect([scaled[0], scaled[500], scaled[999]]).toEqual([0.9991499781608582, 0.27633246779441833, 0.00466009508818388]);
    const linear = alphasCumprod(parseSchedulerConfig({}, "defaults.json", "ddim"));
    expect(sum(linear)).toBe(275.5131952870579);
    expect(linear[999]).toBe(0.00004035830352222547);
    expect(betas(sd("ddim")).length).toBe(1000);
  });

  it("DDIM steps: epsilon, both final alphas, v-prediction, clipped sample and epsilon", () => {
    const step = (over: Record<string, unknown>, t: number, out: Float32Array) => {
      const s = createScheduler("ddim", sd("ddim", over), 10);
      return sum(s.step(out, s.timesteps.indexOf(t), X));
    };
    expect(step({}, 901, output(0))).toBe(-0.4517853111028671);
    expect(step({}, 1, output(0))).toBe(0.19556484185159206);
    expect(step({ set_alpha_to_one: true }, 1, output(0))).toBe(0.15851366659626365);
    expect(step({ prediction_type: "v_prediction" }, 501, output(1))).toBe(0.11133213341236115);
    expect(step({ prediction_type: "sample", clip_sample: true }, 301, output(2).map((v) => v * 2))).toBe(-1.3938168734312057);
    expect(step({ clip_sample: true }, 101, output(3))).toBe(0.46536990627646446);
  });

  it("Euler sigmas (np.interp at float32 timesteps), init sigma, input scaling and step", () => {
    const cases: Array<[Record<string, unknown>, number, number, number, number]> = [
      [{}, 26.55253654718399, 14.614646911621094, 0.06837622058810666, 0.9899863600730896],
      [{ prediction_type: "v_prediction" }, 26.55253654718399, 14.614646911621094, 0.06837622058810666, 0.3792063593864441],
      [{ timestep_spacing: "leading" }, 14.647170301526785, 6.646312713623047, 0.09257599880220369, 0.6745457947254181],
    ];
    for (const [over, sigmaSum, init, scaledSum, stepSum] of cases) {
      const cfg = sd("euler", over);
      const s = createScheduler("euler", cfg, 7);
      expect(sum(eulerSigmas(cfg, s.timesteps))).toBe(sigmaSum);
      expect(s.initNoiseSigma).toBe(init);
      expect(sum(s.scaleModelInput(X, 2))).toBe(scaledSum);
      expect(sum(s.step(output(2), 2, X))).toBe(stepSum);
    }
  });

  it("PLMS over all 11 calls of 10 steps (epsilon) and the first 6 (v-prediction)", () => {
    const run = (over: Record<string, unknown>, calls: number) => {
      const s = createScheduler("pndm", sd("pndm", over), 10);
      let x: Float32Array = X;
      return Array.from({ length: calls }, (_, k) => sum((x = s.step(output(k + 10), k, x))));
    };
    expect(run({}, 11)).toEqual([
      0.9803258329629898, 0.6354327201843262, -0.16630423069000244, -0.3333747982978821, -0.2862889766693115, 0.01789519190788269, 0.15243521332740784, 0.012803718447685242,
      -0.26041025668382645, -0.48063379526138306, -0.47421205043792725,
    ]);
    expect(run({ prediction_type: "v_prediction" }, 6)).toEqual([0.2860477454960346, 0.24523232132196426, 0.030397683382034302, 0.001243889331817627, 0.061604008078575134, 0.25641079246997833]);
  });
});
