/**
 * A tiny sweep end to end with the fixture weights: 2 cells x 10 images at 32 px from the fake
 * generator, its own reference, every metric, bootstrap intervals; then the report files, the
 * gate reading results.json, and the page in headless Chromium (screenshot saved).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseResults } from "../../src/gate/results.js";
import { CSV_COLUMNS } from "../../src/report/sweep-results.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { noBrowser, withReportPage } from "../helpers/browser.js";
import { setUpCliTest } from "../helpers/cli.js";
import { createFakeGenerator, type FakeGenerator } from "./fake-generator.js";


let weights: string;
let tmp: string;
let outcome: SweepOutcome;
let generator: FakeGenerator;

function tinySpec() {
  return parseSweepSpec(
    {
      name: "tiny",
      generator: { type: "fake" },
      prompts: ["red circle", "blue square"],
      guidance_scales: [1, 4],
      seeds_per_prompt: 5,
      size: 32,
      axes: { sampler: ["euler"] },
      reference: { source: "fake:real", count: 10 },
      bootstrap: 5,
      output: "out",
    },
    { baseDir: tmp },
  );
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-report-"));
  generator = createFakeGenerator();
  outcome = await runSweep({ spec: tinySpec(), generator, weights, device: "cpu", threads: 0 });
});

describe("a sweep evaluated and reported", () => {
  it("evaluates every cell against the one reference with every metric", () => {
    expect(outcome).toMatchObject({ generated: 20, failed: [], aborted: false });
    const cells = outcome.results!.cells;
    expect(cells).toHaveLength(2);
    expect(outcome.results!.n_real).toBe(10);
    for (const c of cells) {
      expect(c.n).toBe(10);
      expect(c.skipped).toEqual({});
      const m = c.metrics as Record<string, any>;
      expect(m.fid.mean).toBeGreaterThan(0);
      expect(m.fid.ci95[0]).toBeLessThanOrEqual(m.fid.ci95[1]);
      for (const key of ["precision", "recall"]) expect(m[key].mean).toBeGreaterThanOrEqual(0);
      for (const key of ["density", "coverage", "vendi", "mean_pairwise_distance"]) expect(typeof m[key]).toBe("number");
      expect(m.kid.std).toBeGreaterThanOrEqual(0);
      expect(m.is.mean).toBeGreaterThanOrEqual(1);
      // per-prompt diversity: one group per prompt index
      expect(Object.keys(m.mean_pairwise_distance_by_group.perGroup)).toEqual(["0", "1"]);
    }
    // the fake generator's noise shrinks as s grows: so does the within-prompt diversity
    const [s1, s4] = cells.map((c) => (c.metrics as any).mean_pairwise_distance_by_group.meanOverGroups);
    expect(s4).toBeLessThan(s1);
  });

  it("writes results.csv with one row per cell and the issue's columns", () => {
    const lines = readFileSync(outcome.report!.csv, "utf8").trim().split("\n");
    const header = lines[0].split(",");
    expect(header.slice(0, CSV_COLUMNS.length)).toEqual([...CSV_COLUMNS]);
    expect(header).toContain("sampler");
    expect(lines).toHaveLength(3);
    const row = Object.fromEntries(lines[2].split(",").map((v, i) => [header[i], v]));
    expect(row).toMatchObject({ cfg_scale: "4", w: "3", negative_prompt: "", n: "10", sampler: "euler" });
    for (const col of CSV_COLUMNS.slice(4)) expect(Number.isFinite(Number(row[col])) && row[col] !== "").toBe(true);
    expect(Number(row.fid_ci95_low)).toBeLessThanOrEqual(Number(row.fid_ci95_high));
  });

  it("writes a results.json the gate reads", () => {
    const text = readFileSync(outcome.report!.json, "utf8");
    const parsed = parseResults(text, outcome.report!.json);
    expect(parsed.kind).toBe("sweep");
    expect(parsed.cells.map((c) => c.params)).toEqual([
      { cfg_scale: 1, negative_prompt: "", sampler: "euler" },
      { cfg_scale: 4, negative_prompt: "", sampler: "euler" },
    ]);
    const json = JSON.parse(text);
    expect(json.schema).toBe("diffeval-sweep-results/1");
    expect(json.conventions).toMatch(/w = s - 1/);
    expect(json.cells[1]).toMatchObject({ w: 3, n_fake: 10, n_real: 10, fake: expect.stringMatching(/^images\/s4_neg-none_sampler-euler$/) });
    expect(readFileSync(outcome.report!.markdown, "utf8")).toMatch(/diffusers skips the unconditional pass when s <= 1/);
  });

  it("re-run: generates nothing and extracts nothing new (manifest and feature cache)", async () => {
    const again = createFakeGenerator();
    const second = await runSweep({ spec: tinySpec(), generator: again, weights, device: "cpu", threads: 0 });
    expect(again.totalCalls).toBe(0);
    expect(second.generated).toBe(0);
    expect(second.summary.done).toBe(20);
    expect((second.results!.cells[0].metrics as any).fid.mean).toBe((outcome.results!.cells[0].metrics as any).fid.mean);
  });

  it.skipIf(noBrowser)("opens in headless Chromium with every plot, the contact sheet, no console errors and no network", async () => {
    await withReportPage(outcome.report!.html, async (page, { problems, requests }) => {
      const ids = await page.locator("figure.plot").evaluateAll((els) => els.map((e) => e.id));
      expect(ids).toEqual(["plot-fid", "plot-pr", "plot-diversity", "plot-front", "plot-cost", "plot-axis-sampler"]);
      // the live views (sweep-interactive.ts) have replaced the static SVGs
      for (const id of ids) await page.waitForSelector(`#${id}.live-ready`);
      for (const id of ids) {
        const svg = page.locator(`#${id} .live svg`);
        const box = await svg.boundingBox();
        expect(box!.width, id).toBeGreaterThan(200);
        expect(box!.height, id).toBeGreaterThan(100);
      }
      // FID: 2 points on one line, and bootstrap error bars
      expect(await page.locator('#plot-fid .live path[aria-roledescription="point"]').count()).toBe(2);
      expect(await page.locator("#plot-fid .live .mark-rule.role-mark line").count()).toBe(2);
      // the front labels each point with its scale
      const labels = await page.locator("#plot-front .live .mark-text.role-mark text").allTextContents();
      expect(labels.sort()).toEqual(["s=1", "s=4"]);
      // contact sheet: 8 thumbnails per cell, every one decoded
      const thumbs = page.locator(".sheet img");
      expect(await thumbs.count()).toBe(16);
      const widths = await thumbs.evaluateAll((els) => els.map((e) => (e as unknown as { naturalWidth: number }).naturalWidth));
      expect(widths.every((w) => w === 32)).toBe(true);
      await expect(page.locator("table tbody tr").count()).resolves.toBe(2);
      expect(await page.locator(".conventions").textContent()).toMatch(/w = s - 1/);

      const shot = path.join(tmp, "sweep-report.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`sweep report screenshot: ${shot}`);
      expect(problems).toEqual([]);
      expect(requests).toEqual([]);
    });
  });
});
