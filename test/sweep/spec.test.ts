import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { sweepCommand } from "../../src/cli/sweep.js";
import { planSweep, summarizePlan } from "../../src/sweep/plan.js";
import { loadPrompts } from "../../src/sweep/prompts.js";
import { loadSweepSpec, parseSweepSpec } from "../../src/sweep/spec.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-sweep-spec-"));

const minimal = {
  generator: { type: "analytic" },
  prompts: ["red circle", "blue square"],
  guidance_scales: [1, 3],
  reference: { source: "analytic:real", count: 8 },
};

function specError(json: unknown): string {
  try {
    parseSweepSpec(json, { baseDir: tmp });
  } catch (e) {
    expect((e as { code?: string }).code).toBe("E_SWEEP_SPEC");
    return (e as Error).message;
  }
  throw new Error("no error");
}

describe("the sweep spec", () => {
  it("names the bad field in every error", () => {
    expect(specError({ ...minimal, guidance_scales: [1, 2, "x"] })).toBe('spec.guidance_scales[2]: expected a number, got "x"');
    expect(specError({ ...minimal, guidance_scales: [1, 2, 1] })).toBe("spec.guidance_scales[2]: 1 repeats spec.guidance_scales[0]");
    expect(specError({ ...minimal, guidance_scales: undefined })).toBe("spec.guidance_scales: missing");
    expect(specError({ ...minimal, negative_prompts: ["", 3] })).toBe("spec.negative_prompts[1]: expected a string, got number 3");
    expect(specError({ ...minimal, seeds_per_prompt: 0 })).toBe("spec.seeds_per_prompt: expected a positive integer, got number 0");
    expect(specError({ ...minimal, metrics: ["fid", "fvd"] })).toMatch(/^spec\.metrics\[1\]: unknown metric "fvd"; choose from fid, kid/);
    expect(specError({ ...minimal, size: [64] })).toBe("spec.size: expected [width, height], got 1 value(s)");
    expect(specError({ ...minimal, axes: { sampler: "euler" } })).toBe("spec.axes.sampler: expected a list, got \"euler\"");
    expect(specError({ ...minimal, axes: { cfg_scale: [1] } })).toMatch(/^spec\.axes\.cfg_scale: 'cfg_scale' is already a sweep parameter; use guidance_scales/);
    expect(specError({ ...minimal, guidance_scale: [1] })).toMatch(/^spec\.guidance_scale: unknown field; the fields are name, generator/);
    expect(specError({ ...minimal, reference: "analytic:real" })).toMatch(/^spec\.reference\.count: analytic:real draws its images: say how many/);
    expect(specError({ ...minimal, prompt_template: "{prompt} <lora:x:{lora}>" })).toMatch(/^spec\.prompt_template: \{lora\} is neither \{prompt\} nor an axis/);
    expect(specError({ ...minimal, generator: { settings: 1 } })).toBe("spec.generator.type: missing");
    expect(specError({ ...minimal, seeds: [1], seeds_per_prompt: 2 })).toBe("spec.seeds: give either seeds or seeds_per_prompt, not both");
  });

  it("says when the file is not JSON", async () => {
    const file = path.join(tmp, "bad.json");
    writeFileSync(file, "generator: analytic\n");
    await expect(loadSweepSpec(file)).rejects.toThrow(/bad\.json: not valid JSON .*sweep specs are JSON/);
  });

  it("resolves paths against the spec's folder and fills defaults", async () => {
    const file = path.join(tmp, "demo.json");
    writeFileSync(file, JSON.stringify({ ...minimal, reference: "./real", size: 32, seeds_per_prompt: 3, seed: 10 }));
    const spec = await loadSweepSpec(file);
    expect(spec.name).toBe("demo");
    expect(spec.reference.source).toBe(path.join(tmp, "real"));
    expect(spec.output).toBe(path.join(tmp, "runs", "demo"));
    expect(spec.report).toBe(path.join(tmp, "runs", "demo", "report"));
    expect([spec.width, spec.height, spec.steps]).toEqual([32, 32, 20]);
    expect(spec.seeds).toEqual([10, 11, 12]);
    expect(spec.negativePrompts).toEqual([""]);
    expect(spec.metrics).toEqual(["fid", "kid", "is", "pr", "dc", "vendi", "pairwise"]);
    // a reference-statistics name stays a name
    expect(parseSweepSpec({ ...minimal, reference: "coco2014-val-30k-clean" }, { baseDir: tmp }).reference.source).toBe("coco2014-val-30k-clean");
  });
});

describe("prompts", () => {
  it("reads a text file, prompts.jsonl with image ids, and COCO captions", async () => {
    const txt = path.join(tmp, "prompts.txt");
    writeFileSync(txt, "# comment\na cat\n\n  a dog  \n");
    expect(await loadPrompts({ kind: "file", file: txt, seed: 0 })).toEqual([{ text: "a cat" }, { text: "a dog" }]);

    const jsonl = path.join(tmp, "prompts.jsonl");
    writeFileSync(jsonl, '{"prompt": "a cat", "image_id": 42}\n{"caption": "a dog"}\n');
    expect(await loadPrompts({ kind: "file", file: jsonl, seed: 0 })).toEqual([{ text: "a cat", imageId: 42 }, { text: "a dog" }]);

    const coco = path.join(tmp, "captions.json");
    writeFileSync(coco, JSON.stringify({
      images: [{ id: 7, file_name: "a.jpg" }, { id: 3, file_name: "b.jpg" }, { id: 9, file_name: "c.jpg" }],
      annotations: [{ id: 1, image_id: 7, caption: "seven" }, { id: 2, image_id: 3, caption: "three" }, { id: 3, image_id: 9, caption: "nine" }],
    }));
    expect(await loadPrompts({ kind: "file", file: coco, seed: 0 })).toEqual([
      { text: "three", imageId: 3 },
      { text: "seven", imageId: 7 },
      { text: "nine", imageId: 9 },
    ]);
    expect(await loadPrompts({ kind: "file", file: coco, n: 2, seed: 1 })).toHaveLength(2);

    writeFileSync(jsonl, '{"prompt": "a cat"}\n{"image_id": 3}\n');
    await expect(loadPrompts({ kind: "file", file: jsonl, seed: 0 })).rejects.toThrow(/prompts\.jsonl:2: expected \{"prompt"/);
  });
});

describe("the plan", () => {
  const spec = parseSweepSpec(
    {
      ...minimal,
      negative_prompts: ["", "Blue Square"],
      guidance_scales: [1, 2.5, 9],
      seeds_per_prompt: 2,
      size: [48, 32],
      axes: { lora: [0, 0.5], steps: [10] },
      prompt_template: "{prompt} <lora:style:{lora}>",
    },
    { baseDir: tmp },
  );
  const plan = planSweep(spec, [{ text: "red circle" }, { text: "blue square" }]);

  it("is the grid of cells, each with prompts x seeds images at deterministic keys", () => {
    expect(plan.cells).toHaveLength(3 * 2 * 2);
    expect(plan.images).toHaveLength(12 * 2 * 2);
    expect(new Set(plan.cells.map((c) => c.slug)).size).toBe(12);
    expect(plan.cells[0].slug).toBe("s1_neg-none_lora-0_steps-10");
    expect(plan.cells[0].params).toEqual({ cfg_scale: 1, negative_prompt: "", lora: 0, steps: 10 });
    expect(plan.cells.find((c) => c.negativePrompt !== "")!.slug).toMatch(/^s1_neg-blue-square-[0-9a-f]{6}_lora-0_steps-10$/);
    const im = plan.images.find((i) => i.cell.cfgScale === 2.5 && i.cell.axes.lora === 0.5 && i.promptIndex === 1 && i.seed === 1)!;
    expect(im.key).toBe(`${im.cell.slug}/1-1`);
    expect(im.request).toEqual({
      prompt: "blue square <lora:style:0.5>",
      negativePrompt: "",
      cfgScale: 2.5,
      seed: 1,
      steps: 10,
      width: 48,
      height: 32,
      extra: { lora: 0.5, steps: 10 },
    });
    // the same plan on a re-run
    expect(planSweep(spec, plan.prompts).images.map((i) => i.key)).toEqual(plan.images.map((i) => i.key));
  });

  it("counts what is done", () => {
    expect(summarizePlan(plan, new Set(plan.images.slice(0, 5).map((i) => i.key)))).toEqual({ cells: 12, images: 48, done: 5, requests: 43 });
  });
});

describe("diffeval sweep --dry-run", () => {
  it("prints cells, images and requests without generating or loading a model", async () => {
    const file = path.join(tmp, "dry.json");
    writeFileSync(file, JSON.stringify({ ...minimal, negative_prompts: ["", "blue square"], guidance_scales: [1, 2, 3, 5, 9], seeds_per_prompt: 4, output: "out-dry" }));
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
    try {
      await new Command().exitOverride().addCommand(sweepCommand()).parseAsync(["sweep", file, "--dry-run"], { from: "user" });
    } finally {
      process.stdout.write = write;
    }
    const text = out.join("");
    expect(text).toMatch(/^sweep dry: generator analytic$/m);
    expect(text).toMatch(/^cells: 10 \(guidance_scales 5 x negative_prompts 2\)$/m);
    expect(text).toMatch(/^images: 80 \(10 cells x 2 prompts x 4 seeds\), 0 already done$/m);
    expect(text).toMatch(/^requests: 80 \(one image per request\)$/m);
    expect(text).toMatch(/^s9_neg-blue-square-[0-9a-f]{6}\s+9\s+8\s+"blue square"\s+8$/m);
  });
});
