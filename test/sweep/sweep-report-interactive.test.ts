/**
 * The sweep report's live plots, in headless Chromium: a synthetic sweep (no generator, no
 * metrics pass: the report is a function of the results) of 3 scales x 2 negative prompts x 2
 * samplers, each cell with two tiny images. Hovering a point of the FID plot names its cell and
 * numbers, clicking it jumps to that cell's contact sheet, the selects filter plots and sheets,
 * the page loads nothing, and with JavaScript off the static SVG plots are all there.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vegaRuntimeSource } from "../../src/report/plot.js";
import { sweepPlots } from "../../src/report/sweep-plots.js";
import { writeSweepReport } from "../../src/report/sweep-report.js";
import type { SweepCellResult, SweepResults } from "../../src/report/sweep-results.js";
import { noBrowser, withReportPage } from "../helpers/browser.js";

const SCALES = [1, 4, 7];
const NEGATIVES = ["", "blurry"];
const SAMPLERS = ["euler", "ddim"];
/** The cell the click test aims at: not the first of any series. */
const TARGET = "s7_neg-blurry_sampler-ddim";

let tmp: string;
let results: SweepResults;
let html: string;

function slugOf(s: number, neg: string, sampler: string): string {
  return `s${s}_neg-${neg || "none"}_sampler-${sampler}`;
}

/** FID distinct for every cell, so a point's value names its cell. */
function fidOf(s: number, negIndex: number, samplerIndex: number): number {
  return 40 - 3 * s + 5 * negIndex + 1.5 * samplerIndex;
}

async function syntheticResults(dir: string): Promise<SweepResults> {
  const cells: SweepCellResult[] = [];
  for (const [ni, neg] of NEGATIVES.entries()) {
    for (const [ai, sampler] of SAMPLERS.entries()) {
      for (const s of SCALES) {
        const slug = slugOf(s, neg, sampler);
        const samples: string[] = [];
        for (const k of [0, 1]) {
          const file = path.join(dir, `${slug}-${k}.png`);
          await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 30 * s, g: 100 * ni + 40 * k, b: 120 * ai } } }).png().toFile(file);
          samples.push(file);
        }
        const fid = fidOf(s, ni, ai);
        cells.push({
          params: { cfg_scale: s, negative_prompt: neg, sampler },
          slug,
          n: 2,
          missing: 0,
          metrics: { fid: { mean: fid, ci95: [fid - 1, fid + 1] }, precision: { mean: 0.1 * s }, recall: { mean: 1 - 0.1 * s } },
          skipped: {},
          seconds: 0.1,
          samples,
        });
      }
    }
  }
  return {
    name: "clickable",
    generator: "synthetic",
    protocol: "test",
    weights_sha256: "0".repeat(64),
    version: "test",
    real: "synthetic:real",
    n_real: 2,
    axes: ["sampler"],
    prompts: [{ text: "a red circle" }],
    seeds: [0, 1],
    metrics: ["fid", "precision", "recall"],
    bootstrap: 0,
    cells,
    failed: [],
    seconds: 1,
  };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "diffeval-sweep-interactive-"));
  results = await syntheticResults(tmp);
  html = (await writeSweepReport(path.join(tmp, "report"), results)).html;
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The few DOM shapes the page functions below use (the test's tsconfig has no DOM library). */
interface PointElement {
  /** The scenegraph item Vega's SVG renderer binds to each element it draws (vega-scenegraph SVGRenderer). */
  __data__?: { datum?: { cell?: string } };
  getBoundingClientRect(): { x: number; y: number; width: number; height: number };
}
interface PageGlobals {
  document: { querySelectorAll(selector: string): Iterable<PointElement>; querySelector(selector: string): { id: string } | null };
  location: { hash: string };
}

/** Centre of the live FID plot's point of cell `slug` (runs in the page). */
const POINT_CENTRE = (slug: string) => {
  const points = [...(globalThis as unknown as PageGlobals).document.querySelectorAll('#plot-fid .live path[aria-roledescription="point"]')];
  const el = points.find((e) => e.__data__?.datum?.cell === slug);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
};

describe("the interactive sweep report", () => {
  it("inlines Vega once, loads nothing and carries every script in its CSP", async () => {
    const text = readFileSync(html, "utf8");
    const runtime = await vegaRuntimeSource();
    expect(text.split(runtime.slice(0, 200)).length - 1).toBe(1);
    expect(text).not.toMatch(/<script[^>]*\bsrc=/i);
    expect(text).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+' 'sha256-[A-Za-z0-9+/=]+' 'unsafe-eval'/);
    console.log(`interactive report: ${statSync(html).size} bytes, of which vega.min.js ${Buffer.byteLength(runtime)} bytes`);
  });

  it.skipIf(noBrowser)("hover names the cell, a click on a FID point shows that cell's images, the selects filter, and no request is made", async () => {
    await withReportPage(html, async (page, { problems, requests }) => {
      await page.waitForSelector("#plot-fid.live-ready");
      // the live view replaces the static SVG: 12 points, one per cell
      expect(await page.locator("#plot-fid > svg").isVisible()).toBe(false);
      const points = page.locator('#plot-fid .live path[aria-roledescription="point"]');
      expect(await points.count()).toBe(12);

      await page.locator("#plot-fid").scrollIntoViewIfNeeded();
      const at = await page.evaluate(POINT_CENTRE, TARGET);
      expect(at).not.toBeNull();
      await page.mouse.move(at!.x, at!.y);
      const tip = page.locator("#plot-tip");
      await expect.poll(() => tip.isVisible()).toBe(true);
      const tipText = (await tip.textContent())!;
      expect(tipText).toContain('s = 7 (w = 6), negative prompt "blurry", sampler = ddim');
      expect(tipText).toContain(`FID: ${fidOf(7, 1, 1).toFixed(4)}`);

      await page.mouse.click(at!.x, at!.y);
      const anchor = `cell-${TARGET}`;
      await expect.poll(() => page.evaluate(() => (globalThis as unknown as PageGlobals).location.hash)).toBe(`#${anchor}`);
      const section = page.locator(`#${anchor}`);
      // scrolled to: the section's top is in the viewport, and it holds that cell's images
      const top = await section.evaluate((e) => e.getBoundingClientRect().top);
      expect(top).toBeGreaterThanOrEqual(0);
      expect(top).toBeLessThan(900);
      const alts = await section.locator("img").evaluateAll((els) => els.map((e) => e.getAttribute("alt")));
      expect(alts).toEqual([`${TARGET}/${TARGET}-0.png`, `${TARGET}/${TARGET}-1.png`]);
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.querySelector(".cell:target")?.id)).toBe(anchor);

      // filters: negative prompt (none) leaves 6 points and 6 contact sheets; then sampler euler, 3
      await page.selectOption('#plot-filters select[name="negative_prompt"]', "(none)");
      await expect.poll(() => points.count()).toBe(6);
      expect(await page.locator(".cell:visible").count()).toBe(6);
      await page.selectOption('#plot-filters select[name="sampler"]', "euler");
      await expect.poll(() => points.count()).toBe(3);
      expect(await page.locator(".cell:visible").count()).toBe(3);
      // the front plot follows the same filter
      await expect.poll(() => page.locator('#plot-front .live path[aria-roledescription="point"]').count()).toBe(3);
      await page.selectOption('#plot-filters select[name="negative_prompt"]', "");
      await page.selectOption('#plot-filters select[name="sampler"]', "");
      await expect.poll(() => points.count()).toBe(12);

      expect(problems).toEqual([]);
      expect(requests).toEqual([]);
    });
  });

  it.skipIf(noBrowser)("with JavaScript off keeps every static SVG plot and hides the controls", async () => {
    await withReportPage(
      html,
      async (page, { problems, requests }) => {
        const ids = await page.locator("figure.plot").evaluateAll((els) => els.map((e) => e.id));
        expect(ids).toEqual(sweepPlots(results).map((p) => p.id));
        expect(ids).toContain("plot-fid");
        for (const id of ids) {
          const box = await page.locator(`#${id} > svg`).boundingBox();
          expect(box!.width, id).toBeGreaterThan(200);
        }
        expect(await page.locator("figure.plot .live").count()).toBe(0);
        expect(await page.locator('#plot-fid > svg path[aria-roledescription="point"]').count()).toBe(12);
        expect(await page.locator("#plot-filters").isVisible()).toBe(false);
        expect(await page.locator(".sheet img").count()).toBe(24);
        expect(problems).toEqual([]);
        expect(requests).toEqual([]);
      },
      { javaScriptEnabled: false },
    );
  });
});
