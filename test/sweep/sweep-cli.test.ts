/** `diffeval sweep` as a command: output lines, exit codes, a failing generator reported. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { beforeAll, describe, expect, it } from "vitest";
import { sweepCommand } from "../../src/cli/sweep.js";
import { reportError } from "../../src/cli/run-command.js";
import { cpuFlags, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-cli-"));
});

/** The sweep command in-process, with main.ts's mapping of errors to exit codes. */
async function sweepCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [o, e] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    await new Command().exitOverride().addCommand(sweepCommand()).parseAsync(["sweep", ...args], { from: "user" });
    return { code: 0, stdout: out.join(""), stderr: err.join("") };
  } catch (x) {
    const code = reportError(x);
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

function writeSpec(name: string, spec: object): string {
  const file = path.join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, ...spec }));
  return file;
}

describe("diffeval sweep", () => {
  it("runs the analytic sweep from a spec file and prints where the report is", async () => {
    const file = writeSpec("analytic", {
      generator: { type: "analytic", steps: 6 },
      prompts: ["red circle", "blue square"],
      negative_prompts: ["", "blue square"],
      guidance_scales: [1, 3],
      seeds_per_prompt: 3,
      size: 32,
      steps: 6,
      reference: { source: "analytic:real", count: 8 },
      metrics: ["fid", "pairwise"],
    });
    const r = await sweepCli([file, ...cpuFlags(weights)]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^generated 24 image\(s\), 0 already done, 0 failed$/m);
    const html = r.stdout.match(/^report: (.*)$/m)![1];
    expect(html).toBe(path.join(tmp, "runs", "analytic", "report", "index.html"));
    expect(existsSync(html)).toBe(true);
    const csv = readFileSync(path.join(path.dirname(html), "results.csv"), "utf8").trim().split("\n");
    expect(csv).toHaveLength(5);
  });

  it("reports a failing generator with its stderr, keeps going, writes the report and exits 2", async () => {
    const file = writeSpec("failing", {
      generator: { type: "command", argv: ["sh", "-c", "echo out of memory >&2; exit 3", "sh", "{out}"] },
      prompts: ["a cat"],
      guidance_scales: [2],
      seeds_per_prompt: 2,
      size: 16,
      reference: fixture("images", "real"),
      metrics: ["fid"],
    });
    const r = await sweepCli([file, ...cpuFlags(weights)]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^generated 0 image\(s\), 0 already done, 2 failed$/m);
    expect(r.stderr).toMatch(/error\[E_SWEEP_FAILED\]: 2 image request\(s\) failed \(first: s2_neg-none\/0-0: .*out of memory/);
    const dir = path.join(tmp, "runs", "failing");
    const manifest = readFileSync(path.join(dir, "manifest.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(manifest.map((m) => m.status)).toEqual(["failed", "failed"]);
    expect(readFileSync(path.join(dir, "report", "summary.md"), "utf8")).toMatch(/\*\*2 image\(s\) failed\*\*/);
    expect(JSON.parse(readFileSync(path.join(dir, "report", "results.json"), "utf8")).failed).toHaveLength(2);
  });

  it("fails on a bad spec before doing anything, naming the field", async () => {
    const file = writeSpec("bad", { generator: { type: "analytic" }, prompts: ["a"], guidance_scales: [1, "x"], reference: "./real" });
    const r = await sweepCli([file, "--dry-run"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error[E_SWEEP_SPEC]: ${file}: spec.guidance_scales[1]: expected a number, got "x"\n`);
  });
});
