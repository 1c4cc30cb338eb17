/**
 * The JPEG report in a real browser: Debian's chromium, driven by playwright-core. The page must
 * show the plot (an svg of non-zero size holding the data marks), log no console error and make
 * no request outside the file itself. A screenshot is saved to a temp folder (path printed).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import type { JpegCheckResult } from "../../src/pipeline/jpeg-check.js";
import { encodeJpeg, jpegEncoderInfo } from "../../src/robustness/jpeg-encoder.js";
import { largestErrorWindow, writeJpegReport } from "../../src/robustness/jpeg-report.js";
import { noBrowser, withReportPage } from "../helpers/browser.js";
import { fixture } from "../helpers/fixtures.js";

const QUALITIES = [100, 95, 90, 75, 50];

/** A check result with a real image strip and plausible numbers: the report is tested apart from the network. */
async function sampleResult(): Promise<JpegCheckResult> {
  const file = fixture("images", "real", "real_0001.png");
  const original = await decodeImage(new Uint8Array(readFileSync(file)), file);
  const variants = [];
  for (const quality of QUALITIES) {
    const bytes = await encodeJpeg(original, quality);
    variants.push({ quality, bytes, image: await decodeImage(bytes, `q${quality}`) });
  }
  return {
    results: QUALITIES.map((quality, i) => ({
      quality,
      fid_real_vs_jpeg: 0.5 + 2 * i * i,
      psnr: 48 - 3 * i,
      ssim: 0.99 - 0.02 * i,
      bpp: 4 - 0.8 * i,
      fid_jpeg_vs_fake: 20 - i,
    })),
    fid_real_vs_fake: 21,
    encoder: jpegEncoderInfo(),
    protocol: "clean",
    weights_sha256: "0".repeat(64),
    n_real: 32,
    n_fake: 32,
    real: "./coco <val>",
    fake: "./out",
    seconds: 1,
    version: "test",
    skipped: { real: [], fake: [] },
    sample: { name: "real_0001.png", original, variants },
  };
}

describe("largestErrorWindow", () => {
  it("finds the window around a planted error", () => {
    const a = { width: 100, height: 80, data: new Uint8Array(100 * 80 * 3).fill(100) };
    const b = { ...a, data: a.data.slice() };
    for (let y = 50; y < 60; y++) for (let x = 70; x < 80; x++) b.data[3 * (y * 100 + x)] = 0;
    const box = largestErrorWindow(a, b, 32);
    expect(box.width).toBe(32);
    expect(box.left <= 70 && box.left + 32 >= 80 && box.top <= 50 && box.top + 32 >= 60).toBe(true);
    expect(largestErrorWindow({ ...a, width: 10, height: 8, data: a.data.subarray(0, 240) }, { ...a, width: 10, height: 8, data: b.data.subarray(0, 240) }, 32)).toEqual({ left: 0, top: 0, width: 8, height: 8 });
  });
});

describe("the JPEG report page", () => {
  it.skipIf(noBrowser)("opens in headless Chromium with the plot visible, no console errors and no network", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-report-"));
    const file = await writeJpegReport(dir, await sampleResult());
    await withReportPage(file, async (page, { problems, requests }) => {
      const svg = page.locator("figure.plot svg");
      await expect(svg.count()).resolves.toBe(1);
      const box = await svg.boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(150);
      expect(await svg.isVisible()).toBe(true);
      // two panels x (5 points real-vs-JPEG + 5 points JPEG-vs-fake), lines for each series, the baseline rules
      expect(await svg.locator('path[aria-roledescription="point"]').count()).toBe(20);
      expect(await svg.locator(".mark-line.role-mark path").count()).toBe(4);
      expect(await svg.locator(".mark-rule.role-mark line").count()).toBe(2);
      // the strip: original + one figure per quality, every image decoded by the browser
      const images = page.locator(".strip img");
      expect(await images.count()).toBe(2 * (QUALITIES.length + 1));
      const decoded = await images.evaluateAll((els) => els.map((e) => (e as unknown as { naturalWidth: number }).naturalWidth));
      expect(decoded.every((w) => w > 0)).toBe(true);
      await expect(page.locator("table tbody tr").count()).resolves.toBe(QUALITIES.length + 1);

      const shot = path.join(dir, "report.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`report screenshot: ${shot}`);
      expect(problems).toEqual([]);
      expect(requests).toEqual([]);
    });
  });
});
