import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { MANIFEST_FILE, readManifest } from "../../src/sweep/manifest.js";
import { planSweep } from "../../src/sweep/plan.js";
import { generateImages, type RunProgress } from "../../src/sweep/runner.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { createFakeGenerator } from "./fake-generator.js";

function tinyPlan(output: string) {
  const spec = parseSweepSpec(
    {
      generator: { type: "fake" },
      prompts: ["red circle", "blue square"],
      negative_prompts: ["", "green"],
      guidance_scales: [1, 4],
      seeds_per_prompt: 3,
      size: 16,
      reference: { source: "fake:real", count: 4 },
      output,
    },
    { baseDir: "/" },
  );
  return planSweep(spec, [{ text: "red circle" }, { text: "blue square" }]);
}

const newOutput = () => mkdtempSync(path.join(os.tmpdir(), "diffeval-sweep-run-"));

describe("the sweep runner", () => {
  it("writes every image to its deterministic path and records it in the manifest with its sha256", async () => {
    const out = newOutput();
    const plan = tinyPlan(out);
    const gen = createFakeGenerator({ concurrency: 3 });
    const progress: RunProgress[] = [];
    const run = await generateImages(plan, { outputDir: out, generator: gen, onProgress: (p) => progress.push(p) });
    expect(run).toMatchObject({ generated: 24, skipped: 0, failed: [], aborted: false });
    expect(gen.totalCalls).toBe(24);
    for (const im of plan.images) {
      const file = path.join(out, "images", im.cell.slug, `${im.promptIndex}-${im.seed}.png`);
      expect(existsSync(file)).toBe(true);
      const entry = run.done.get(im.key)!;
      expect(entry.file).toBe(`images/${im.cell.slug}/${im.promptIndex}-${im.seed}.png`);
      expect(entry.sha256).toBe(createHash("sha256").update(readFileSync(file)).digest("hex"));
      expect(entry.params).toEqual(im.cell.params);
    }
    const lines = readFileSync(path.join(out, MANIFEST_FILE), "utf8").trim().split("\n");
    expect(lines).toHaveLength(24);
    expect(progress.at(-1)).toMatchObject({ total: 24, generated: 24, cellsDone: 4, cellsTotal: 4 });
    // no temp files left behind
    for (const cell of plan.cells) expect(readdirSync(path.join(out, "images", cell.slug)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("skips on a re-run what is done, and redoes an image whose file is gone or changed", async () => {
    const out = newOutput();
    const plan = tinyPlan(out);
    await generateImages(plan, { outputDir: out, generator: createFakeGenerator() });
    const again = createFakeGenerator();
    const rerun = await generateImages(plan, { outputDir: out, generator: again });
    expect(rerun).toMatchObject({ generated: 0, skipped: 24 });
    expect(again.totalCalls).toBe(0);

    const [a, b] = plan.images;
    writeFileSync(path.join(out, "images", `${a.key}.png`), "tampered");
    rmSync(path.join(out, "images", `${b.key}.png`));
    // a torn last line (power loss mid-append) is ignored and does not spoil the next entry
    appendFileSync(path.join(out, MANIFEST_FILE), '{"status":"done","key":"x');
    const third = createFakeGenerator();
    const fixed = await generateImages(plan, { outputDir: out, generator: third });
    expect(fixed).toMatchObject({ generated: 2, skipped: 22 });
    expect(third.totalCalls).toBe(2);
    expect((await readManifest(out)).size).toBe(24);
  });

  it("stopped midway, then re-run, ends with every image generated exactly once", async () => {
    const out = newOutput();
    const plan = tinyPlan(out);
    const controller = new AbortController();
    const first = createFakeGenerator({ concurrency: 2, delayMs: 15 });
    const run = await generateImages(plan, {
      outputDir: out,
      generator: first,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.generated >= 9) controller.abort();
      },
    });
    expect(run.aborted).toBe(true);
    expect(run.generated).toBeGreaterThanOrEqual(9);
    expect(run.generated).toBeLessThan(24);
    // requests that were in flight at the abort were not completed and not recorded
    expect(first.completed).toBe(run.generated);

    const second = createFakeGenerator({ concurrency: 2 });
    const rest = await generateImages(plan, { outputDir: out, generator: second });
    expect(rest).toMatchObject({ aborted: false, skipped: run.generated, generated: 24 - run.generated });
    // no image generated twice across the two runs (24 completions for 24 distinct images), none lost
    expect(first.completed + second.completed).toBe(24);
    expect(new Set([...first.calls.keys(), ...second.calls.keys()]).size).toBe(24);
    expect(rest.done.size).toBe(24);
    for (const im of plan.images) expect(existsSync(path.join(out, "images", `${im.key}.png`))).toBe(true);
  });

  it("retries a failed request once, then records and returns it; a re-run retries it", async () => {
    const out = newOutput();
    const plan = tinyPlan(out);
    const gen = createFakeGenerator({ fail: (req) => req.seed === 2 && req.cfgScale === 4 });
    const run = await generateImages(plan, { outputDir: out, generator: gen });
    // seed 2 at s = 4: 2 prompts x 2 negative prompts
    expect(run.failed).toHaveLength(4);
    expect(run.generated).toBe(20);
    expect(run.failed[0]).toMatchObject({ status: "failed", seed: 2, attempts: 2, error: "fake failure for seed 2" });
    for (const f of run.failed) expect(gen.calls.get([...gen.calls.keys()].find((k) => k.endsWith(`|4|2|{}`) && k.startsWith(f.prompt))!)).toBe(2);
    const manifest = await readManifest(out);
    expect([...manifest.values()].filter((e) => e.status === "failed")).toHaveLength(4);

    const healthy = createFakeGenerator();
    const retry = await generateImages(plan, { outputDir: out, generator: healthy });
    expect(retry).toMatchObject({ generated: 4, skipped: 20, failed: [] });
    expect([...(await readManifest(out)).values()].every((e) => e.status === "done")).toBe(true);
  });
});
