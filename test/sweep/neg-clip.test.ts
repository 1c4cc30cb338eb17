/**
 * Negative-prompt adherence (issue 19): a sweep with `clip` gives each cell with a negative prompt
 * `neg_clip` (its images against the negative prompt, clip_score's definition) and, against the
 * cell without a negative prompt at the same s, `neg_clip_delta`. Checked against `diffeval
 * clipscore` run on the same images, with the analytic generator and the clip-tiny fixture.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseRule } from "../../src/gate/rules.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { cellsByCounterpart, NO_COUNTERPART } from "../../src/sweep/negative-clip.js";
import type { PlannedCell } from "../../src/sweep/plan.js";
import { fixture } from "../helpers/fixtures.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { gate, writeInput } from "../gate/build-results.js";

const NEGATIVE = "blue square";
let weights: string;
let tmp: string;
let clipDir: string;
let full: SweepOutcome;
let alone: SweepOutcome;

interface JsonCell {
  params: Record<string, unknown>;
  metrics: Record<string, unknown>;
  skipped?: Record<string, string>;
  fake: string;
}

function spec(negatives: string[], scales: number[], output: string) {
  return parseSweepSpec(
    {
      name: output,
      generator: { type: "analytic", steps: 4 },
      prompts: ["red circle", NEGATIVE],
      negative_prompts: negatives,
      guidance_scales: scales,
      seeds_per_prompt: 2,
      size: 32,
      steps: 4,
      reference: { source: "analytic:real", count: 4 },
      metrics: ["fid"],
      clip: { weights: clipDir },
      output,
    },
    { baseDir: tmp },
  );
}

const sweep = (negatives: string[], scales: number[], output: string) => runSweep({ spec: spec(negatives, scales, output), weights, device: "cpu", threads: 0 });

function cellsOf(outcome: SweepOutcome): JsonCell[] {
  return JSON.parse(readFileSync(outcome.report!.json, "utf8")).cells;
}

function cellAt(outcome: SweepOutcome, s: number, negative: string): JsonCell {
  return cellsOf(outcome).find((c) => c.params.cfg_scale === s && c.params.negative_prompt === negative)!;
}

/** `diffeval clipscore` (in-process) over a cell's images, each paired with `prompt`. */
async function clipscoreOf(outcome: SweepOutcome, cell: JsonCell, prompt: string, name: string): Promise<number> {
  const folder = path.join(path.dirname(outcome.report!.json), "..", cell.fake); // <output>/report/results.json
  const images = readdirSync(folder).filter((f) => f.endsWith(".png"));
  expect(images.length).toBe(4);
  const csv = path.join(tmp, `${name}.csv`);
  writeFileSync(csv, ["image,prompt", ...images.map((f) => `${path.join(folder, f)},${prompt}`)].join("\n") + "\n");
  const r = await runCli(["clipscore", "--pairs", csv, "--weights", clipDir, "--device", "cpu", "--json"]);
  expect(r.stderr.replace(/^.*(convert|cach).*\n/gim, "")).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout).clip_score;
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-neg-clip-"));
  clipDir = fixture("encoders", "clip-tiny");
  full = await sweep(["", NEGATIVE], [1, 3], "full");
  alone = await sweep([NEGATIVE], [3], "alone");
}, 180_000);

describe("neg_clip and neg_clip_delta in a sweep with clip", () => {
  it("neg_clip of a cell equals diffeval clipscore over its images paired with the negative prompt (1e-9)", async () => {
    expect(full).toMatchObject({ generated: 16, failed: [], aborted: false });
    for (const s of [1, 3]) {
      const cell = cellAt(full, s, NEGATIVE);
      const want = await clipscoreOf(full, cell, NEGATIVE, `neg-s${s}`);
      console.log(`s=${s}: neg_clip ${cell.metrics.neg_clip} vs clipscore ${want}`);
      expect(Math.abs((cell.metrics.neg_clip as number) - want)).toBeLessThan(1e-9);
    }
  });

  it("neg_clip_delta is neg_clip minus the no-negative cell's score against the same text (1e-12)", async () => {
    for (const s of [1, 3]) {
      const cell = cellAt(full, s, NEGATIVE);
      const without = await clipscoreOf(full, cellAt(full, s, ""), NEGATIVE, `none-s${s}`);
      const delta = cell.metrics.neg_clip_delta as number;
      console.log(`s=${s}: neg_clip_delta ${delta} = ${cell.metrics.neg_clip} - ${without}`);
      expect(Math.abs(delta - ((cell.metrics.neg_clip as number) - without))).toBeLessThan(1e-12);
      expect(cell.skipped?.neg_clip_delta).toBeUndefined();
    }
  });

  it("cells without a negative prompt have neither", () => {
    for (const s of [1, 3]) {
      const cell = cellAt(full, s, "");
      expect(Number.isFinite(cell.metrics.clip_score)).toBe(true);
      expect(cell.metrics).not.toHaveProperty("neg_clip");
      expect(cell.metrics).not.toHaveProperty("neg_clip_delta");
      expect(cell.skipped?.neg_clip_delta).toBeUndefined();
    }
  });

  it("without a no-negative cell, neg_clip_delta is absent and skipped says why", () => {
    const [cell] = cellsOf(alone);
    expect(Number.isFinite(cell.metrics.neg_clip)).toBe(true);
    expect(cell.metrics).not.toHaveProperty("neg_clip_delta");
    expect(cell.skipped?.neg_clip_delta).toBe(NO_COUNTERPART);
    // the same images as the full sweep's cell (same request): the same neg_clip
    expect(cell.metrics.neg_clip).toBe(cellAt(full, 3, NEGATIVE).metrics.neg_clip);
  });

  it("are columns of results.csv, empty where absent", () => {
    const [header, ...rows] = readFileSync(full.report!.csv, "utf8").trim().split("\n").map((l) => l.split(","));
    const [neg, delta, s, negative] = ["neg_clip", "neg_clip_delta", "cfg_scale", "negative_prompt"].map((k) => header.indexOf(k));
    expect(neg).toBeGreaterThan(0);
    expect(delta).toBeGreaterThan(0);
    for (const row of rows) {
      const cell = cellAt(full, Number(row[s]), row[negative]);
      expect(row[neg]).toBe(cell.metrics.neg_clip === undefined ? "" : String(cell.metrics.neg_clip));
      expect(row[delta]).toBe(cell.metrics.neg_clip_delta === undefined ? "" : String(cell.metrics.neg_clip_delta));
    }
    expect(rows.filter((r) => r[delta] !== "")).toHaveLength(2);
    // summary.md's table carries them too.
    expect(readFileSync(full.report!.markdown, "utf8")).toMatch(/\| neg CLIP \| neg CLIP delta \|/);
  });

  it("are plotted against s, one line per negative prompt", () => {
    const html = readFileSync(full.report!.html, "utf8");
    const figure = html.match(/<figure class="plot" id="plot-negclip">([\s\S]*?)<\/figure>/);
    expect(figure).not.toBeNull();
    const svg = figure![1];
    expect(svg).toContain("CLIP score against the negative prompt");
    expect(svg).toContain("change from no negative prompt");
    // two cells with a negative prompt, in two panels
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(4);
    expect(svg).toContain("negative: &quot;blue square&quot;");
    expect(svg).not.toContain("negative: (none)");
  });
});

describe("the counterpart of a cell", () => {
  const cell = (index: number, cfgScale: number, negativePrompt: string, axes: Record<string, string | number>): PlannedCell =>
    ({ index, slug: `c${index}`, params: {}, cfgScale, negativePrompt, axes }) as PlannedCell;

  it("is the cell without a negative prompt at the same s and every other axis", () => {
    const cells = [
      cell(0, 3, "x", { sampler: "euler", steps: 4 }),
      cell(1, 3, "", { sampler: "euler", steps: 8 }),
      cell(2, 3, "", { sampler: "euler", steps: 4 }),
      cell(3, 5, "x", { sampler: "euler", steps: 4 }),
      cell(4, 3, "y", { steps: 4, sampler: "euler" }),
    ];
    expect(cellsByCounterpart(cells).map((g) => g.map((c) => c.index))).toEqual([[2, 0, 4], [1], [3]]);
  });
});

describe("the gate on neg_clip_delta", () => {
  it("reads direction lower: a '+' allowance; the '-' spelling is refused", () => {
    expect(parseRule("neg_clip_delta:+0.5")).toMatchObject({ metric: "neg_clip_delta", direction: "up", amount: 0.5 });
    expect(parseRule("neg_clip:+1")).toMatchObject({ direction: "up" });
    expect(() => parseRule("neg_clip_delta:-0.5")).toThrow(/neg_clip_delta/);
  });

  it("passes within the allowance and fails on a regression", async () => {
    const results = JSON.parse(readFileSync(full.report!.json, "utf8"));
    // cells without a negative prompt have no neg_clip_delta (the gate counts a metric absent from both files as missing)
    const withDelta = { ...results, cells: results.cells.filter((c: JsonCell) => c.metrics.neg_clip_delta !== undefined) };
    const shifted = (by: number) => ({
      ...withDelta,
      cells: withDelta.cells.map((c: JsonCell) => ({ ...c, metrics: { ...c.metrics, neg_clip_delta: (c.metrics.neg_clip_delta as number) + by } })),
    });
    const baseline = writeInput(tmp, "baseline.json", withDelta);
    const at = (by: number) => gate({ current: writeInput(tmp, `current${by}.json`, shifted(by)), baseline, rules: ["neg_clip_delta:+0.5"] });
    expect((await at(0)).code).toBe(0);
    expect((await at(0.3)).code).toBe(0);
    expect((await at(-2)).code).toBe(0);
    const worse = await at(1);
    expect(worse.code).toBe(1);
    expect(worse.stdout).toMatch(/neg_clip_delta/);
    // over the whole sweep, a selector picks the cells that have it
    const all = await gate({ current: full.report!.json, baseline: full.report!.json, rules: [`neg_clip_delta[negative_prompt="${NEGATIVE}"]:+0.5`] });
    expect(all.code).toBe(0);
  });
});
