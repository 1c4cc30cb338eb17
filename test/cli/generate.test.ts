/**
 * `diffeval generate` on the sd-tiny fixture export: the reference images as .npy and .png,
 * explicit latents, several seeds in one batch (--seeds), progress per step on stderr, and clear
 * errors for bad arguments.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { runCli } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";

const SD = fixture("sd", "sd-tiny");
const tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-generate-"));
const ref = (name: string) => loadNpy(fixture("sd", "reference", `sd_image_${name}.npy`)).data as Float32Array;

describe("diffeval generate", () => {
  it("writes diffusers' float image as .npy (DDIM, s = 7.5, a negative prompt)", async () => {
    const out = path.join(tmp, "ddim.npy");
    const r = await runCli([
      "generate", "--model", SD, "--prompt", "a red circle on a blue background", "--negative", "blurry, low quality",
      "--cfg", "7.5", "--steps", "10", "--scheduler", "ddim", "--seed", "0", "--width", "128", "--height", "128", "--out", out, "--device", "cpu",
    ]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*ddim\.npy: 128x128, ddim 10 steps \(10 UNet calls\), s=7\.5, seed 0, cpu, [\d.]+ s$/m);
    expect(r.stderr).toMatch(/^step 10\/10$/m);
    expect(r.stderr).toMatch(/^denoising 10 steps in \d+:\d\d /m);
    const image = loadNpy(out);
    expect(image.shape).toEqual([128, 128, 3]);
    expect(maxAbsDiff(image.data, ref("ddim_s7.5_neg"))).toBeLessThanOrEqual(1e-4);
  });

  it("writes an 8-bit PNG from given latents (PNDM: steps + 1 UNet calls), the size following from them", async () => {
    const out = path.join(tmp, "pndm.png");
    const r = await runCli([
      "generate", "--model", SD, "--prompt", "an astronaut riding a horse", "--negative", "", "--cfg", "5", "--steps", "10",
      "--scheduler", "pndm", "--latents", fixture("sd", "reference", "sd_latents_seed2.npy"), "--out", out, "--device", "cpu",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/128x128, pndm 10 steps \(11 UNet calls\), s=5, latents .*sd_latents_seed2\.npy/);
    const { data, info } = await sharp(readFileSync(out)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([128, 128, 3]);
    const expected = Array.from(ref("pndm_s5_empty_neg"), (v) => v * 255);
    expect(maxAbsDiff(data, expected)).toBeLessThanOrEqual(0.5 + 255e-4);
  });

  it("--seeds 0,1,2,3 writes one seeds x H x W x 3 .npy: the four single-seed runs' images, within 1e-5", async () => {
    const args = ["generate", "--model", SD, "--prompt", "a red circle on a blue background", "--negative", "blurry", "--cfg", "7.5", "--steps", "4", "--scheduler", "euler", "--width", "64", "--height", "64", "--device", "cpu"];
    const out = path.join(tmp, "batch.npy");
    const r = await runCli([...args, "--seeds", "0,1,2,3", "--out", out]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*batch\.npy: 4 images 64x64, euler 4 steps \(4 UNet calls of batch 8\), s=7\.5, seeds 0,1,2,3, cpu, [\d.]+ s$/m);
    expect(r.stderr).toMatch(/^step 4\/4$/m);
    const batch = loadNpy(out);
    expect(batch.shape).toEqual([4, 64, 64, 3]);
    const plane = 64 * 64 * 3;
    for (const seed of [0, 1, 2, 3]) {
      const single = path.join(tmp, `single-${seed}.npy`);
      expect((await runCli([...args, "--seed", String(seed), "--out", single])).code).toBe(0);
      expect(maxAbsDiff(batch.data.slice(seed * plane, (seed + 1) * plane), loadNpy(single).data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it("--seeds with a .png writes x-<seed>.png per seed, in the order given (s = 1: batch k)", async () => {
    const args = ["generate", "--model", SD, "--prompt", "an astronaut riding a horse", "--cfg", "1", "--steps", "2", "--scheduler", "ddim", "--width", "64", "--height", "64", "--device", "cpu"];
    const r = await runCli([...args, "--seeds", "7, 3", "--out", path.join(tmp, "pair.png")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*pair-7\.png, .*pair-3\.png: 2 images 64x64, ddim 2 steps \(2 UNet calls of batch 2\), s=1, seeds 7,3, cpu/m);
    for (const seed of [7, 3]) {
      const single = path.join(tmp, `pair-single-${seed}.png`);
      expect((await runCli([...args, "--seed", String(seed), "--out", single])).code).toBe(0);
      const batched = await sharp(readFileSync(path.join(tmp, `pair-${seed}.png`))).raw().toBuffer();
      expect(maxAbsDiff(batched, await sharp(readFileSync(single)).raw().toBuffer())).toBeLessThanOrEqual(1);
    }
  });

  it("refuses bad arguments with one clear line, exit 2", async () => {
    const base = ["generate", "--model", SD, "--prompt", "x", "--device", "cpu", "--steps", "2", "--width", "64", "--height", "64"];
    const cases: [string[], RegExp][] = [
      [["--out", path.join(tmp, "x.jpg")], /error\[E_USAGE\]: --out must end in \.png or \.npy/],
      [["--out", path.join(tmp, "x.png"), "--scheduler", "lms"], /error\[E_GENERATOR_REQUEST\]: .*--scheduler must be one of ddim, euler, pndm/],
      [["--out", path.join(tmp, "x.png"), "--cfg", "lots"], /error\[E_USAGE\]: --cfg must be a number/],
      [["--out", path.join(tmp, "x.png"), "--seed", "-1"], /error\[E_USAGE\]: --seed must be an integer/],
      [["--out", path.join(tmp, "x.png"), "--seeds", "1,x"], /error\[E_USAGE\]: --seeds: each seed must be an integer/],
      [["--out", path.join(tmp, "x.png"), "--seeds", "1,2,1"], /error\[E_USAGE\]: --seeds: seed 1 is given twice/],
      [["--out", path.join(tmp, "x.png"), "--seeds", "1,2", "--seed", "3"], /error\[E_USAGE\]: --seeds replaces --seed and --latents/],
      [["--out", path.join(tmp, "x.png"), "--width", "100"], /error\[E_GENERATOR_REQUEST\]: width must be a positive multiple of 8/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli([...base, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n").filter((l) => !l.startsWith("step"))).toHaveLength(1);
    }
    const missing = await runCli(["generate", "--model", path.join(tmp, "nothing"), "--prompt", "x", "--out", path.join(tmp, "y.png")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/error\[E_SD_EXPORT\]: .*nothing does not exist/);
  });
});
