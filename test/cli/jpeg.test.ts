import { mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { jpegJson, jpegTable, parseQualities } from "../../src/cli/jpeg.js";
import { FEATURE_CACHE_EXTENSION } from "../../src/features/feature-cache.js";
import { runJpegCheck, type JpegCheckResult } from "../../src/pipeline/jpeg-check.js";
import { runCli } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

let weights: string;
let tmp: string;
let cacheDir: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const QUALITIES = [100, 50];

beforeAll(async () => {
  weights = await fixtureStateDictPath(false);
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-jpeg-"));
  cacheDir = path.join(tmp, "cache");
  process.env.DIFFEVAL_CACHE = cacheDir;
});

const common = () => ["--weights", weights, "--device", "cpu", "--threads", "0"];

/** Feature-cache entries on disk (one file per image content). */
function cachedEntries(): number {
  const root = path.join(cacheDir, "features");
  let n = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.name.endsWith(FEATURE_CACHE_EXTENSION)) n++;
    }
  };
  try {
    walk(root);
  } catch {
    return 0;
  }
  return n;
}


describe("diffeval jpeg on the fixture images", () => {
  let check: JpegCheckResult;
  const variantsDir = () => path.join(tmp, "variants");

  beforeAll(async () => {
    check = await runJpegCheck({
      real,
      fake,
      qualities: QUALITIES,
      weights,
      device: "cpu",
      threads: 0,
      onVariant: ({ quality, name, bytes }) => {
        const dir = path.join(variantsDir(), `q${quality}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, name.replace(/\.[^.]+$/, ".jpg")), bytes);
      },
    });
  });

  it("FID at quality 100 is smaller than at quality 50, and PSNR and SSIM fall with quality", () => {
    const [q100, q50] = check.results;
    expect(check.results.map((r) => r.quality)).toEqual([100, 50]);
    expect(q100.fid_real_vs_jpeg).toBeGreaterThan(0);
    expect(q100.fid_real_vs_jpeg).toBeLessThan(q50.fid_real_vs_jpeg);
    expect(q100.psnr).toBeGreaterThan(q50.psnr);
    expect(q100.ssim).toBeGreaterThan(q50.ssim);
    expect(q50.ssim).toBeLessThan(1);
    expect(q100.bpp).toBeGreaterThan(q50.bpp);
    expect(check).toMatchObject({ n_real: 32, n_fake: 32, real, fake, protocol: "clean" });
    console.log(jpegTable(check));
  });

  it("equals `diffeval fid` on the same JPEG bytes written to a folder, within 1e-6", async () => {
    for (const r of check.results) {
      const dir = path.join(variantsDir(), `q${r.quality}`);
      expect(readdirSync(dir)).toHaveLength(32);
      const vsReal = await runCli(["fid", "--real", real, "--fake", dir, "--json", ...common()]);
      expect(vsReal.code).toBe(0);
      expect(Math.abs(JSON.parse(vsReal.stdout).fid - r.fid_real_vs_jpeg)).toBeLessThan(1e-6);
      const vsFake = await runCli(["fid", "--real", dir, "--fake", fake, "--json", ...common()]);
      expect(Math.abs(JSON.parse(vsFake.stdout).fid - r.fid_jpeg_vs_fake!)).toBeLessThan(1e-6);
    }
    const base = await runCli(["fid", "--real", real, "--fake", fake, "--json", ...common()]);
    expect(Math.abs(JSON.parse(base.stdout).fid - check.fid_real_vs_fake!)).toBeLessThan(1e-6);
  });

  it("keeps the JPEG copies out of the feature cache unless --cache-variants", async () => {
    // after the check and the fid runs: real, fake and the two folders of copies (cached by `fid`)
    const before = cachedEntries();
    expect(before).toBe(32 * 4);
    const noCache = await runJpegCheck({ real, qualities: [90], weights, device: "cpu", threads: 0, limit: 4 });
    expect(noCache.n_real).toBe(4);
    expect(cachedEntries()).toBe(before);
    const report = path.join(tmp, "report");
    const r = await runCli(["jpeg", "--real", real, "--qualities", "90", "--limit", "4", "--cache-variants", "--json", "--report", report, ...common()]);
    expect(cachedEntries()).toBe(before + 4);
    const json = JSON.parse(r.stdout);
    expect(json.results).toHaveLength(1);
    expect(Object.keys(json.results[0]).sort()).toEqual(["bpp", "fid_real_vs_jpeg", "psnr", "quality", "ssim"]);
    expect(json.results[0].fid_real_vs_jpeg).toBeCloseTo(noCache.results[0].fid_real_vs_jpeg, 9);
    expect(json).toMatchObject({ protocol: "clean", n_real: 4, real, version: expect.any(String) });
    expect(json.encoder).toMatchObject({ subsampling: "4:2:0", progressive: false, trellis_quantisation: false });
    expect(json.weights_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(json.sample).toBeUndefined();
    expect(r.stderr).toMatch(/report: .*index\.html/);
    const html = readFileSync(path.join(report, "index.html"), "utf8");
    expect(html).toMatch(/<svg[^>]+class="marks"/);
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
  });

  it("prints the encoder settings and an aligned table", () => {
    const json = jpegJson(check) as { results: unknown[]; fid_real_vs_fake: number };
    expect(json.results[0]).toHaveProperty("fid_jpeg_vs_fake");
    expect(json.fid_real_vs_fake).toBe(check.fid_real_vs_fake);
    const lines = jpegTable(check).split("\n");
    expect(lines[0]).toMatch(/^encoder: sharp .*mozjpeg.*4:2:0 chroma subsampling.*trellis quantisation off/);
    expect(lines[1]).toMatch(/^quality\s+FID\(real,JPEG\)\s+PSNR dB\s+SSIM\s+bits\/px\s+FID\(JPEG,fake\)$/);
    expect(lines[2]).toMatch(/^\s+100\s+\d+\.\d{4}\s+\d+\.\d{2}\s+0\.\d{4}\s+\d+\.\d{2}\s+\d+\.\d{4}$/);
    expect(lines[2].length).toBe(lines[1].length);
    expect(lines[4]).toMatch(/^FID\(real,fake\) \d\.\d{4}/);
  });

  it("refuses a stats file as --real and bad --qualities", async () => {
    await expect(runJpegCheck({ real: fixture("reference", "stats_d64_real_savez.npz") })).rejects.toMatchObject({ code: "E_USAGE" });
    expect(() => parseQualities("95,abc")).toThrow(/--qualities/);
    expect(() => parseQualities("0")).toThrow(/--qualities/);
    expect(parseQualities("100, 75")).toEqual([100, 75]);
  });
});

describe("format census in diffeval fid and metrics", () => {
  const count = (dir: string, ext: string) => readdirSync(dir).filter((n) => n.endsWith(ext)).length;

  it("counts the fixture sets in --json and does not warn about them", async () => {
    const r = await runCli(["fid", "--real", real, "--fake", fake, "--json", ...common()]);
    expect(r.code).toBe(0);
    const { census } = JSON.parse(r.stdout);
    for (const [side, dir] of [["real", real], ["fake", fake]] as const) {
      expect(census[side].counts).toEqual({ jpeg: count(dir, ".jpg"), png: count(dir, ".png"), webp: 0, bmp: 0, other: 0 });
      expect(census[side].n).toBe(32);
      expect(census[side].jpeg_quality.median).toBe(95);
    }
    expect(r.stderr).not.toMatch(/differ in/);
  });

  it("warns once for a PNG-only set against a JPEG-only set, in fid and in metrics, and not for matching sets", async () => {
    const pngOnly = path.join(tmp, "png-only");
    const jpgOnly = path.join(tmp, "jpg-only");
    const pngOnly2 = path.join(tmp, "png-only-2");
    for (const [dir, src, ext] of [[pngOnly, real, ".png"], [jpgOnly, fake, ".jpg"], [pngOnly2, fake, ".png"]] as const) {
      mkdirSync(dir, { recursive: true });
      for (const n of readdirSync(src).filter((f) => f.endsWith(ext))) symlinkSync(path.join(src, n), path.join(dir, n));
    }
    const differ = await runCli(["fid", "--real", pngOnly, "--fake", jpgOnly, ...common()]);
    expect(differ.code).toBe(0);
    const warnings = differ.stderr.split("\n").filter((l) => l.startsWith("warning: the two sets differ"));
    expect(warnings).toEqual([
      `warning: the two sets differ in format (real: 100% PNG; fake: 100% JPEG (quality ~95)); compression alone moves FID: measure how much with \`diffeval jpeg --real ${pngOnly} --fake ${jpgOnly}\``,
    ]);
    const metrics = await runCli(["metrics", "--real", pngOnly, "--fake", jpgOnly, "--metrics", "fid", "--json", ...common()]);
    expect(metrics.stderr).toMatch(/warning: the two sets differ in format .*diffeval jpeg/);
    expect(JSON.parse(metrics.stdout).census.fake.counts.jpeg).toBe(count(fake, ".jpg"));
    const same = await runCli(["fid", "--real", pngOnly, "--fake", pngOnly2, ...common()]);
    expect(same.code).toBe(0);
    expect(same.stderr).not.toMatch(/differ in/);
  });

  it("has no census for a stats-file side", async () => {
    const stats = path.join(tmp, "real.npz");
    expect((await runCli(["stats", real, "--out", stats, ...common()])).code).toBe(0);
    const r = await runCli(["fid", "--real", stats, "--fake", fake, "--json", ...common()]);
    expect(r.code).toBe(0);
    const { census } = JSON.parse(r.stdout);
    expect(census.real).toBeUndefined();
    expect(census.fake.n).toBe(32);
    expect(r.stderr).not.toMatch(/differ in/);
  });
});
