import { runCli } from "../helpers/cli.js";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gateCommand } from "../../src/cli/gate.js";
import { fidResult, gate, metricsResult, sweepResult, tempDir, writeInput } from "./build-results.js";

let dir: string;
let savedSummary: string | undefined;

beforeEach(() => {
  dir = tempDir();
  // Tests that run inside GitHub Actions must not write to the job's real summary.
  savedSummary = process.env.GITHUB_STEP_SUMMARY;
  delete process.env.GITHUB_STEP_SUMMARY;
});

afterEach(() => {
  if (savedSummary === undefined) delete process.env.GITHUB_STEP_SUMMARY;
  else process.env.GITHUB_STEP_SUMMARY = savedSummary;
});

const baselineMetrics = { fid: 10, kid: { mean: 0.002, std: 0.0003 }, precision: 0.7, recall: 0.6, is: { mean: 3.1, std: 0.1 } };

/** Baseline and current files of `metrics --json` shape. */
function pairOf(current: Record<string, unknown>, baseline: Record<string, unknown> = baselineMetrics) {
  return {
    baseline: writeInput(dir, "baseline.json", metricsResult(baseline)),
    current: writeInput(dir, "current.json", metricsResult({ ...baseline, ...current })),
  };
}

const twoCells = (fid7: number, fid9: number, precision = 0.7) =>
  sweepResult([
    { params: { cfg_scale: 7.5, sampler: "euler" }, metrics: { fid: fid7, precision } },
    { params: { cfg_scale: 9, sampler: "euler" }, metrics: { fid: fid9, precision: 0.65 } },
  ]);

describe("diffeval gate", () => {
  it("passes when every metric stays within its rule, and prints an aligned table", async () => {
    const files = pairOf({ fid: 10.3, kid: { mean: 0.00215, std: 0.0003 }, precision: 0.69 });
    const r = await gate({ ...files, rules: ["fid:+0.5", "kid:+10%", "precision:-0.02", "is:-0.2"] });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[1]).toMatch(/^metric\s+cell\s+baseline\s+current\s+delta\s+allowed\s+verdict\s+decided$/);
    expect(lines[2]).toMatch(/^fid\s+-\s+10\s+10\.3\s+\+0\.3\s+\+0\.5\s+pass\s+ok: worse by 0\.3 <= 0\.5$/);
    expect(lines[3]).toMatch(/^kid\s+-\s+0\.002\s+0\.00215\s+\+0\.00015\s+\+10% \(0\.0002\)\s+pass\s+ok: worse by 0\.00015 <= 0\.0002$/);
    expect(lines[5]).toMatch(/^is\s+.*ok: unchanged$/);
    // aligned: every row's verdict column starts at the same offset
    expect(new Set(lines.slice(1, 6).map((l) => l.search(/ (verdict|pass|FAIL)\b/))).size).toBe(1);
    expect(lines.at(-1)).toBe("gate: pass: 4 checks");
  });

  it("covers only the cells that measure a metric: n/a where neither file has it, missing where none does", async () => {
    // neg_clip_delta exists only in cells with a negative prompt (issue 19): a whole-sweep rule covers those.
    const cells = (delta: number) =>
      sweepResult([
        { params: { cfg_scale: 7.5, negative_prompt: "" }, metrics: { fid: 10 } },
        { params: { cfg_scale: 7.5, negative_prompt: "blurry" }, metrics: { fid: 11, neg_clip_delta: delta } },
      ]);
    const ok = await gate({ baseline: writeInput(dir, "b.json", cells(-1)), current: writeInput(dir, "c.json", cells(-0.8)), rules: ["neg_clip_delta:+0.5"] });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/neg_clip_delta\s+cfg_scale=7\.5, negative_prompt=""?\s.*n\/a\s+neg_clip_delta absent from both files in this cell/);
    expect(ok.stdout.trimEnd().split("\n").at(-1)).toBe("gate: pass: 2 checks (1 not applicable)");
    const bad = await gate({ baseline: writeInput(dir, "b2.json", cells(-1)), current: writeInput(dir, "c2.json", cells(0)), rules: ["neg_clip_delta:+0.5"] });
    expect(bad.code).toBe(1);
    // A metric no cell of either file measured is still missing: the rule would check nothing.
    const none = await gate({ baseline: writeInput(dir, "b3.json", cells(-1)), current: writeInput(dir, "c3.json", cells(-1)), rules: ["clip_score:-1"] });
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/clip_score absent from both files/);
  });

  it("fails (exit 1) when a metric regresses past its rule, in either direction", async () => {
    const files = pairOf({ fid: 10.8, precision: 0.67 });
    const r = await gate({ ...files, rules: ["fid:+0.5", "precision:-0.02", "recall:-0.01"] });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^fid .*FAIL\s+regressed by 0\.8 > 0\.5$/m);
    expect(r.stdout).toMatch(/^precision .*-0\.03\s+-0\.02\s+FAIL\s+regressed by 0\.03 > 0\.02$/m);
    expect(r.stdout).toMatch(/^recall .*pass/m);
    expect(r.stdout).toMatch(/gate: FAIL: 2 of 3 checks failed\n$/);
  });

  it("reads fid --json output as one cell with metric fid", async () => {
    const baseline = writeInput(dir, "b.json", fidResult(20));
    const current = writeInput(dir, "c.json", fidResult(19.5));
    const r = await gate({ current, baseline, rules: ["fid:+0"] });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok: improved by 0\.5/);
  });

  it("passes a regression inside overlapping bootstrap intervals as noise, and fails it with --strict", async () => {
    const ci = (mean: number, lo: number, hi: number) => ({ mean, std: 0.4, ci95: [lo, hi] });
    const files = pairOf({ fid: ci(10.8, 10.1, 11.6) }, { ...baselineMetrics, fid: ci(10, 9.2, 10.9) });
    const tolerant = await gate({ ...files, rules: ["fid:+0.5"] });
    expect(tolerant.code).toBe(0);
    expect(tolerant.stdout).toMatch(/pass\s+within noise: regressed by 0\.8 > 0\.5, but the 95% CIs overlap \(baseline \[9\.2, 10\.9\] vs current \[10\.1, 11\.6\]\)/);
    expect(tolerant.stdout).toMatch(/gate: pass: 1 check \(1 within noise\)/);
    const strict = await gate({ ...files, rules: ["fid:+0.5"], strict: true });
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/FAIL\s+regressed by 0\.8 > 0\.5; the 95% CIs overlap .* but --strict/);
  });

  it("takes strict from a rules file", async () => {
    const ci = (mean: number, lo: number, hi: number) => ({ mean, std: 0.4, ci95: [lo, hi] });
    const files = pairOf({ fid: ci(10.8, 10.1, 11.6) }, { ...baselineMetrics, fid: ci(10, 9.2, 10.9) });
    const rulesFile = writeInput(dir, "gate.json", { strict: true, rules: [{ metric: "fid", max_increase: 0.5 }] });
    expect((await gate({ ...files, rulesFile })).code).toBe(1);
  });

  it("matches sweep cells by params, fails a cell missing from current and reports a new one", async () => {
    const baseline = writeInput(dir, "b.json", twoCells(10, 12));
    const current = writeInput(
      dir,
      "c.json",
      sweepResult([
        // same cell, keys in another order
        { params: { sampler: "euler", cfg_scale: 7.5 }, metrics: { fid: 10.2, precision: 0.7 } },
        { params: { cfg_scale: 11, sampler: "euler" }, metrics: { fid: 14, precision: 0.6 } },
      ]),
    );
    const r = await gate({ current, baseline, rules: ["fid:+0.5"] });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^fid\s+cfg_scale=7\.5, sampler=euler\s+10\s+10\.2\s+.*pass/m);
    expect(r.stdout).toMatch(/^fid\s+cfg_scale=9, sampler=euler\s+12\s+-\s+-\s+\+0\.5\s+FAIL\s+cell missing from .*c\.json$/m);
    expect(r.stdout).toMatch(/^fid\s+cfg_scale=11, sampler=euler\s+-\s+14\s+-\s+\+0\.5\s+new\s+new cell: no baseline yet$/m);
    expect(r.stdout).toMatch(/gate: FAIL: 1 of 3 checks failed \(1 new, 1 missing\)/);
  });

  it("lets the most specific rule decide a cell", async () => {
    const baseline = writeInput(dir, "b.json", twoCells(10, 12));
    const current = writeInput(dir, "c.json", twoCells(10.2, 13.5));
    const loose = await gate({ current, baseline, rules: ["fid[cfg_scale=9]:+2", "fid:+0.5"] });
    expect(loose.code).toBe(0);
    expect(loose.stdout).toMatch(/^fid\s+cfg_scale=9, sampler=euler\s+12\s+13\.5\s+\+1\.5\s+\+2\s+pass/m);
    const typo = await gate({ current, baseline, rules: ["fid:+0.5", "fid[cfg_scale=7.0, sampler=heun]:+1"] });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^error\[E_GATE_RULE\]: --rule "fid\[cfg_scale=7, sampler=heun\]:\+1": matches no cell .*cells: cfg_scale=7\.5, sampler=euler; cfg_scale=9, sampler=euler/);
  });

  it("fails a gated metric that current no longer reports", async () => {
    const files = pairOf({}, { fid: 10 });
    writeFileSync(files.current, JSON.stringify(metricsResult({ kid: { mean: 0.1, std: 0 } })));
    const r = await gate({ ...files, rules: ["fid:+0.5", "kid:+1"] });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^fid .*FAIL\s+fid absent from .*current\.json$/m);
    expect(r.stdout).toMatch(/^kid .*new\s+kid absent from .*baseline\.json: nothing to compare yet$/m);
  });

  it("refuses (exit 2) results made under another protocol or other weights", async () => {
    const baseline = writeInput(dir, "b.json", metricsResult({ fid: 10 }));
    const other = writeInput(dir, "c.json", metricsResult({ fid: 10 }, { protocol: "legacy-pytorch" }));
    const r = await gate({ current: other, baseline, rules: ["fid:+0.5"] });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error\[E_PROTOCOL_MISMATCH\]: .*b\.json was computed with protocol clean, .*c\.json with legacy-pytorch/);
    const weights = writeInput(dir, "w.json", metricsResult({ fid: 10 }, { weights_sha256: "f".repeat(64) }));
    expect((await gate({ current: weights, baseline, rules: ["fid:+0.5"] })).stderr).toMatch(/E_PROTOCOL_MISMATCH.*weights_sha256/);
  });

  it("names the file of malformed JSON or results (exit 2)", async () => {
    const baseline = writeInput(dir, "b.json", metricsResult({ fid: 10 }));
    const broken = writeInput(dir, "broken.json", '{"fid": 10.2, "protocol": ');
    const r = await gate({ current: broken, baseline, rules: ["fid:+0.5"] });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_GATE_INPUT\]: \S*broken\.json: not valid JSON \(.*\); expected the output of `diffeval fid --json`/);
    const human = writeInput(dir, "human.json", "FID  10.2000\nprotocol clean ...\n");
    expect((await gate({ current: human, baseline, rules: ["fid:+0.5"] })).stderr).toMatch(/human\.json: not valid JSON/);
    const noProtocol = writeInput(dir, "np.json", { fid: 3 });
    expect((await gate({ current: noProtocol, baseline, rules: ["fid:+0.5"] })).stderr).toMatch(/np\.json: protocol is missing; expected a string/);
    const badValue = writeInput(dir, "bv.json", metricsResult({ fid: "10" }));
    expect((await gate({ current: badValue, baseline, rules: ["fid:+0.5"] })).stderr).toMatch(/E_GATE_INPUT\]: \S*bv\.json: fid is a string \("10"\), expected a number/);
    const badCell = writeInput(dir, "bc.json", sweepResult([{ params: { cfg: [1] }, metrics: { fid: 1 } }]));
    expect((await gate({ current: badCell, baseline, rules: ["fid:+0.5"] })).stderr).toMatch(/bc\.json: cells\[0\]\.params\.cfg is an array/);
    const missing = await gate({ current: baseline, baseline: path.join(dir, "nope.json"), rules: ["fid:+0.5"] });
    expect(missing.stderr).toMatch(/nope\.json: cannot read the baseline results \(no such file; to start one, run the gate with --update-baseline\)/);
  });

  it("refuses an unknown metric in a rule (exit 2) and a gate without rules", async () => {
    const files = pairOf({});
    const r = await gate({ ...files, rules: ["fid:+0.5", "fdi:+0.5"] });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error\[E_GATE_RULE\]: --rule "fdi:\+0\.5": unknown metric 'fdi'; gateable metrics: fid, kid, sfid/);
    const none = await gate({ ...files });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/error\[E_USAGE\]: no rules/);
  });

  it("writes JUnit XML with one testcase per rule and cell, failures marked, markup escaped", async () => {
    const odd = 'a <b> & "c"\u0001';
    const baseline = writeInput(
      dir,
      "b.json",
      sweepResult([...twoCells(10, 12).cells.map(({ params, metrics }) => ({ params, metrics })), { params: { prompt: odd }, metrics: { fid: 5, precision: 0.8 } }]),
    );
    const current = writeInput(
      dir,
      "c.json",
      sweepResult([...twoCells(10.9, 12.1).cells.map(({ params, metrics }) => ({ params, metrics })), { params: { prompt: odd }, metrics: { fid: 5, precision: 0.7 } }]),
    );
    const junit = path.join(dir, "reports", "gate.xml");
    const r = await gate({ current, baseline, rules: ["fid:+0.5", "precision:-0.02"], junit });
    expect(r.code).toBe(1);
    const xml = readFileSync(junit, "utf8");
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (name) => name === "testcase" }).parse(xml);
    const suite = doc.testsuites.testsuite;
    expect(doc.testsuites).toMatchObject({ tests: "6", failures: "2", skipped: "0" });
    expect(suite.testcase).toHaveLength(6);
    const failed = suite.testcase.filter((t: Record<string, unknown>) => t.failure);
    expect(failed.map((t: Record<string, string>) => t.name)).toEqual(["fid [cfg_scale=7.5, sampler=euler]", "precision [prompt=\"a <b> & \\\"c\\\"\\u0001\"]"]);
    expect(failed[0].failure).toMatchObject({ type: "regressed", message: "regressed by 0.9 > 0.5" });
    expect(failed[0].classname).toBe("diffeval.gate.fid");
    expect(suite.testcase.filter((t: Record<string, unknown>) => "system-out" in t)).toHaveLength(4);
    const props = Object.fromEntries(suite.properties.property.map((p: Record<string, string>) => [p.name, p.value]));
    expect(props).toMatchObject({ protocol: "clean", strict: "false" });
  });

  it("writes the Markdown summary and appends it to $GITHUB_STEP_SUMMARY", async () => {
    const files = pairOf({ fid: 10.8 });
    const summary = writeInput(dir, "summary.md", "# earlier step\n");
    process.env.GITHUB_STEP_SUMMARY = summary;
    const markdown = path.join(dir, "gate.md");
    const r = await gate({ ...files, rules: ["fid:+0.5", "precision:-0.02"], markdown });
    expect(r.code).toBe(1);
    const md = readFileSync(markdown, "utf8");
    expect(md).toMatch(/^### ❌ diffeval gate: FAIL: 1 of 2 checks failed\n/);
    expect(md).toContain("| metric | cell | baseline | current | delta | allowed | verdict | decided |");
    expect(md).toContain("| fid | - | 10 | 10.8 | +0.8 | +0.5 | ❌ FAIL | regressed by 0.8 \\> 0.5 |");
    expect(md).toContain("| precision | - | 0.7 | 0.7 | 0 | -0.02 | ✅ pass | ok: unchanged |");
    expect(readFileSync(summary, "utf8")).toBe(`# earlier step\n${md}\n`);
    await gate({ ...files, rules: ["fid:+1"] });
    expect(readFileSync(summary, "utf8")).toMatch(/FAIL: 1 of 2[\s\S]*### ✅ diffeval gate: pass: 1 check\n/);
  });

  it("--update-baseline replaces the baseline atomically with the current results", async () => {
    const files = pairOf({ fid: 14 });
    const before = statSync(files.baseline).ino;
    const r = await gate({ ...files, updateBaseline: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^gate: baseline \S*baseline\.json updated from \S*current\.json \(1 cell, protocol clean, weights 6726825d0af5\)\n$/);
    expect(JSON.parse(readFileSync(files.baseline, "utf8"))).toEqual(JSON.parse(readFileSync(files.current, "utf8")));
    // written to a temp file and renamed over the old one: a new inode, no temp file left behind
    expect(statSync(files.baseline).ino).not.toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect((await gate({ ...files, rules: ["fid:+0"] })).code).toBe(0);
  });

  it("--update-baseline creates a missing baseline, says what changed, and refuses invalid results", async () => {
    const current = writeInput(dir, "c.json", twoCells(10, 12));
    const baseline = path.join(dir, "ci", "baseline.json");
    expect((await gate({ current, baseline, updateBaseline: true })).stdout).toMatch(/baseline \S+ created from .*\(2 cells, /);
    const next = writeInput(dir, "n.json", sweepResult([{ params: { cfg_scale: 5 }, metrics: { fid: 1 } }], { protocol: "legacy-pytorch" }));
    expect((await gate({ current: next, baseline, updateBaseline: true })).stdout).toMatch(/; 1 new cell, 2 cells dropped, protocol was clean\n$/);
    const broken = writeInput(dir, "broken.json", "{");
    const r = await gate({ current: broken, baseline, updateBaseline: true });
    expect(r.code).toBe(2);
    expect(JSON.parse(readFileSync(baseline, "utf8")).protocol).toBe("legacy-pytorch");
  });

  it("is a commander command whose failure carries exit code 1 to main", async () => {
    const files = pairOf({ fid: 10.8 });
    const program = () => new Command("diffeval").exitOverride().addCommand(gateCommand().exitOverride());
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (out.push(chunk), true)) as typeof process.stdout.write;
    try {
      const args = ["gate", "--current", files.current, "--baseline", files.baseline, "--rule", "fid:+0.5", "--rule", "kid:+50%"];
      await expect(program().parseAsync(args, { from: "user" })).rejects.toMatchObject({ code: "E_GATE_FAILED", exitCode: 1 });
      await expect(program().parseAsync([...args.slice(0, 5), "--rule", "fid:+1"], { from: "user" })).resolves.toBeDefined();
    } finally {
      process.stdout.write = write;
    }
    expect(out.join("")).toMatch(/gate: FAIL: 1 of 2 checks failed[\s\S]*gate: pass: 1 check/);
    expect(existsSync(files.baseline)).toBe(true);
  });
});

describe("through the diffeval program", () => {
  it("exits 1 on a regression, 0 on a pass and 2 on bad input", async () => {
    const files = pairOf({ fid: 10.8 });
    const base = ["gate", "--current", files.current, "--baseline", files.baseline];
    expect((await runCli([...base, "--rule", "fid:+0.5"])).code).toBe(1);
    expect((await runCli([...base, "--rule", "fid:+1"])).code).toBe(0);
    const bad = await runCli([...base, "--rule", "fvd:+1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error\[E_GATE_RULE\]/);
  });
});
