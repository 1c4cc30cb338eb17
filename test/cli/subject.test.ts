import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadNpy } from "../helpers/arrays.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { getMetric, whyNot } from "../../src/metrics/registry.js";
import { meanCrossCosine, meanPairedCosine } from "../../src/metrics/subject.js";

let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const clipDir = fixture("encoders", "clip-tiny");
const dinoDir = fixture("encoders", "dinov2-tiny");
const ref = (name: string) => loadNpy(fixture("encoders", "reference", name));
const clipExpected = () => JSON.parse(readFileSync(fixture("encoders", "reference", "clip_expected.json"), "utf8"));
const weights = ["--clip-weights", clipDir, "--dinov2-weights", dinoDir, "--device", "cpu", "--threads", "0"];

/** RFC 4180 field: always quoted, quotes doubled. */
const q = (s: string): string => `"${s.replaceAll('"', '""')}"`;

/** The fixture rows of a reference array as float64 (the computation the test does by hand). */
function rows(name: string): number[][] {
  const a = ref(name);
  const [n, d] = a.shape;
  return Array.from({ length: n }, (_, i) => Array.from(a.data.subarray(i * d, (i + 1) * d), Number));
}

function cosine(a: number[], b: number[]): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((v, k) => {
    ab += v * b[k];
    aa += v * v;
    bb += b[k] * b[k];
  });
  return ab / Math.sqrt(aa * bb);
}

/** Mean cosine over every (generated, reference) pair of fixture rows. */
function meanPairwise(generated: number[][], reference: number[][]): number {
  let sum = 0;
  for (const g of generated) for (const r of reference) sum += cosine(g, r);
  return sum / (generated.length * reference.length);
}

beforeAll(async () => {
  ({ tmp } = await setUpCliTest("diffeval-subject-"));
});

describe("subject metrics (pure)", () => {
  it("meanCrossCosine is 1 for parallel rows, -1 for opposite ones, and scale-free", () => {
    const a = { n: 2, d: 2, data: Float32Array.from([1, 0, 3, 0]) };
    const b = { n: 1, d: 2, data: Float32Array.from([-2, 0]) };
    expect(meanCrossCosine(a, a)).toBeCloseTo(1, 12);
    expect(meanCrossCosine(a, b)).toBeCloseTo(-1, 12);
    const c = { n: 2, d: 2, data: Float32Array.from([0, 5, 1, 1]) };
    expect(meanPairedCosine(a, c)).toBeCloseTo((0 + Math.SQRT1_2) / 2, 12);
  });
});

describe("diffeval subject", () => {
  it("clip_i and dinov2_i equal the mean pairwise cosine of the fixture's reference embeddings (fake x real)", async () => {
    const r = await runCli(["subject", "--reference", real, "--images", fake, "--json", ...weights]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const clipI = meanPairwise(rows("clip_image_embeds_fake.npy"), rows("clip_image_embeds_real.npy"));
    const dinoI = meanPairwise(rows("dinov2_feats_fake.npy"), rows("dinov2_feats_real.npy"));
    expect(Math.abs(out.clip_i - clipI)).toBeLessThan(1e-6);
    expect(Math.abs(out.dinov2_i - dinoI)).toBeLessThan(1e-6);
    expect(out).toMatchObject({ n_reference: 32, n_images: 32, clip: { protocol: "clip" }, dinov2: { protocol: "dinov2" } });
    expect(out.clip_t).toBeUndefined();
  });

  it("clip_t equals the mean cosine of each image's reference embedding and its prompt's (pairs CSV, and one prompt for all)", async () => {
    const { prompts, fake_files: files } = clipExpected() as { prompts: string[]; fake_files: string[] };
    const text = rows("clip_text_embeds.npy");
    const images = rows("clip_image_embeds_fake.npy");
    // Image i is paired with prompt i mod 8 (the 8 prompts the fixture has text embeddings of).
    const csv = path.join(tmp, "pairs.csv");
    writeFileSync(csv, ["image,prompt", ...files.map((f, i) => `${q(path.relative(tmp, path.join(fake, f)))},${q(prompts[i % 8])}`)].join("\n"));
    const r = await runCli(["subject", "--reference", real, "--images", fake, "--prompts", csv, "--json", ...weights]);
    expect(r.code, r.stderr).toBe(0);
    const want = images.reduce((s, img, i) => s + cosine(img, text[i % 8]), 0) / images.length;
    expect(Math.abs(JSON.parse(r.stdout).clip_t - want)).toBeLessThan(1e-6);

    const one = path.join(tmp, "prompt.txt");
    writeFileSync(one, `${prompts[1]}\n`);
    const r1 = await runCli(["subject", "--reference", real, "--images", fake, "--prompts", one, "--json", ...weights]);
    expect(r1.code, r1.stderr).toBe(0);
    const want1 = images.reduce((s, img) => s + cosine(img, text[1]), 0) / images.length;
    expect(Math.abs(JSON.parse(r1.stdout).clip_t - want1)).toBeLessThan(1e-6);
  });

  it("the registry's entries give the same numbers through `diffeval metrics`, and say why not in inception's space", async () => {
    const clip = await runCli(["metrics", "--real", real, "--fake", fake, "--encoder", "clip", "--weights", clipDir, "--metrics", "subject", "--json", "--device", "cpu", "--threads", "0"]);
    expect(clip.code, clip.stderr).toBe(0);
    const clipI = meanPairwise(rows("clip_image_embeds_fake.npy"), rows("clip_image_embeds_real.npy"));
    expect(Math.abs(JSON.parse(clip.stdout).clip_i - clipI)).toBeLessThan(1e-6);
    const dino = await runCli(["metrics", "--real", real, "--fake", fake, "--encoder", "dinov2", "--weights", dinoDir, "--metrics", "subject", "--json", "--device", "cpu", "--threads", "0"]);
    expect(dino.code, dino.stderr).toBe(0);
    const dinoI = meanPairwise(rows("dinov2_feats_fake.npy"), rows("dinov2_feats_real.npy"));
    expect(Math.abs(JSON.parse(dino.stdout).dinov2_i - dinoI)).toBeLessThan(1e-6);
    expect(JSON.parse(dino.stdout).clip_i).toBeUndefined();
    const ctx = { real: { spec: "r", gaussian: { n: 2, mu: new Float64Array(1), sigma: new Float64Array(1) } }, encoder: "inception", settings: {} };
    expect(whyNot(getMetric("subject"), { ...ctx, fake: ctx.real })).toBe("exists only for the clip and dinov2 encoders, not inception");
    expect(getMetric("subject").keys.map((k) => [k.key, k.better])).toEqual([["clip_i", "higher"], ["dinov2_i", "higher"]]);
    expect(getMetric("clipt").keys.map((k) => [k.key, k.better])).toEqual([["clip_t", "higher"]]);
  });

  it("a reference folder with no images is E_EMPTY_SOURCE naming it; a prompts file that is neither form is refused", async () => {
    const empty = path.join(tmp, "empty-subject");
    mkdirSync(empty, { recursive: true });
    writeFileSync(path.join(empty, "notes.txt"), "no images here");
    const r = await runCli(["subject", "--reference", empty, "--images", fake, ...weights]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error[E_EMPTY_SOURCE]");
    expect(r.stderr).toContain(empty);
    const two = path.join(tmp, "two-prompts.txt");
    writeFileSync(two, "a dog\na cat\n");
    const p = await runCli(["subject", "--reference", real, "--images", fake, "--prompts", two, ...weights]);
    expect(p.code).toBe(2);
    expect(p.stderr).toContain("error[E_PAIRS_FORMAT]");
    expect(p.stderr).toContain(two);
  });

  it("a generated image the pairs CSV names no prompt for is refused, naming the image", async () => {
    const csv = path.join(tmp, "short.csv");
    writeFileSync(csv, `image,prompt\n${q(path.join(fake, "fake_0000.jpg"))},a dog\n`);
    const r = await runCli(["subject", "--reference", real, "--images", fake, "--prompts", csv, ...weights]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_PAIRS_FORMAT\].*short\.csv.*fake_0001/);
  });

  it("missing weights are the weights errors of the encoders", async () => {
    const missing = path.join(tmp, "no-such-clip");
    const r = await runCli(["subject", "--reference", real, "--images", fake, "--clip-weights", missing, "--dinov2-weights", dinoDir, "--device", "cpu"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_WEIGHTS_MISSING\].*no-such-clip/);
  });
});
