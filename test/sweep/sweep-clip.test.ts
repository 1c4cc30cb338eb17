/**
 * A sweep with `clip` in its spec: the fake generator's images scored against their own prompts
 * with the clip-tiny fixture weights. Every cell gets a finite `clip_score` (results.json,
 * results.csv, summary.md), and the report plots FID against CLIP score, one line per negative
 * prompt, each point labelled with its scale (checked in the rendered SVG, no browser needed).
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { fixture } from "../helpers/fixtures.js";
import { setUpCliTest } from "../helpers/cli.js";
import { createFakeGenerator } from "./fake-generator.js";

let weights: string;
let tmp: string;
let outcome: SweepOutcome;

function clipSpec(clip: unknown, output = "out") {
  return parseSweepSpec(
    {
      name: "clip",
      generator: { type: "fake" },
      prompts: ["red circle", "blue square"],
      negative_prompts: ["", "blurry"],
      guidance_scales: [1, 4],
      seeds_per_prompt: 2,
      size: 32,
      reference: { source: "fake:real", count: 4 },
      metrics: ["fid", "kid"],
      clip,
      output,
    },
    { baseDir: tmp },
  );
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-clip-"));
  outcome = await runSweep({ spec: clipSpec({ weights: fixture("encoders", "clip-tiny") }), generator: createFakeGenerator(), weights, device: "cpu", threads: 0 });
}, 120_000);

describe("spec.clip", () => {
  it("is validated, its weights relative to the spec's folder", () => {
    expect(parseSweepSpec({ generator: "fake", prompts: ["a"], guidance_scales: [1], reference: "ref", clip: { weights: "clip" } }, { baseDir: "/specs" }).clip).toEqual({
      weights: "/specs/clip",
      tokenizer: "openai",
    });
    expect(parseSweepSpec({ generator: "fake", prompts: ["a"], guidance_scales: [1], reference: "ref", clip: { weights: "/w", tokenizer: "hf" } }, { baseDir: "/specs" }).clip).toEqual({
      weights: "/w",
      tokenizer: "hf",
    });
    expect(parseSweepSpec({ generator: "fake", prompts: ["a"], guidance_scales: [1], reference: "ref" }, { baseDir: "/specs" }).clip).toBeUndefined();
    const bad = (clip: unknown) => {
      try {
        parseSweepSpec({ generator: "fake", prompts: ["a"], guidance_scales: [1], reference: "ref", clip }, { baseDir: "/specs" });
      } catch (e) {
        return isDiffevalError(e, "E_SWEEP_SPEC") ? e.message : `other: ${String(e)}`;
      }
      return "accepted";
    };
    expect(bad({})).toMatch(/^spec\.clip\.weights: missing/);
    expect(bad({ weights: "w", tokenizer: "ftfy" })).toMatch(/^spec\.clip\.tokenizer: expected "openai" or "hf"/);
    expect(bad({ weights: "w", model: "x" })).toMatch(/^spec\.clip\.model: unknown field/);
    expect(bad([])).toMatch(/^spec\.clip: expected an object/);
  });

  it("missing CLIP weights stop the sweep before any image is generated", async () => {
    const generator = createFakeGenerator();
    const err = await runSweep({ spec: clipSpec({ weights: "no-such-clip" }, "out-missing"), generator, weights, device: "cpu", threads: 0 }).catch((e) => e);
    expect(isDiffevalError(err, "E_WEIGHTS_LAYOUT")).toBe(true);
    expect(generator.totalCalls).toBe(0);
  });
});

describe("a sweep with CLIP scores", () => {
  it("gives every cell a finite clip_score in results.json", () => {
    expect(outcome).toMatchObject({ generated: 16, failed: [], aborted: false });
    const json = JSON.parse(readFileSync(outcome.report!.json, "utf8"));
    expect(json.cells).toHaveLength(4);
    for (const c of json.cells) {
      expect(Number.isFinite(c.metrics.clip_score)).toBe(true);
      expect(c.metrics.clip_score).toBeGreaterThanOrEqual(0);
      expect(c.metrics.clip_score).toBeLessThanOrEqual(100);
    }
  });

  it("writes a clip_score CSV column and a summary.md column", () => {
    const lines = readFileSync(outcome.report!.csv, "utf8").trim().split("\n");
    const header = lines[0].split(",");
    const col = header.indexOf("clip_score");
    expect(col).toBeGreaterThan(0);
    expect(lines).toHaveLength(5);
    for (const line of lines.slice(1)) {
      const v = line.split(",")[col];
      expect(v).not.toBe("");
      expect(Number.isFinite(Number(v))).toBe(true);
    }
    const md = readFileSync(outcome.report!.markdown, "utf8");
    expect(md).toMatch(/\| CLIP score \|/);
  });

  it("plots FID against CLIP score: one line per negative prompt, points labelled with s", () => {
    const html = readFileSync(outcome.report!.html, "utf8");
    expect(html).toContain("<h2>FID against CLIP score</h2>");
    const figure = html.match(/<figure class="plot" id="plot-clip">([\s\S]*?)<\/figure>/);
    expect(figure).not.toBeNull();
    const svg = figure![1];
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain("CLIP score");
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(4);
    expect(svg.match(/aria-roledescription="line mark"/g)?.length ?? svg.match(/mark-line role-mark/g)?.length).toBeGreaterThanOrEqual(1);
    const labels = [...svg.matchAll(/<text[^>]*>(s=[\d.]+)<\/text>/g)].map((m) => m[1]).sort();
    expect(labels).toEqual(["s=1", "s=1", "s=4", "s=4"]);
    // the legend names both negative prompts
    expect(svg).toContain("negative: (none)");
    expect(svg).toContain("negative: &quot;blurry&quot;");
  });

  it("has no CLIP column values or plot without spec.clip", async () => {
    const plain = await runSweep({
      spec: parseSweepSpec(
        { name: "plain", generator: "fake", prompts: ["red circle"], guidance_scales: [1], seeds_per_prompt: 3, size: 32, reference: { source: "fake:real", count: 3 }, metrics: ["fid"], output: "plain" },
        { baseDir: tmp },
      ),
      generator: createFakeGenerator(),
      weights,
      device: "cpu",
      threads: 0,
    });
    const [header, row] = readFileSync(plain.report!.csv, "utf8").trim().split("\n").map((l) => l.split(","));
    expect(row[header.indexOf("clip_score")]).toBe("");
    expect(readFileSync(plain.report!.html, "utf8")).not.toContain('id="plot-clip"');
  });
});
