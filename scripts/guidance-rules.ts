/**
 * `npm run guidance-rules`: the README's figure of CFG against classifier guidance on the analytic
 * generator, measured exactly (no feature network, so no weights needed): for each unconditional
 * model ("broad", the default, and "mixture", the class mixture) and each scale s, over every class
 * and DEMO_SEEDS seeds,
 * - fidelity: the mean log-density of each sample under its own class's exact data density,
 *   log p(x_0 | y) per pixel, which guidance raises (samples move to the class's modes);
 * - diversity: the mean RMS per-pixel distance between two samples of one class (seeds), which
 *   guidance lowers; (the exact class posterior p(y | x_0) is 1.000 for every cell here: the
 *   classes are well apart at t = 0, so it does not tell the rules apart and is not plotted);
 * - the RMS per-pixel difference between the CFG and the classifier-guidance sample of the same
 *   class and seed (values in [-1, 1]).
 * Writes docs/guidance-rules.svg and prints the numbers as a Markdown table.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  alphaBar,
  analyticModel,
  mixtureClassifier,
  noisedLogDensity,
  sampleWith,
  type GaussianMixture,
  type GuidanceRule,
} from "../src/generators/analytic/index.js";
import { renderPlotSvg, type PlotSpec } from "../src/report/plot.js";

const SCALES = [1, 2, 3, 5, 9];
const STEPS = 20;
const SEEDS = Number(process.env.DEMO_SEEDS ?? 8);

interface Row {
  unconditional: "broad" | "mixture";
  guidance: "cfg" | "classifier";
  s: number;
  fidelity: number;
  diversity: number;
  rms_difference: number;
}

function rms(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum / a.length);
}

function rows(): Row[] {
  const model = analyticModel();
  const classifier = mixtureClassifier(
    model.classes.map((c) => c.mixture),
    model.classes.map(() => 1),
  );
  const unconditionals: [Row["unconditional"], GaussianMixture][] = [
    ["broad", model.prior],
    ["mixture", model.labelled],
  ];
  const out: Row[] = [];
  for (const [unconditional, uncond] of unconditionals) {
    for (const s of SCALES) {
      const samples = { cfg: [] as Float64Array[][], classifier: [] as Float64Array[][] };
      const diffs: number[] = [];
      for (let y = 0; y < model.classes.length; y++) {
        const draw = (seed: number, rule: GuidanceRule) => sampleWith("ddim", { cond: model.classes[y].mixture, uncond, scale: s, steps: STEPS, seed, guidance: rule });
        const seeds = Array.from({ length: SEEDS }, (_, seed) => seed);
        samples.cfg.push(seeds.map((seed) => draw(seed, { kind: "cfg" })));
        samples.classifier.push(seeds.map((seed) => draw(seed, { kind: "classifier", classifier, target: y })));
        seeds.forEach((seed) => diffs.push(rms(samples.cfg[y][seed], samples.classifier[y][seed])));
      }
      for (const guidance of ["cfg", "classifier"] as const) {
        const perClass = samples[guidance];
        const fidelity = perClass.flatMap((xs, y) => xs.map((x) => noisedLogDensity(x, alphaBar(0), model.classes[y].mixture) / model.dim));
        const diversity = perClass.flatMap((xs) => xs.flatMap((a, i) => xs.slice(i + 1).map((b) => rms(a, b))));
        out.push({ unconditional, guidance, s, fidelity: mean(fidelity), diversity: mean(diversity), rms_difference: mean(diffs) });
      }
    }
  }
  return out;
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** One line chart against s: a line per rule (colour) and unconditional model (dash). */
function panel(title: string, field: keyof Row, axis: string) {
  return {
    title,
    width: 220,
    height: 180,
    mark: { type: "line" as const, point: true },
    encoding: {
      x: { field: "s", type: "quantitative" as const, title: "guidance scale s" },
      y: { field, type: "quantitative" as const, title: axis, scale: { zero: false } },
      color: { field: "guidance", type: "nominal" as const },
      strokeDash: { field: "unconditional", type: "nominal" as const },
    },
  };
}

async function main(): Promise<void> {
  const data = rows();
  const svg = await renderPlotSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "Analytic generator: CFG against classifier guidance (exact, no feature network)",
    data: { values: data },
    hconcat: [
      panel("fidelity: log p(x0 | y) per pixel", "fidelity", "log-density per pixel"),
      panel("diversity: RMS distance between seeds", "diversity", "RMS per pixel ([-1, 1] scale)"),
      { ...panel("CFG vs classifier sample, RMS difference", "rms_difference", "RMS per pixel ([-1, 1] scale)"), transform: [{ filter: "datum.guidance === 'cfg'" }] },
    ],
  } as PlotSpec);
  const file = path.join("docs", "guidance-rules.svg");
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, svg);
  const fmt = (x: number) => (x === 0 ? "0" : Math.abs(x) < 1e-4 ? x.toExponential(1) : x.toFixed(3));
  const lines = ["| unconditional | s | fidelity CFG / classifier | diversity CFG / classifier | RMS difference |", "|---|---|---|---|---|"];
  for (const r of data.filter((d) => d.guidance === "cfg")) {
    const c = data.find((d) => d.unconditional === r.unconditional && d.s === r.s && d.guidance === "classifier")!;
    lines.push(`| ${r.unconditional} | ${r.s} | ${fmt(r.fidelity)} / ${fmt(c.fidelity)} | ${fmt(r.diversity)} / ${fmt(c.diversity)} | ${fmt(r.rms_difference)} |`);
  }
  process.stdout.write(`${lines.join("\n")}\nwrote ${file} (${SEEDS} seeds per class)\n`);
}

await main();
