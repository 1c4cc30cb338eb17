/**
 * Per-prompt breakdown: an analytic sweep (3 prompts x 4 seeds, s in {1, 9}, with the clip-tiny
 * fixture) gives every cell a `per_prompt` list in results.json and rows in per_prompt.csv: each
 * prompt's precision (its images' share inside the reference manifold: weighted by n, the
 * prompts give back the cell's precision), its diversity (the cell's `*_by_group` values for that
 * prompt), and its CLIP score (what `diffeval clipscore` gives for those images and that prompt).
 * The report lists the best-FID cell's prompts, lowest CLIP score first, with their images.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { selectRows } from "../../src/metrics/diversity.js";
import { kthNearestDistances } from "../../src/metrics/pairwise.js";
import { insideRealManifold, prdc } from "../../src/metrics/prdc.js";
import { runClipScore } from "../../src/pipeline/clip-score.js";
import { worstPrompts } from "../../src/report/worst-prompts.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { xorshift32 } from "../helpers/xorshift.js";

const PROMPTS = ["red circle", "blue square", "green triangle"];
let tmp: string;
let outcome: SweepOutcome;

interface PerPromptJson {
  prompt_index: number;
  prompt: string;
  n: number;
  precision: number;
  clip_score: number;
  mean_pairwise_distance: number;
  vendi: number;
}
interface CellJson {
  params: { cfg_scale: number };
  fake: string;
  metrics: Record<string, unknown>;
  per_prompt: PerPromptJson[];
}
let cells: CellJson[];

beforeAll(async () => {
  let weights: string;
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-per-prompt-"));
  const spec = parseSweepSpec(
    {
      name: "per-prompt",
      generator: { type: "analytic", steps: 6 },
      prompts: PROMPTS,
      guidance_scales: [1, 9],
      seeds_per_prompt: 4,
      size: 32,
      steps: 6,
      reference: { source: "analytic:real", count: 40, seed: 2 },
      metrics: ["fid", "pr", "pairwise", "vendi"],
      clip: { weights: fixture("encoders", "clip-tiny") },
      output: "out",
    },
    { baseDir: tmp },
  );
  outcome = await runSweep({ spec, weights, device: "cpu", threads: 0 });
  cells = JSON.parse(readFileSync(outcome.report!.json, "utf8")).cells;
}, 180_000);

describe("per-prompt breakdown", () => {
  it("lists every prompt of every cell with its image count", () => {
    expect(cells).toHaveLength(2);
    for (const c of cells) {
      expect(c.per_prompt.map((p) => [p.prompt_index, p.prompt, p.n])).toEqual(PROMPTS.map((p, i) => [i, p, 4]));
    }
  });

  it("gives each prompt's precision, which weighted by n is the cell's precision", () => {
    // s = 9 pushes some of a prompt's images out of the reference manifold: the prompts differ
    expect(cells.flatMap((c) => c.per_prompt).some((p) => p.precision < 1)).toBe(true);
    for (const c of cells) {
      for (const p of c.per_prompt) expect(p.precision * p.n).toBeCloseTo(Math.round(p.precision * p.n), 12);
      const weighted = c.per_prompt.reduce((s, p) => s + p.precision * p.n, 0) / c.per_prompt.reduce((s, p) => s + p.n, 0);
      expect(weighted).toBeCloseTo(c.metrics.precision as number, 12);
    }
  });

  it("gives each prompt the cell's per-prompt diversity", () => {
    for (const c of cells) {
      const pairwise = (c.metrics.mean_pairwise_distance_by_group as { perGroup: Record<string, number> }).perGroup;
      const vendi = (c.metrics.vendi_by_group as { perGroup: Record<string, number> }).perGroup;
      for (const p of c.per_prompt) {
        expect(p.mean_pairwise_distance).toBe(pairwise[String(p.prompt_index)]);
        expect(p.vendi).toBe(vendi[String(p.prompt_index)]);
      }
    }
  });

  it("gives each prompt the CLIP score `diffeval clipscore` gives its images", async () => {
    const manifest = readFileSync(path.join(tmp, "out", "manifest.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const cell = cells[1];
    for (const p of cell.per_prompt) {
      const images = manifest.filter((m) => m.params.cfg_scale === cell.params.cfg_scale && m.prompt_index === p.prompt_index);
      expect(images).toHaveLength(4);
      const csv = path.join(tmp, `pairs-${p.prompt_index}.csv`);
      writeFileSync(csv, `image,prompt\n${images.map((m) => `${path.join(tmp, "out", m.file)},${p.prompt}`).join("\n")}\n`);
      const r = await runClipScore({ pairs: csv, weights: fixture("encoders", "clip-tiny"), device: "cpu" });
      expect(Math.abs(p.clip_score - r.clip_score)).toBeLessThan(1e-9);
    }
  });

  it("writes per_prompt.csv: one row per cell and prompt, the values of results.json", () => {
    const [header, ...rows] = readFileSync(path.join(outcome.report!.dir, "per_prompt.csv"), "utf8").trim().split("\n").map((l) => l.split(","));
    expect(header).toEqual(["cell", "cfg_scale", "w", "negative_prompt", "prompt_index", "prompt", "n", "precision", "clip_score", "mean_pairwise_distance", "vendi"]);
    const fromJson = cells.flatMap((c) => c.per_prompt.map((p) => [c.params.cfg_scale, p.prompt_index, p.precision, p.clip_score, p.mean_pairwise_distance, p.vendi]));
    const at = (row: string[], name: string) => Number(row[header.indexOf(name)]);
    expect(rows.map((r) => ["cfg_scale", "prompt_index", "precision", "clip_score", "mean_pairwise_distance", "vendi"].map((h) => at(r, h)))).toEqual(fromJson);
  });

  it("lists the best-FID cell's prompts, lowest CLIP score first, with their images", () => {
    const best = cells.reduce((a, b) => ((b.metrics.fid as number) < (a.metrics.fid as number) ? b : a));
    const worst = worstPrompts(outcome.results!);
    expect(worst?.by).toBe("clip_score");
    const expected = [...best.per_prompt].sort((a, b) => a.clip_score - b.clip_score).map((p) => p.prompt_index);
    expect(worst!.prompts.map((p) => p.prompt_index)).toEqual(expected);
    const html = readFileSync(outcome.report!.html, "utf8");
    const section = html.slice(html.indexOf('<h2 id="worst-prompts">'));
    expect(section).toContain("Worst prompts of the best-FID cell");
    const headings = [...section.matchAll(/<section class="prompt"><h3>#(\d+) /g)].map((m) => Number(m[1]));
    expect(headings).toEqual(expected);
    // the first listed prompt's images are its own, from the best cell's folder
    const first = section.slice(0, section.indexOf("</section>"));
    const alts = [...first.matchAll(/alt="([^"]+)"/g)].map((m) => m[1]);
    expect(alts).toHaveLength(4);
    for (const alt of alts) expect(alt).toMatch(new RegExp(`^${best.fake.split("/").pop()}/${expected[0]}-`));
  });
});

describe("insideRealManifold", () => {
  it("flags the fakes whose mean is prdc's precision, for all fakes and for any subset of them", () => {
    const next = xorshift32(11);
    const rows = (n: number, shift: number) => ({ n, d: 6, data: Float32Array.from({ length: n * 6 }, () => shift + next() / 2 ** 32) });
    const real = rows(30, 0);
    const fake = rows(20, 0.35);
    const inside = insideRealManifold(real, fake, kthNearestDistances(real, 3));
    const mean = (idx: number[]) => idx.reduce((s, i) => s + inside[i], 0) / idx.length;
    const all = Array.from({ length: 20 }, (_, i) => i);
    expect(mean(all)).toBe(prdc(real, fake, { k: 3 }).precision);
    expect(mean(all)).toBeGreaterThan(0);
    expect(mean(all)).toBeLessThan(1);
    const odd = all.filter((i) => i % 2 === 1);
    expect(mean(odd)).toBe(prdc(real, selectRows(fake, odd), { k: 3 }).precision);
  });
});
