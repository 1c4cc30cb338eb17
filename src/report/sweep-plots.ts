/**
 * The sweep report's plots as Vega-Lite specs (rendered to SVG by plot.ts): FID against the
 * guidance scale, one line per negative prompt (and per value of any other axis), with bootstrap
 * 95% intervals as error bars when there are any; precision and recall against the scale;
 * diversity against the scale; the FID vs precision front with each point labelled by its scale;
 * FID against CLIP score when the cells have one (the text-alignment/fidelity trade-off across
 * guidance scales, each point labelled by its scale); FID against the cost per image (seconds,
 * and model evaluations where the generator counts them); and, for every extra axis, the metrics
 * against that axis.
 */
import type { CellParams } from "../gate/results.js";
import type { PlotSpec } from "./plot.js";
import { pairwiseOf, pointOf, spreadOf, type SweepCellResult, type SweepResults } from "./sweep-results.js";

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const PANEL = { width: 340, height: 210 };

export interface NamedPlot {
  id: string;
  title: string;
  spec: PlotSpec;
}

/** One row per cell, the fields every plot reads (null where a metric is missing). */
interface PlotRow {
  /** The cell's slug: the interactive report maps a clicked point to that cell's contact sheet. */
  cell: string;
  s: number;
  w: number;
  series: string;
  label: string;
  fid: number | null;
  fid_lo: number | null;
  fid_hi: number | null;
  precision: number | null;
  recall: number | null;
  is: number | null;
  vendi: number | null;
  pairwise: number | null;
  clip_score: number | null;
  neg_clip: number | null;
  neg_clip_delta: number | null;
  seconds_per_image: number | null;
  model_evals_per_image: number | null;
  control_f1: number | null;
  clip_i: number | null;
  dinov2_i: number | null;
  clip_t: number | null;
  [axis: string]: unknown;
}

export function sweepPlots(r: SweepResults): NamedPlot[] {
  const rows = plotRows(r, (p) => seriesLabel(p, r.axes));
  const series = [...new Set(rows.map((x) => x.series))];
  const plots: NamedPlot[] = [
    { id: "plot-fid", title: "FID against guidance scale", spec: fidVsScale(rows, series) },
    { id: "plot-pr", title: "Precision and recall against guidance scale", spec: panels(rows, series, [["precision", "precision"], ["recall", "recall"]]) },
    { id: "plot-diversity", title: "Diversity against guidance scale", spec: panels(rows, series, diversityFields(rows)) },
    { id: "plot-front", title: "FID against precision: the fidelity/diversity front", spec: front(rows, series) },
  ];
  if (rows.some((x) => x.clip_score !== null && x.fid !== null)) {
    plots.push({ id: "plot-clip", title: "FID against CLIP score", spec: fidAgainst(rows, series, "clip_score", "CLIP score (higher: closer to the prompt)") });
  }
  if (rows.some((x) => x.control_f1 !== null && x.fid !== null)) {
    const title = "control F1 (higher: edges follow the control)";
    plots.push({ id: "plot-control", title: "FID against control adherence", spec: fidAgainst(rows, series, "control_f1", title) });
  }
  if (rows.some((x) => x.neg_clip !== null)) {
    // One line per negative prompt (cells without one have no neg_clip: their series is left out of the legend).
    const negSeries = series.filter((name) => rows.some((x) => x.series === name && x.neg_clip !== null));
    const fields: [string, string][] = [["neg_clip", "CLIP score against the negative prompt"], ["neg_clip_delta", "change from no negative prompt (lower: pushed away)"]];
    plots.push({ id: "plot-negclip", title: "Negative-prompt adherence against guidance scale", spec: panels(rows, negSeries, fields.filter(([f]) => rows.some((x) => x[f] !== null))) });
  }
  if (rows.some((x) => x.seconds_per_image !== null && x.fid !== null)) {
    plots.push({ id: "plot-cost", title: "Quality against cost: FID against seconds and model evaluations per image", spec: fidVsCost(rows, series) });
  }
  for (const axis of r.axes) {
    const axisRows = plotRows(r, (p) => seriesLabel(p, r.axes, axis));
    const axisSeries = [...new Set(axisRows.map((x) => x.series))];
    plots.push({ id: `plot-axis-${axis}`, title: `Metrics against ${axis}`, spec: axisPanels(axisRows, axisSeries, axis, r) });
  }
  return plots;
}

/** What a series is: every parameter but the one on the x axis (cfg_scale unless `x` says otherwise). */
export function seriesLabel(params: CellParams, axes: string[], x = "cfg_scale"): string {
  const parts: string[] = [];
  if (x !== "cfg_scale") parts.push(`s=${params.cfg_scale}`);
  parts.push(`negative: ${negativeLabel(params.negative_prompt as string)}`);
  for (const a of axes) if (a !== x) parts.push(`${a}=${String(params[a])}`);
  return parts.join(", ");
}

export function negativeLabel(text: string): string {
  return text === "" ? "(none)" : JSON.stringify(text);
}

function plotRows(r: SweepResults, series: (p: CellParams) => string): PlotRow[] {
  return r.cells.map((c: SweepCellResult) => {
    const m = c.metrics;
    const s = c.params.cfg_scale as number;
    return {
      // Axis values under plain keys: Vega-Lite reads dots in a field name as nested access.
      ...Object.fromEntries(r.axes.map((a, i) => [`ax${i}`, c.params[a]])),
      cell: c.slug,
      s,
      w: Number((s - 1).toFixed(10)),
      series: series(c.params),
      label: `s=${s}`,
      fid: pointOf(m.fid) ?? null,
      fid_lo: spreadOf(m.fid, 0) ?? null,
      fid_hi: spreadOf(m.fid, 1) ?? null,
      precision: pointOf(m.precision) ?? null,
      recall: pointOf(m.recall) ?? null,
      is: pointOf(m.is) ?? null,
      vendi: pointOf(m.vendi) ?? null,
      pairwise: pairwiseOf(m) ?? null,
      clip_score: pointOf(m.clip_score) ?? null,
      neg_clip: pointOf(m.neg_clip) ?? null,
      neg_clip_delta: pointOf(m.neg_clip_delta) ?? null,
      seconds_per_image: pointOf(m.seconds_per_image) ?? null,
      model_evals_per_image: pointOf(m.model_evals_per_image) ?? null,
      control_f1: pointOf(m.control_f1) ?? null,
      clip_i: pointOf(m.clip_i) ?? null,
      dinov2_i: pointOf(m.dinov2_i) ?? null,
      clip_t: pointOf(m.clip_t) ?? null,
    };
  });
}

const scaleX = { field: "s", type: "quantitative", title: "guidance scale s (w = s - 1)", scale: { zero: false } } as const;

function colorOf(series: string[]) {
  return { field: "series", type: "nominal", title: null, scale: { domain: series } } as const;
}

function valid(field: string) {
  return [{ filter: `isValid(datum[${JSON.stringify(field)}])` }];
}

function fidVsScale(rows: PlotRow[], series: string[]): PlotSpec {
  const color = colorOf(series);
  const layers: object[] = [
    {
      transform: valid("fid"),
      mark: { type: "line", point: { size: 50, filled: true } },
      encoding: { x: scaleX, y: { field: "fid", type: "quantitative", title: "FID", scale: { zero: false } }, color, tooltip: [{ field: "label" }, { field: "fid" }] },
    },
  ];
  if (rows.some((x) => x.fid_lo !== null)) {
    layers.push({
      transform: valid("fid_lo"),
      mark: { type: "rule" },
      encoding: { x: scaleX, y: { field: "fid_lo", type: "quantitative" }, y2: { field: "fid_hi" }, color },
    });
  }
  return { $schema: SCHEMA, ...PANEL, width: 520, height: 280, data: { values: rows }, layer: layers } as PlotSpec;
}

function linePanel(field: string, title: string, series: string[], x: object = scaleX): object {
  return {
    ...PANEL,
    transform: valid(field),
    mark: { type: "line", point: { size: 40, filled: true } },
    encoding: { x, y: { field, type: "quantitative", title, scale: { zero: false } }, color: colorOf(series) },
  };
}

function panels(rows: PlotRow[], series: string[], fields: [string, string][]): PlotSpec {
  return { $schema: SCHEMA, data: { values: rows }, hconcat: fields.map(([f, t]) => linePanel(f, t, series)) } as PlotSpec;
}

function diversityFields(rows: PlotRow[]): [string, string][] {
  const fields: [string, string][] = [];
  if (rows.some((x) => x.pairwise !== null)) fields.push(["pairwise", "per-prompt mean pairwise distance"]);
  if (rows.some((x) => x.vendi !== null)) fields.push(["vendi", "Vendi score"]);
  // Without diversity metrics the panel still shows recall, the diversity half of precision/recall.
  return fields.length ? fields : [["recall", "recall"]];
}

/** FID against precision (or IS when precision was not computed), each point labelled by its scale. */
function front(rows: PlotRow[], series: string[]): PlotSpec {
  const yField = rows.some((x) => x.precision !== null) ? "precision" : "is";
  const x = { field: "fid", type: "quantitative", title: "FID (lower is better)", scale: { zero: false } };
  const y = { field: yField, type: "quantitative", title: yField === "is" ? "Inception Score" : "precision", scale: { zero: false } };
  return {
    $schema: SCHEMA,
    width: 520,
    height: 300,
    data: { values: rows },
    transform: [...valid("fid"), ...valid(yField)],
    layer: [
      { mark: { type: "point", filled: true, size: 60 }, encoding: { x, y, color: colorOf(series), tooltip: [{ field: "label" }, { field: "series" }] } },
      { mark: { type: "text", dx: 8, dy: -8, fontSize: 10, align: "left" }, encoding: { x, y, text: { field: "label" }, color: colorOf(series) } },
    ],
  } as PlotSpec;
}

/**
 * FID against another quality (CLIP score, control F1), one line per series (negative prompt,
 * other axes) through the scales in order, each point labelled s=: the trade-off a user picks s on.
 */
function fidAgainst(rows: PlotRow[], series: string[], field: "clip_score" | "control_f1", title: string): PlotSpec {
  const x = { field, type: "quantitative", title, scale: { zero: false } };
  const y = { field: "fid", type: "quantitative", title: "FID (lower is better)", scale: { zero: false } };
  const color = colorOf(series);
  return {
    $schema: SCHEMA,
    width: 520,
    height: 300,
    data: { values: rows },
    transform: [...valid("fid"), ...valid(field)],
    layer: [
      {
        mark: { type: "line", point: { size: 50, filled: true } },
        encoding: { x, y, color, order: { field: "s", type: "quantitative" }, tooltip: [{ field: "label" }, { field: "series" }, { field }, { field: "fid" }] },
      },
      { mark: { type: "text", dx: 8, dy: -8, fontSize: 10, align: "left" }, encoding: { x, y, text: { field: "label" }, color } },
    ],
  } as PlotSpec;
}

/**
 * FID against what each image cost: seconds per image (every generator), and denoiser evaluations
 * per image beside it when the generator counted them (built-in generators: guidance doubles them).
 */
function fidVsCost(rows: PlotRow[], series: string[]): PlotSpec {
  const costs: [string, string][] = [["seconds_per_image", "seconds per image"]];
  if (rows.some((x) => x.model_evals_per_image !== null && x.fid !== null)) costs.push(["model_evals_per_image", "model evaluations per image"]);
  const y = { field: "fid", type: "quantitative", title: "FID (lower is better)", scale: { zero: false } };
  const color = colorOf(series);
  const panel = ([field, title]: [string, string]) => {
    const x = { field, type: "quantitative", title, scale: { zero: false } };
    return {
      ...PANEL,
      transform: [...valid("fid"), ...valid(field)],
      layer: [
        { mark: { type: "point", filled: true, size: 60 }, encoding: { x, y, color, tooltip: [{ field: "label" }, { field: "series" }, { field }, { field: "fid" }] } },
        { mark: { type: "text", dx: 8, dy: -8, fontSize: 10, align: "left" }, encoding: { x, y, text: { field: "label" }, color } },
      ],
    };
  };
  return { $schema: SCHEMA, data: { values: rows }, hconcat: costs.map(panel) } as PlotSpec;
}

function axisPanels(rows: PlotRow[], series: string[], axis: string, r: SweepResults): PlotSpec {
  const numeric = r.cells.every((c) => typeof c.params[axis] === "number");
  const field = `ax${r.axes.indexOf(axis)}`;
  const x = numeric
    ? { field, type: "quantitative", title: axis, scale: { zero: false } }
    : { field, type: "ordinal", title: axis, sort: null };
  // control_f1 (a spec with a control image): control adherence against control_weight and the other axes;
  // clip_i, dinov2_i, clip_t (a spec with a subject): subject and prompt fidelity against e.g. a LoRA's weight.
  const fields: [string, string][] = [
    ["fid", "FID"], ["precision", "precision"], ["recall", "recall"], ["pairwise", "per-prompt pairwise distance"], ["control_f1", "control adherence (edge F1)"],
    ["clip_i", "subject fidelity (CLIP-I)"], ["dinov2_i", "subject fidelity (DINOv2-I)"], ["clip_t", "prompt fidelity (CLIP-T)"],
  ];
  const found = fields.filter(([f]) => rows.some((row) => row[f] !== null));
  const present = found.length ? found : fields.slice(0, 1);
  return { $schema: SCHEMA, data: { values: rows }, hconcat: present.map(([f, t]) => linePanel(f, t, series, x)) } as PlotSpec;
}
