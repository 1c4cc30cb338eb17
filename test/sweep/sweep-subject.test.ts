/**
 * A sweep with `subject` (issue 20): an analytic sweep (2 prompts x 2 seeds, s in {1, 3}, 32 px,
 * 4 steps) in DINOv2's space (dinov2-tiny) with the clip-tiny CLIP, against three fixture photos
 * as the subject's reference. Each cell's clip_i, dinov2_i and clip_t equal what `diffeval subject`
 * gives for the cell's folder (with a prompts CSV of its images), run in-process; the columns
 * reach results.csv and summary.md; a subject without `clip` and an empty reference are refused.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { sweepPlots } from "../../src/report/sweep-plots.js";
import { runSweep, type SweepOutcome } from "../../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../../src/sweep/spec.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";

const PROMPTS = ["red circle", "blue square"];
const clipDir = fixture("encoders", "clip-tiny");
const dinoDir = fixture("encoders", "dinov2-tiny");
let weights: string;
let tmp: string;
let reference: string;
let outcome: SweepOutcome;

interface CellJson {
  /** `images/<slug>`, relative to the output folder. */
  fake: string;
  metrics: Record<string, number>;
}

function subjectSpec(over: Record<string, unknown>, output: string) {
  return parseSweepSpec(
    {
      name: "subject",
      generator: { type: "analytic", steps: 4 },
      prompts: PROMPTS,
      guidance_scales: [1, 3],
      seeds_per_prompt: 2,
      size: 32,
      steps: 4,
      reference: { source: "analytic:real", count: 8, seed: 1 },
      metrics: ["pairwise"],
      encoder: "dinov2",
      encoder_weights: dinoDir,
      clip: { weights: clipDir },
      subject: { reference: "subject" },
      output,
      ...over,
    },
    { baseDir: tmp },
  );
}

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-sweep-subject-"));
  reference = path.join(tmp, "subject");
  mkdirSync(reference, { recursive: true });
  for (const name of ["real_0000.png", "real_0001.png", "real_0002.png"]) copyFileSync(fixture("images", "real", name), path.join(reference, name));
  mkdirSync(path.join(tmp, "empty"), { recursive: true });
  outcome = await runSweep({ spec: subjectSpec({}, "out"), weights, device: "cpu", threads: 0 });
}, 180_000);

describe("spec.subject", () => {
  it("resolves its reference against the spec's folder and needs a clip field", () => {
    expect(subjectSpec({}, "o").subject).toEqual({ reference: path.join(tmp, "subject") });
    const refused = (over: Record<string, unknown>) => {
      try {
        subjectSpec(over, "o");
      } catch (e) {
        return isDiffevalError(e, "E_SWEEP_SPEC") ? e.message : `other: ${String(e)}`;
      }
      return "accepted";
    };
    expect(refused({ clip: undefined })).toMatch(/^spec\.subject: needs a "clip" field/);
    expect(refused({ subject: {} })).toMatch(/^spec\.subject\.reference: missing/);
    expect(refused({ subject: { reference: "subject", weights: "x" } })).toMatch(/^spec\.subject\.weights: unknown field/);
  });

  it("an empty reference folder stops the sweep before any image is generated, naming the folder", async () => {
    const err = await runSweep({ spec: subjectSpec({ subject: { reference: "empty" } }, "out-empty"), weights, device: "cpu", threads: 0 }).catch((e) => e);
    expect(isDiffevalError(err, "E_EMPTY_SOURCE"), String(err)).toBe(true);
    expect(err.message).toContain(`spec.subject.reference: ${path.join(tmp, "empty")}`);
    expect(outcome.generated).toBe(8);
  });
});

describe("a sweep with a subject", () => {
  it("gives each cell the clip_i, dinov2_i and clip_t of `diffeval subject` on the cell's folder", async () => {
    const cells = JSON.parse(readFileSync(outcome.report!.json, "utf8")).cells as CellJson[];
    expect(cells).toHaveLength(2);
    for (const cell of cells) {
      const folder = path.join(outcome.spec.output, cell.fake);
      const slug = path.basename(cell.fake);
      // The cell's images are `<prompt-index>-<seed>.png`: each one's prompt by its index.
      const csv = path.join(tmp, `${slug}-prompts.csv`);
      const files = readdirSync(folder).filter((f) => f.endsWith(".png"));
      expect(files.sort()).toEqual(["0-0.png", "0-1.png", "1-0.png", "1-1.png"]);
      writeFileSync(csv, `image,prompt\n${files.map((f) => `${path.join(folder, f)},${PROMPTS[Number(f[0])]}`).join("\n")}\n`);
      const r = await runCli(["subject", "--reference", reference, "--images", folder, "--prompts", csv, "--clip-weights", clipDir, "--dinov2-weights", dinoDir, "--device", "cpu", "--threads", "0", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const cli = JSON.parse(r.stdout);
      expect(cli.n_images).toBe(4);
      for (const key of ["clip_i", "dinov2_i", "clip_t"]) {
        expect(Number.isFinite(cell.metrics[key]), key).toBe(true);
        expect(Math.abs(cell.metrics[key] - cli[key]), `${slug} ${key}`).toBeLessThan(1e-9);
      }
    }
    // The two guidance scales give different images, so different subject fidelity.
    expect(cells[0].metrics.clip_i).not.toBe(cells[1].metrics.clip_i);
  });

  it("writes the columns to results.csv and the summary table", () => {
    const [header, ...rows] = readFileSync(outcome.report!.csv, "utf8").trim().split("\n");
    const cols = header.split(",");
    for (const key of ["clip_i", "dinov2_i", "clip_t"]) {
      expect(cols).toContain(key);
      for (const row of rows) expect(Number.isFinite(Number(row.split(",")[cols.indexOf(key)])), key).toBe(true);
    }
    const summary = readFileSync(outcome.report!.markdown, "utf8");
    for (const h of ["CLIP-I", "DINOv2-I", "CLIP-T"]) expect(summary).toContain(h);
  });

  it("plots subject and prompt fidelity against an extra axis (e.g. a LoRA's weight)", () => {
    // The same cells as if they were a `lora` axis's values: the axis plot takes the subject panels.
    const r = outcome.results!;
    const withAxis = { ...r, axes: ["lora"], cells: r.cells.map((c, i) => ({ ...c, params: { ...c.params, lora: i } })) };
    const plot = sweepPlots(withAxis).find((p) => p.id === "plot-axis-lora");
    const text = JSON.stringify(plot?.spec);
    for (const t of ["subject fidelity (CLIP-I)", "subject fidelity (DINOv2-I)", "prompt fidelity (CLIP-T)"]) expect(text).toContain(t);
    const values = (plot!.spec as { data: { values: { clip_i: number | null }[] } }).data.values;
    expect(values.map((v) => v.clip_i)).toEqual(r.cells.map((c) => c.metrics.clip_i));
    // Without a subject there are no such panels.
    const plain = { ...withAxis, cells: withAxis.cells.map((c) => ({ ...c, metrics: { ...c.metrics, clip_i: undefined, dinov2_i: undefined, clip_t: undefined } })) };
    expect(JSON.stringify(sweepPlots(plain).find((p) => p.id === "plot-axis-lora")?.spec)).not.toContain("CLIP-I");
  });
});
