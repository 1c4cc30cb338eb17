/**
 * `diffeval control` and control_f1 on ../shared/fixtures/control: per pair and mean, at both
 * thresholds, against expected.json (OpenCV 4.6's cv2.Canny maps, counted in Python).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { controlF1 } from "../../src/metrics/control-f1.js";
import { computeMetricValues, type MetricContext } from "../../src/metrics/registry.js";
import { resizePil8 } from "../../src/preprocess/pil-resample.js";
import type { RgbImage } from "../../src/types.js";
import { runCli } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";

interface Counts {
  edge_pixels_control: number;
  edge_pixels_generated: number;
  tp: number;
  precision: number;
  recall: number;
  f1: number;
}
interface Expected {
  pairs: ({ control: string; generated: string } & Record<string, Counts>)[];
  [mean: string]: unknown;
}

const expected = JSON.parse(readFileSync(fixture("control", "expected.json"), "utf8")) as Expected;
const THRESHOLDS: [number, number][] = [
  [100, 200],
  [50, 150],
];
const decodeFixture = (name: string): Promise<RgbImage> => decodeImage(readFileSync(fixture("control", name)), name);
const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), "diffeval-control-"));

/** A pairs CSV in a fresh folder, naming the fixture files by paths relative to it. */
function pairsCsv(rows: [string, string][]): string {
  const dir = tmp();
  const rel = (name: string) => path.relative(dir, fixture("control", name));
  const file = path.join(dir, "pairs.csv");
  writeFileSync(file, ["image,control", ...rows.map(([g, c]) => `${rel(g)},${rel(c)}`)].join("\n") + "\n");
  return file;
}

const fixturePairs = (): [string, string][] => expected.pairs.map((p) => [p.generated, p.control]);

describe("controlF1 on the fixture pairs", () => {
  for (const [low, high] of THRESHOLDS) {
    it(`counts edges and true positives as expected.json at ${low},${high}`, async () => {
      for (const p of expected.pairs) {
        const e = p[`canny_${low}_${high}`];
        const r = controlF1(await decodeFixture(p.generated), await decodeFixture(p.control), { low, high });
        expect([r.generatedEdges, r.controlEdges, r.truePositives], p.generated).toEqual([e.edge_pixels_generated, e.edge_pixels_control, e.tp]);
        expect(r.precision).toBeCloseTo(e.precision, 12);
        expect(r.recall).toBeCloseTo(e.recall, 12);
        expect(r.f1).toBeCloseTo(e.f1, 12);
        expect(r.warning).toBeUndefined();
      }
    });
  }

  it("scores a pair with no edges on either side 0, as expected.json does (pair 04)", async () => {
    const r = controlF1(await decodeFixture("gen_04.png"), await decodeFixture("control_04.png"), { low: 100, high: 200 });
    expect(r).toEqual({ precision: 0, recall: 0, f1: 0, generatedEdges: 0, controlEdges: 0, truePositives: 0 });
  });

  it("resizes the generated image to the control's size (Pillow bicubic), warning only when the aspect ratio differs", async () => {
    const gen = await decodeFixture("gen_00.png");
    const control = await decodeFixture("control_00.png");
    const big: RgbImage = { width: 512, height: 512, data: resizePil8(gen.data, 256, 256, 3, 512, 512, "bicubic") };
    const viaResize = controlF1(big, control, { low: 100, high: 200 });
    const back: RgbImage = { width: 256, height: 256, data: resizePil8(big.data, 512, 512, 3, 256, 256, "bicubic") };
    expect(viaResize).toEqual(controlF1(back, control, { low: 100, high: 200 }));
    expect(viaResize.f1).toBeGreaterThan(0.3);
    const wide: RgbImage = { width: 384, height: 256, data: resizePil8(gen.data, 256, 256, 3, 384, 256, "bicubic") };
    expect(controlF1(wide, control, { low: 100, high: 200 }).warning).toMatch(/384x256.*256x256.*aspect ratio/);
  });
});

describe("diffeval control", () => {
  for (const [low, high] of THRESHOLDS) {
    it(`--pairs prints expected.json's per-pair values and mean F1 at --canny ${low},${high}`, async () => {
      const r = await runCli(["control", "--pairs", pairsCsv(fixturePairs()), "--canny", `${low},${high}`, "--json"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.canny).toEqual([low, high]);
      expect(out.n).toBe(8);
      expect(Math.abs(out.control_f1 - (expected[`mean_f1_canny_${low}_${high}`] as number))).toBeLessThan(1e-12);
      out.per_image.forEach((row: { image: string; control: string; precision: number; recall: number; f1: number }, i: number) => {
        const e = expected.pairs[i][`canny_${low}_${high}`];
        expect(path.basename(row.image)).toBe(expected.pairs[i].generated);
        expect(path.basename(row.control)).toBe(expected.pairs[i].control);
        for (const k of ["precision", "recall", "f1"] as const) expect(Math.abs(row[k] - e[k]), `${row.image} ${k}`).toBeLessThan(1e-12);
      });
    });
  }

  it("defaults to --canny 100,200 and prints a human summary", async () => {
    const r = await runCli(["control", "--pairs", pairsCsv(fixturePairs())]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`control_f1  ${(expected.mean_f1_canny_100_200 as number).toFixed(4)}`);
    expect(r.stdout).toContain("Canny 100,200, n 8");
  });

  it("--images and --controls pair two folders by file name", async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, "gen"));
    mkdirSync(path.join(dir, "ctl"));
    for (const p of expected.pairs) {
      const name = p.control.replace("control_", "");
      copyFileSync(fixture("control", p.generated), path.join(dir, "gen", name));
      copyFileSync(fixture("control", p.control), path.join(dir, "ctl", name));
    }
    const r = await runCli(["control", "--images", path.join(dir, "gen"), "--controls", path.join(dir, "ctl"), "--canny", "50,150", "--json"]);
    expect(r.code).toBe(0);
    expect(Math.abs(JSON.parse(r.stdout).control_f1 - (expected.mean_f1_canny_50_150 as number))).toBeLessThan(1e-12);
  });

  it("--control-is-edges binarises an edge-map control: OpenCV's own control maps give the same F1", async () => {
    const rows = expected.pairs.map((p): [string, string] => [p.generated, `canny_100_200_${p.control}`]);
    const r = await runCli(["control", "--pairs", pairsCsv(rows), "--control-is-edges", "--json"]);
    expect(r.code).toBe(0);
    expect(Math.abs(JSON.parse(r.stdout).control_f1 - (expected.mean_f1_canny_100_200 as number))).toBeLessThan(1e-12);
    // Without the flag the edge map itself would be re-detected: a different (lower) score.
    const redetected = await runCli(["control", "--pairs", pairsCsv(rows), "--json"]);
    expect(JSON.parse(redetected.stdout).control_f1).not.toBeCloseTo(expected.mean_f1_canny_100_200 as number, 3);
  });

  it("exits 2 naming the file: undecodable image, missing file, a name without a partner, bad --canny", async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, "broken.png"), "not a png");
    copyFileSync(fixture("control", "control_00.png"), path.join(dir, "c.png"));
    writeFileSync(path.join(dir, "bad.csv"), "image,control\nbroken.png,c.png\n");
    const bad = await runCli(["control", "--pairs", path.join(dir, "bad.csv")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error\[E_IMAGE_DECODE\].*broken\.png/);

    writeFileSync(path.join(dir, "missing.csv"), "image,control\nnowhere.png,c.png\n");
    const missing = await runCli(["control", "--pairs", path.join(dir, "missing.csv")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/error\[E_SOURCE\].*nowhere\.png/);

    mkdirSync(path.join(dir, "gen"));
    mkdirSync(path.join(dir, "ctl"));
    copyFileSync(fixture("control", "gen_00.png"), path.join(dir, "gen", "a.png"));
    copyFileSync(fixture("control", "gen_01.png"), path.join(dir, "gen", "lonely.png"));
    copyFileSync(fixture("control", "control_00.png"), path.join(dir, "ctl", "a.png"));
    const lonely = await runCli(["control", "--images", path.join(dir, "gen"), "--controls", path.join(dir, "ctl")]);
    expect(lonely.code).toBe(2);
    expect(lonely.stderr).toMatch(/error\[E_SOURCE\].*lonely\.png/);

    const canny = await runCli(["control", "--pairs", path.join(dir, "bad.csv"), "--canny", "100"]);
    expect(canny.code).toBe(2);
    expect(canny.stderr).toMatch(/error\[E_USAGE\].*--canny/);
  });
});

describe("the registry's control metric", () => {
  it("is control_f1, higher is better, the mean over fake images against their controls", async () => {
    const gens = await Promise.all(expected.pairs.map((p) => decodeFixture(p.generated)));
    const controls = await Promise.all(expected.pairs.map((p) => decodeFixture(p.control)));
    const side = (spec: string) => ({ spec, gaussian: { n: 8, d: 1, mu: new Float64Array(1), sigma: new Float64Array(1) } });
    const ctx = {
      real: side("real"),
      fake: { ...side("fake"), images: { count: 8, read: async (i: number) => gens[i] } },
      encoder: "inception",
      settings: {},
      controls: { count: 8, read: async (i: number) => controls[i], low: 50, high: 150 },
    } as unknown as MetricContext;
    const { metrics, skipped } = await computeMetricValues(["control"], ctx);
    expect(skipped).toEqual({});
    expect(Math.abs((metrics.control_f1 as number) - (expected.mean_f1_canny_50_150 as number))).toBeLessThan(1e-12);
    const without = await computeMetricValues(["control"], { ...ctx, controls: undefined });
    expect(without.skipped.control).toMatch(/control image/);
  });
});
