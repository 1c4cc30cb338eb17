import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { beforeAll, describe, expect, it } from "vitest";
import { clipscoreCommand } from "../../src/cli/clipscore.js";
import { clipOnnxCachePath } from "../../src/features/clip-model.js";
import { parseCsv, readPairsCsv } from "../../src/io/csv.js";
import { parseClipConfig } from "../../src/models/clip-onnx.js";
import { runClipScore } from "../../src/pipeline/clip-score.js";
import { isDiffevalError } from "../../src/errors.js";
import { loadNpy } from "../helpers/arrays.js";
import { fixture } from "../helpers/fixtures.js";

const clipDir = (): string => fixture("encoders", "clip-tiny");

/** RFC 4180 field: always quoted, quotes doubled. */
const q = (s: string): string => `"${s.replaceAll('"', '""')}"`;

/** 100 x mean cosine of reference image rows 0..7 with the 8 reference text embeddings, clamped at 0. */
function referenceScore(): { score: number; perPair: number[] } {
  const img = loadNpy(fixture("encoders", "reference", "clip_image_embeds_real.npy"));
  const txt = loadNpy(fixture("encoders", "reference", "clip_text_embeds.npy"));
  const d = img.shape[1];
  const perPair: number[] = [];
  for (let i = 0; i < 8; i++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let k = 0; k < d; k++) {
      const a = img.data[i * d + k];
      const b = txt.data[i * d + k];
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
    perPair.push((100 * ab) / Math.sqrt(aa * bb));
  }
  return { score: Math.max(0, perPair.reduce((s, v) => s + v, 0) / 8), perPair };
}

async function runCommand(args: string[]): Promise<{ code: number; stdout: string; error?: unknown }> {
  const program = new Command("diffeval").exitOverride();
  program.addCommand(clipscoreCommand().exitOverride());
  const out: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: "user" });
    return { code: 0, stdout: out.join("") };
  } catch (error) {
    return { code: 1, stdout: out.join(""), error };
  } finally {
    process.stdout.write = orig;
  }
}

describe("parseCsv (RFC 4180)", () => {
  it("splits quoted fields with commas, doubled quotes, line breaks, CRLF and a BOM", () => {
    const text = '\ufeffimage,prompt\r\na.png,"a cat, on a mat"\r\n"b ""x"".png","say ""hi""\nthere"\nc.png,\n';
    expect(parseCsv(text)).toEqual([
      ["image", "prompt"],
      ["a.png", "a cat, on a mat"],
      ['b "x".png', 'say "hi"\nthere'],
      ["c.png", ""],
    ]);
    expect(parseCsv("a,b")).toEqual([["a", "b"]]);
  });

  it("refuses malformed quoting", () => {
    for (const bad of ['image,prompt\na.png,"open', 'image,prompt\na.png,"x"y', 'image,prompt\na"b.png,x']) {
      let code: string | undefined;
      try {
        parseCsv(bad);
      } catch (e) {
        code = isDiffevalError(e) ? e.code : undefined;
      }
      expect(code).toBe("E_PAIRS_FORMAT");
    }
  });
});

describe("diffeval clipscore (clip-tiny fixture)", () => {
  let tmp: string;
  let csv: string;
  let prompts: string[];
  let images: string[];

  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-clipscore-"));
    process.env.DIFFEVAL_CACHE = path.join(tmp, "cache");
    const tokens = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_tokens.json"), "utf8")) as { prompt: string }[];
    prompts = tokens.slice(0, 8).map((t) => t.prompt);
    const expected = JSON.parse(readFileSync(fixture("encoders", "reference", "clip_expected.json"), "utf8")) as { prompts: string[]; real_files: string[] };
    expect(prompts).toEqual(expected.prompts);
    images = expected.real_files.slice(0, 8);
    // Image paths relative to the CSV's folder; prompts with commas, tabs and a newline, quoted.
    const rel = (f: string): string => path.relative(tmp, fixture("images", "real", f));
    const rows = images.map((f, i) => `${q(rel(f))},${q(prompts[i])}`);
    csv = path.join(tmp, "pairs.csv");
    writeFileSync(csv, `image,prompt\r\n${rows.join("\r\n")}\r\n`);
  });

  it("reads the pairs back", async () => {
    const pairs = await readPairsCsv(csv);
    expect(pairs.map((p) => p.prompt)).toEqual(prompts);
    expect(pairs.map((p) => path.basename(p.imagePath))).toEqual(images);
  });

  it("--json: the score equals 100 x mean cosine of the reference embeddings (OpenAI ids)", async () => {
    const r = await runCommand(["clipscore", "--pairs", csv, "--weights", clipDir(), "--device", "cpu", "--batch-size", "3", "--json"]);
    expect(r.error).toBeUndefined();
    const j = JSON.parse(r.stdout) as { clip_score: number; n: number; weights_sha256: string; per_image: { image: string; prompt: string; score: number }[] };
    const want = referenceScore();
    const worst = Math.max(...j.per_image.map((p, i) => Math.abs(p.score - want.perPair[i])));
    console.log(`clipscore CLI: ${j.clip_score} vs ${want.score}, |diff| ${Math.abs(j.clip_score - want.score).toExponential(2)}, per-pair max |diff| ${worst.toExponential(2)}`);
    expect(Math.abs(j.clip_score - want.score)).toBeLessThan(1e-4);
    expect(worst).toBeLessThan(1e-4);
    // On these 8 pairs the mean cosine is negative, so the clamp gives 0: check the mean before it too.
    const meanGot = j.per_image.reduce((s, p) => s + p.score, 0) / 8;
    const meanWant = want.perPair.reduce((s, v) => s + v, 0) / 8;
    console.log(`clipscore CLI unclamped mean: ${meanGot} vs ${meanWant}`);
    expect(Math.abs(meanGot - meanWant)).toBeLessThan(1e-4);
    expect(j.clip_score).toBe(Math.max(0, meanGot));
    expect(j.n).toBe(8);
    expect(j.per_image.map((p) => p.prompt)).toEqual(prompts);
    expect(j.per_image[0].image).toBe(path.relative(tmp, fixture("images", "real", images[0])));
    const sha = (await import("node:crypto")).createHash("sha256").update(readFileSync(path.join(clipDir(), "model.safetensors"))).digest("hex");
    expect(j.weights_sha256).toBe(sha);
    // Both towers cached under <cache>/onnx, keyed by the weights hash (and the config).
    const config = parseClipConfig(JSON.parse(readFileSync(path.join(clipDir(), "config.json"), "utf8")));
    for (const tower of ["vision", "text"] as const) {
      expect(readdirSync(path.join(tmp, "cache", "onnx"))).toContain(path.basename(clipOnnxCachePath(sha, tower, config)));
    }
  });

  it("human output, reusing the cached towers", async () => {
    const r = await runCommand(["clipscore", "--pairs", csv, "--weights", clipDir(), "--device", "cpu"]);
    expect(r.error).toBeUndefined();
    const m = /^CLIP score {2}(-?\d+\.\d{4})\n/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Math.abs(Number(m![1]) - referenceScore().score)).toBeLessThan(1e-4);
    expect(r.stdout).toContain("tokenizer openai");
  });

  it("library call with a repeated prompt encodes it once and scores each pair", async () => {
    const two = path.join(tmp, "two.csv");
    const img = path.relative(tmp, fixture("images", "real", images[0]));
    writeFileSync(two, `prompt,image\n${q(prompts[0])},${q(img)}\n${q(prompts[0])},${q(img)}\n`);
    const r = await runClipScore({ pairs: two, weights: clipDir(), device: "cpu" });
    expect(r.n).toBe(2);
    expect(Math.abs(r.per_image[0].score - referenceScore().perPair[0])).toBeLessThan(1e-4);
    expect(Math.abs(r.per_image[1].score - r.per_image[0].score)).toBeLessThan(1e-5);
  });

  it("refuses a CSV without the columns and a missing image", async () => {
    const bad = path.join(tmp, "bad.csv");
    writeFileSync(bad, "file,text\na.png,x\n");
    await expect(runClipScore({ pairs: bad, weights: clipDir(), device: "cpu" })).rejects.toMatchObject({ code: "E_PAIRS_FORMAT" });
    const missing = path.join(tmp, "missing.csv");
    writeFileSync(missing, "image,prompt\nnope.png,x\n");
    await expect(runClipScore({ pairs: missing, weights: clipDir(), device: "cpu" })).rejects.toMatchObject({ code: "E_IMAGE_DECODE" });
  });
});
