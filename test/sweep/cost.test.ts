/**
 * Cost per cell: an analytic sweep at s in {1, 3} records each image's model evaluations and
 * seconds in the manifest, and every cell gets `model_evals_per_image` (the sampler's own count:
 * one eps per sampling step at s = 1, where the unconditional pass is skipped, two otherwise) and
 * `seconds_per_image` (the mean of the manifest's seconds over the cell's images), as columns of
 * results.csv/json, in the "quality against cost" plot, and as gate rules. A generator that does
 * not count its passes leaves model_evals_per_image empty.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { samplingTimesteps } from "../../src/generators/analytic/index.js";
import { costPerImage } from "../../src/metrics/cost.js";
import { sweepPlots } from "../../src/report/sweep-plots.js";
import { readManifest, type ManifestDone } from "../../src/sweep/manifest.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { gate, tempDir, writeInput } from "../gate/build-results.js";
import { setUpCliTest } from "../helpers/cli.js";
import { createFakeGenerator } from "./fake-generator.js";

const STEPS = 6;
let weights: string;
let tmp: string;
let analytic: SweepOutcome;
let manifest: ManifestDone[];

function spec(generator: unknown, output: string) {
  return parseSweepSpec(
    {
      name: output,
      generator,
      prompts: ["red circle", "blue square"],
      guidance_scales: [1, 3],
      seeds_per_prompt: 2,
      size: 32,
      steps: STEPS,
      reference: { source: `${(generator as { type: string }).type}:real`, count: 8, seed: 1 },
      metrics: ["fid"],
      output,
    },
    { baseDir: tmp },
  );
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-cost-"));
  analytic = await runSweep({ spec: spec({ type: "analytic", steps: STEPS }, "analytic"), weights, device: "cpu", threads: 0 });
  const entries = await readManifest(path.join(tmp, "analytic"));
  manifest = [...entries.values()].filter((e): e is ManifestDone => e.status === "done");
}, 120_000);

describe("cost per cell", () => {
  it("counts the analytic sampler's evaluations: one per sampling step at s = 1, two per step with guidance", () => {
    const steps = samplingTimesteps(STEPS).length;
    expect(manifest).toHaveLength(8);
    for (const e of manifest) expect(e.model_evaluations, e.key).toBe(e.params.cfg_scale === 1 ? steps : 2 * steps);
    const cells = analytic.results!.cells;
    expect(cells.map((c) => c.params.cfg_scale)).toEqual([1, 3]);
    expect(cells.map((c) => c.metrics.model_evals_per_image)).toEqual([steps, 2 * steps]);
  });

  it("gives seconds_per_image as the mean of the manifest's seconds over the cell's images", () => {
    for (const c of analytic.results!.cells) {
      const seconds = manifest.filter((e) => e.cell === c.slug).map((e) => e.seconds);
      expect(seconds).toHaveLength(4);
      expect(c.metrics.seconds_per_image as number).toBeCloseTo(seconds.reduce((a, b) => a + b, 0) / seconds.length, 12);
      expect(c.metrics.seconds_per_image as number).toBeGreaterThan(0);
    }
  });

  it("writes both as columns of results.csv and metrics of results.json", () => {
    const json = JSON.parse(readFileSync(analytic.report!.json, "utf8"));
    const [header, ...rows] = readFileSync(analytic.report!.csv, "utf8").trim().split("\n").map((l) => l.split(","));
    const col = (name: string) => rows.map((r) => Number(r[header.indexOf(name)]));
    expect(col("model_evals_per_image")).toEqual(json.cells.map((c: { metrics: { model_evals_per_image: number } }) => c.metrics.model_evals_per_image));
    expect(col("seconds_per_image")).toEqual(json.cells.map((c: { metrics: { seconds_per_image: number } }) => c.metrics.seconds_per_image));
  });

  it("plots FID against seconds and against model evaluations per image", () => {
    const plot = sweepPlots(analytic.results!).find((p) => p.id === "plot-cost");
    const panels = (plot?.spec as { hconcat?: { layer: { encoding: { x: { field: string } } }[] }[] } | undefined)?.hconcat;
    expect(panels?.map((p) => p.layer[0].encoding.x.field)).toEqual(["seconds_per_image", "model_evals_per_image"]);
    expect(readFileSync(analytic.report!.html, "utf8")).toContain("Quality against cost");
  });

  it("lets the gate hold both: unchanged passes, doubled evaluations or slower images fail", async () => {
    const dir = tempDir();
    const baseline = analytic.report!.json;
    const rules = ["model_evals_per_image:+0", "seconds_per_image:+50%"];
    expect((await gate({ current: baseline, baseline, rules })).code).toBe(0);
    const json = JSON.parse(readFileSync(baseline, "utf8"));
    const doubled = structuredClone(json);
    for (const c of doubled.cells) c.metrics.model_evals_per_image *= 2;
    expect((await gate({ current: writeInput(dir, "doubled.json", doubled), baseline, rules })).code).toBe(1);
    const slower = structuredClone(json);
    for (const c of slower.cells) c.metrics.seconds_per_image *= 2;
    expect((await gate({ current: writeInput(dir, "slower.json", slower), baseline, rules })).code).toBe(1);
  });

  it("leaves model_evals_per_image empty for a generator that does not count, and keeps seconds_per_image", async () => {
    const outcome = await runSweep({ spec: spec({ type: "fake" }, "fake"), generator: createFakeGenerator(), weights, device: "cpu", threads: 0 });
    for (const c of outcome.results!.cells) {
      expect(c.metrics.model_evals_per_image).toBeUndefined();
      expect(typeof c.metrics.seconds_per_image).toBe("number");
    }
    const [header, first] = readFileSync(outcome.report!.csv, "utf8").trim().split("\n").map((l) => l.split(","));
    expect(first[header.indexOf("model_evals_per_image")]).toBe("");
    expect(sweepPlots(outcome.results!).find((p) => p.id === "plot-cost")?.spec).toMatchObject({ hconcat: [{}] });
  });

  it("averages evaluations only when every image counted them", () => {
    expect(costPerImage([{ seconds: 1, modelEvaluations: 2 }, { seconds: 3, modelEvaluations: 4 }])).toEqual({ seconds_per_image: 2, model_evals_per_image: 3 });
    expect(costPerImage([{ seconds: 1, modelEvaluations: 2 }, { seconds: 3 }])).toEqual({ seconds_per_image: 2 });
    expect(costPerImage([])).toBeUndefined();
  });
});
