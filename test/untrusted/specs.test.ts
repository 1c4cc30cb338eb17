/**
 * Issue 17, the specs part: valid but large sweep specs answer (a plan or a named error) in
 * under a second, the grid and the plan are bounded before anything is built, the sweep's other
 * readers (prompts files, the manifest, CSV pairs) stay linear on hostile input, every spec error
 * names the spec file, and --skip-bad names the images it left out, in every command that takes it.
 *
 * Timings: each slow-spec case took 17 s to minutes before the fix and takes tens of milliseconds
 * after; the bound of 1 s leaves room for a loaded 2-core machine.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SKIPPED_NAMED, skippedWarning } from "../../src/cli/common-options.js";
import { MAX_TABLE_ROWS } from "../../src/cli/sweep.js";
import { parseCsv } from "../../src/io/csv.js";
import { readManifest, verifiedDone } from "../../src/sweep/manifest.js";
import { createSweepGenerator } from "../../src/sweep/generator-factory.js";
import { applyTemplate, planSweep } from "../../src/sweep/plan.js";
import { loadPrompts } from "../../src/sweep/prompts.js";
import { runSweep } from "../../src/sweep/run-sweep.js";
import { loadSweepSpec, MAX_SWEEP_CELLS, MAX_SWEEP_IMAGES, parseSweepSpec } from "../../src/sweep/spec.js";
import { errorCodeOf, runCliCapped } from "../helpers/capped-run.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { errorOf, rejectionOf } from "../helpers/errors.js";
import { fixture } from "../helpers/fixtures.js";

const minimal = {
  generator: { type: "analytic" },
  prompts: ["red circle"],
  guidance_scales: [3],
  reference: { source: "analytic:real", count: 8 },
};

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-specs-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeSpec(name: string, spec: object): string {
  const file = path.join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify({ output: `runs/${name}`, ...spec }));
  return file;
}

/** The value of `fn` and the milliseconds it took. */
async function timed<T>(fn: () => T | Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

/** `diffeval sweep FILE --dry-run` in-process, timed. */
function dryRun(file: string) {
  return timed(() => runCli(["sweep", file, "--dry-run"]));
}

describe("slow specs answer in under a second", () => {
  it("slow spec: 200,000 distinct seeds", async () => {
    const seeds = Array.from({ length: 200_000 }, (_, i) => 3 * i + 1);
    const spec = await timed(() => parseSweepSpec({ ...minimal, seeds }, { baseDir: tmp }));
    expect(spec.value.seeds).toHaveLength(200_000);
    expect(spec.ms).toBeLessThan(1000);
    const plan = await timed(() => planSweep(spec.value, [{ text: "red circle" }]));
    expect(plan.value.images).toHaveLength(200_000);
    expect(plan.ms).toBeLessThan(1000);
    // A repeat far down the list is still found, and named.
    const repeated = [...seeds, seeds[123_456]];
    const err = errorOf(() => parseSweepSpec({ ...minimal, seeds: repeated }, { baseDir: tmp }));
    expect(err).toEqual({ code: "E_SWEEP_SPEC", message: "spec.seeds[200000]: 370369 repeats spec.seeds[123456]" });

    const r = await dryRun(writeSpec("seeds", { ...minimal, seeds }));
    expect(r.value.stderr).toBe("");
    expect(r.value.stdout).toMatch(/^images: 200000 \(1 cells x 1 prompts x 200000 seeds\)/m);
    expect(r.value.stdout).toMatch(/seeds 1, 4, 7, .*\(200000 seeds\)$/m);
    expect(r.ms).toBeLessThan(1000);
  });

  it("slow spec: a prompt template of 100,000 `{`", async () => {
    const template = `{prompt} ${"{".repeat(100_000)}`;
    const spec = await timed(() => parseSweepSpec({ ...minimal, prompt_template: template }, { baseDir: tmp }));
    expect(spec.value.promptTemplate).toBe(template);
    expect(spec.ms).toBeLessThan(1000);
    const filled = await timed(() => applyTemplate(template, "a cat", {}));
    expect(filled.value).toBe(`a cat ${"{".repeat(100_000)}`);
    expect(filled.ms).toBeLessThan(1000);
    // The same braces closed at the very end: one placeholder, named (cut short) in the error.
    const closed = await timed(() => errorOf(() => parseSweepSpec({ ...minimal, prompt_template: `${template}}` }, { baseDir: tmp })));
    expect(closed.value.code).toBe("E_SWEEP_SPEC");
    expect(closed.value.message).toMatch(/^spec\.prompt_template: \{\{{80}\.\.\.\} is neither \{prompt\} nor an axis \(no axes\)$/);
    expect(closed.ms).toBeLessThan(1000);
    // What the regex did on ordinary templates, the scan does too.
    expect(applyTemplate("{prompt}, {{style}} {x} {", "p", { style: "s", x: 1 })).toBe("p, undefined} 1 {");
  });

  it("slow spec: 100,000 guidance scales", async () => {
    const scales = Array.from({ length: 100_000 }, (_, i) => 1 + i / 1000);
    const r = await dryRun(writeSpec("scales", { ...minimal, guidance_scales: scales }));
    expect(r.value.stderr).toBe("");
    expect(r.value.code).toBe(0);
    expect(r.value.stdout).toMatch(/^cells: 100000 \(guidance_scales 100000 x negative_prompts 1\)$/m);
    // The first MAX_TABLE_ROWS cells listed, the rest counted.
    const rows = r.value.stdout.split("\n").filter((l) => /^s\d/.test(l));
    expect(rows).toHaveLength(MAX_TABLE_ROWS);
    expect(rows[999]).toMatch(/^s1\.999_neg-none +1\.999 +0\.999 +"" +1$/);
    expect(r.value.stdout).toMatch(/\n\.\.\. and 99000 more cells\n$/);
    expect(r.ms).toBeLessThan(1000);

    // The CLI killed after 120 s before: now done in seconds, in bounded memory.
    const child = await runCliCapped(["sweep", path.join(tmp, "scales.json"), "--dry-run"], { timeoutMs: 10_000 });
    expect(child.killedFor).toBeUndefined();
    expect(child.code).toBe(0);
    expect(child.stdout).toMatch(/^cells: 100000 /m);
  });

  it("slow spec: 30 axes of 2 values", async () => {
    const axes = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`a${i}`, [0, 1]]));
    const err = await timed(() => errorOf(() => parseSweepSpec({ ...minimal, axes }, { baseDir: tmp })));
    expect(err.value.code).toBe("E_SWEEP_SPEC");
    expect(err.value.message).toMatch(
      /^spec\.axes: the grid has 1,073,741,824 cells \(guidance_scales 1 x negative_prompts 1 x a0 2 x .* x a29 2\), more than the limit of 100,000: split it into several specs \(e\.g\. one per value of a0, each with its own output\) or drop values$/,
    );
    expect(err.ms).toBeLessThan(1000);
    // Just at the limit is a plan; one cell more is refused.
    const atLimit = { ...minimal, guidance_scales: Array.from({ length: MAX_SWEEP_CELLS / 2 }, (_, i) => i + 1), axes: { lora: [0, 1] } };
    expect(planSweep(parseSweepSpec(atLimit, { baseDir: tmp }), [{ text: "p" }]).cells).toHaveLength(MAX_SWEEP_CELLS);
    expect(errorOf(() => parseSweepSpec({ ...atLimit, axes: { lora: [0, 1, 2] } }, { baseDir: tmp })).message).toMatch(/the grid has 150,000 cells/);

    // The CLI (3 GB before) ends at once with the named error, under a 768 MB RSS cap.
    const file = writeSpec("axes", { ...minimal, axes });
    const child = await runCliCapped(["sweep", file, "--dry-run"], { timeoutMs: 10_000 });
    expect(child.killedFor).toBeUndefined();
    expect(child.code).toBe(2);
    expect(errorCodeOf(child.stderr)).toBe("E_SWEEP_SPEC");
    expect(child.stderr).toMatch(/axes\.json: spec\.axes: the grid has 1,073,741,824 cells/);
  });

  it("slow spec: more images than a plan may hold (cells x prompts x seeds)", async () => {
    // seeds_per_prompt of 10^9: refused before the seed list is built.
    const seeds = await timed(() => errorOf(() => parseSweepSpec({ ...minimal, seeds_per_prompt: 1e9 }, { baseDir: tmp })));
    expect(seeds.value).toEqual({ code: "E_SWEEP_SPEC", message: `spec.seeds_per_prompt: 1000000000 seeds per prompt are more than a plan may hold (${MAX_SWEEP_IMAGES} images); use fewer` });
    expect(seeds.ms).toBeLessThan(1000);
    // 1,000 cells x 3,000 prompts x 1 seed: refused before any image is built, naming the spec file.
    const promptsFile = path.join(tmp, "many-prompts.txt");
    writeFileSync(promptsFile, Array.from({ length: 3000 }, (_, i) => `prompt ${i}`).join("\n"));
    const file = writeSpec("images", { ...minimal, prompts: "many-prompts.txt", guidance_scales: Array.from({ length: 1000 }, (_, i) => i + 1) });
    const r = await timed(() => rejectionOf(runSweep({ spec: file, dryRun: true })));
    expect(r.value.code).toBe("E_SWEEP_SPEC");
    expect(r.value.message).toBe(
      `${file}: spec.prompts: the plan has 3,000,000 images (1000 cells x 3000 prompts x 1 seeds), more than the limit of 2,000,000: ` +
        `use fewer prompts ("prompts": {"file", "n"}), seeds or cells, or split the sweep into several specs`,
    );
    expect(r.ms).toBeLessThan(1000);
  });

  it("slow spec: sizes, steps, bootstrap and reference counts far beyond practice", () => {
    const cases: [object, string][] = [
      [{ size: 100_000 }, "spec.size: 100000 pixels per side is more than the limit of 8,192"],
      [{ size: [512, 1e6] }, "spec.size[1]: 1000000 pixels per side is more than the limit of 8,192"],
      [{ steps: 1e9 }, "spec.steps: 1000000000 sampling steps is more than the limit of 10,000"],
      [{ bootstrap: 1e7 }, "spec.bootstrap: 10000000 bootstrap resamples is more than the limit of 100,000"],
      [{ reference: { source: "analytic:real", count: 1e10 } }, "spec.reference.count: 10000000000 reference images is more than the limit of 2,000,000"],
    ];
    for (const [over, message] of cases) {
      expect(errorOf(() => parseSweepSpec({ ...minimal, ...over }, { baseDir: tmp }))).toEqual({ code: "E_SWEEP_SPEC", message });
    }
    expect(parseSweepSpec({ ...minimal, size: 8192, steps: 10_000, bootstrap: 100_000 }, { baseDir: tmp }).steps).toBe(10_000);
  });

  it("slow spec: a negative prompt of 100,000 dashes (cell slug)", async () => {
    const negative = `a${"-".repeat(100_000)}a`;
    const spec = parseSweepSpec({ ...minimal, negative_prompts: ["", negative] }, { baseDir: tmp });
    const plan = await timed(() => planSweep(spec, [{ text: "p" }]));
    expect(plan.value.cells[1].slug).toMatch(/^s3_neg-a-[0-9a-f]{6}$/);
    expect(plan.ms).toBeLessThan(1000);
  });

  it("accepted but inconsistent: cell folder names longer than a file name may be", () => {
    // 8 axes of long values: each slug part is short (45 characters), together they passed NAME_MAX (255 bytes).
    const axes = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`axis_number_${i}`, [`a long value ${"x".repeat(40)}`, `another long value ${i}`]]));
    const spec = parseSweepSpec({ ...minimal, axes }, { baseDir: tmp });
    const cells = planSweep(spec, [{ text: "p" }]).cells;
    expect(cells).toHaveLength(2 ** 8);
    expect(Math.max(...cells.map((c) => c.slug.length))).toBe(160);
    expect(cells[0].slug).toMatch(/^s3_neg-none_axis-number-0-[0-9a-f]{6}-a-long-value-x{11}-[0-9a-f]{6}_.*-[0-9a-f]{12}$/);
    expect(new Set(cells.map((c) => c.slug)).size).toBe(cells.length);
    // Axis names are identifiers, and there are at most 32 of them.
    expect(errorOf(() => parseSweepSpec({ ...minimal, axes: { ["a".repeat(65)]: [1] } }, { baseDir: tmp })).message).toBe(`spec.axes.${"a".repeat(65)}: axis names are at most 64 characters, got 65`);
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`a${i}`, [1]]));
    expect(errorOf(() => parseSweepSpec({ ...minimal, axes: many }, { baseDir: tmp })).message).toBe("spec.axes: 33 axes; a sweep takes at most 32");
  });
});

describe("the sweep's other readers stay linear and bounded", () => {
  it("slow spec: prompts files of 200,000 lines, JSON list entries and COCO captions", async () => {
    const n = 200_000;
    const txt = path.join(tmp, "p.txt");
    writeFileSync(txt, Array.from({ length: n }, (_, i) => `a photo ${i}`).join("\r\n"));
    const jsonl = path.join(tmp, "p.jsonl");
    writeFileSync(jsonl, Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: `a photo ${i}`, image_id: i })).join("\n"));
    const list = path.join(tmp, "p.json");
    writeFileSync(list, JSON.stringify(Array.from({ length: n }, (_, i) => `a photo ${i}`)));
    const coco = path.join(tmp, "captions.json");
    const m = n / 2; // captions (ids in reverse order: sorted by the reader), 2 per image
    writeFileSync(coco, JSON.stringify({
      images: Array.from({ length: m / 2 }, (_, i) => ({ id: m - i, file_name: `${i}.jpg` })),
      annotations: Array.from({ length: m }, (_, i) => ({ id: m - i, image_id: m - (i % (m / 2)), caption: `caption ${i}` })),
    }));
    for (const file of [txt, jsonl, list]) {
      const r = await timed(() => loadPrompts({ kind: "file", file, seed: 0 }));
      expect(r.value).toHaveLength(n);
      expect(r.ms, file).toBeLessThan(1000);
    }
    const c = await timed(() => loadPrompts({ kind: "file", file: coco, n: 1000, seed: 0 }));
    expect(c.value).toHaveLength(1000);
    expect(c.ms).toBeLessThan(1000);
    // n beyond the captioned images is a spec error naming the field, not a command-line one.
    expect(await rejectionOf(loadPrompts({ kind: "file", file: coco, n: m, seed: 0 }))).toEqual({
      code: "E_SWEEP_SPEC",
      message: `spec.prompts.n: ${m} is more than the ${m / 2} captioned images in ${coco}`,
    });
  });

  it("generic exception: manifest lines that are not the runner's entries", async () => {
    const out = path.join(tmp, "manifest-out");
    mkdirSync(path.join(out, "images"), { recursive: true });
    writeFileSync(path.join(out, "images", "ok.png"), "bytes");
    const sha = "1a2b"; // not the file's hash: never trusted as done
    const lines = [
      JSON.stringify({ status: "done", key: "a", file: 42, sha256: sha }), // path.join(TypeError) before
      JSON.stringify({ status: "done", key: "b", file: "../../etc/passwd", sha256: sha }),
      JSON.stringify({ status: "done", key: "c", file: "images/ok.png", sha256: 7 }),
      "null",
      "[".repeat(100_000),
      JSON.stringify({ status: "failed", key: "d", error: "x" }),
      `{"status": "done", "key": "e", "file": "images/ok.png", "sha256": "${"0".repeat(64)}", "pad": "${"x".repeat(17 * 2 ** 20)}"}`,
      JSON.stringify({ status: "done", key: "f", file: "images/ok.png", sha256: sha }),
    ];
    writeFileSync(path.join(out, "manifest.jsonl"), `${lines.join("\n")}\n{"status": "do`);
    const entries = await readManifest(out);
    expect([...entries.keys()]).toEqual(["d", "f"]);
    expect((await verifiedDone(out, entries)).size).toBe(0);
  });

  it("slow spec: CSV pairs file with 20 MB fields (7 s before: built a character at a time)", () => {
    const cases: [string, string, number][] = [
      ["quoted", `image,prompt\na.png,"${"a".repeat(2e7)}"\n`, 2],
      ["unquoted", `image,prompt\na.png,${"a".repeat(2e7)}\n`, 2],
      ["doubled quotes", `image,prompt\na.png,"${'""'.repeat(1e6)}"\n`, 2],
      ["rows", `image,prompt\n${"a.png,p\n".repeat(5e5)}`, 5e5 + 1],
    ];
    for (const [what, text, records] of cases) {
      const r = (() => {
        const t0 = performance.now();
        const rows = parseCsv(text, "pairs.csv");
        return { rows, ms: performance.now() - t0 };
      })();
      expect(r.rows, what).toHaveLength(records);
      expect(r.ms, what).toBeLessThan(1000);
    }
    expect(parseCsv('a,"b ""c"", d\ne"\n', "x.csv")).toEqual([["a", 'b "c", d\ne']]);
    expect(errorOf(() => parseCsv('a,b"c\n', "x.csv"))).toEqual({
      code: "E_PAIRS_FORMAT",
      message: 'x.csv: line 1: a quote inside an unquoted field (quote the whole field and write "" for the quote)',
    });
    expect(errorOf(() => parseCsv(`a\n"${"x\n".repeat(3)}`, "x.csv")).message).toBe("x.csv: line 2: a quoted field is never closed");
  });
});

describe("messages", () => {
  it("message: sweep field errors name the spec file", async () => {
    const axesFile = writeSpec("sweep", { ...minimal, axes: { lora: [0, 0.5, 1, "x", "1"] } });
    expect(await rejectionOf(loadSweepSpec(axesFile))).toEqual({ code: "E_SWEEP_SPEC", message: `${axesFile}: spec.axes.lora[4]: "1" repeats spec.axes.lora[2]` });
    const r = await runCli(["sweep", axesFile, "--dry-run"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error[E_SWEEP_SPEC]: ${axesFile}: spec.axes.lora[4]: "1" repeats spec.axes.lora[2]\n`);

    // The prompts file it names: the spec file first, then the prompts file and line.
    writeFileSync(path.join(tmp, "bad.jsonl"), '{"prompt": "a"}\n{"image_id": 3}\n');
    const promptsFile = writeSpec("prompts-bad", { ...minimal, prompts: "bad.jsonl" });
    expect((await rejectionOf(runSweep({ spec: promptsFile, dryRun: true }))).message).toBe(
      `${promptsFile}: ${path.join(tmp, "bad.jsonl")}:2: expected {"prompt": "..."} (or "caption"), optionally with "image_id"`,
    );

    // The generator section, checked by the generators' registry.
    const genFile = writeSpec("generator-bad", { ...minimal, generator: { type: "a1111", baseUrl: 7 } });
    expect(await rejectionOf(createSweepGenerator(await loadSweepSpec(genFile)))).toEqual({
      code: "E_GENERATOR_SPEC",
      message: `${genFile}: spec.generator.baseUrl must be a string, got 7`,
    });

    // A spec object given to the library (no file) keeps the field-only message.
    expect(errorOf(() => parseSweepSpec({ ...minimal, guidance_scales: [1, 1] }, { baseDir: tmp })).message).toBe("spec.guidance_scales[1]: 1 repeats spec.guidance_scales[0]");
  });

  it("message: --skip-bad names the skipped images", async () => {
    const skipped = Array.from({ length: 7 }, (_, i) => ({ name: `bad-${i}.png`, message: `/data/bad-${i}.png: cannot decode image: no` }));
    expect(skippedWarning("/data", skipped)).toBe(
      [
        "warning: /data: skipped 7 undecodable image(s):",
        ...skipped.slice(0, SKIPPED_NAMED).map((s) => `  ${s.message}`),
        "  ... and 2 more",
        "",
      ].join("\n"),
    );
    expect(skippedWarning("/data", [{ name: "x.png", message: "zip entry: bad" }])).toBe("warning: /data: skipped 1 undecodable image(s):\n  x.png: zip entry: bad\n");
    expect(skippedWarning("/data", [])).toBe("");

    // Every command that takes --skip-bad, on a folder of 3 images and 7 undecodable ones.
    const { weights } = await setUpCliTest("diffeval-specs-skip-");
    const dir = path.join(tmp, "with-bad");
    mkdirSync(dir, { recursive: true });
    const real = fixture("images", "real");
    for (const f of readdirSync(real).filter((f) => f.endsWith(".png")).slice(0, 3)) copyFileSync(path.join(real, f), path.join(dir, f));
    for (let i = 0; i < 7; i++) writeFileSync(path.join(dir, `bad-${i}.png`), `not an image ${i}`);
    const flags = [...cpuFlags(weights), "--skip-bad"];
    const commands: string[][] = [
      ["fid", "--real", dir, "--fake", dir, ...flags],
      ["metrics", "--real", dir, "--fake", dir, "--metrics", "fid", ...flags],
      ["jpeg", "--real", dir, "--qualities", "90", ...flags],
      ["features", dir, "--out", path.join(tmp, "f.npy"), ...flags],
      ["stats", dir, "--out", path.join(tmp, "s.npz"), ...flags],
    ];
    for (const args of commands) {
      const r = await runCli(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(0);
      const warnings = r.stderr.split(`warning: ${dir}: skipped 7 undecodable image(s):\n`).length - 1;
      expect(warnings, args[0]).toBe(args.includes("--fake") ? 2 : 1);
      for (let i = 0; i < SKIPPED_NAMED; i++) expect(r.stderr, args[0]).toContain(`  ${path.join(dir, `bad-${i}.png`)}: cannot decode image`);
      expect(r.stderr, args[0]).toContain("  ... and 2 more\n");
    }
  });
});
