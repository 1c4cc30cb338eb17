/**
 * A sweep's results as data, and the two machine-readable files made from it:
 * `results.json` in the gate's schema (gate/results.ts, `diffeval-sweep-results/1`) and
 * `results.csv`, one row per cell. The report folder owns these shapes; the sweep fills them.
 */
import { SWEEP_SCHEMA, type CellParams } from "../gate/results.js";

/** The guidance conventions, stated in every report (README "Sweeps"). */
export const GUIDANCE_CONVENTIONS =
  "s = A1111 cfg_scale = ComfyUI cfg = diffusers guidance_scale, in eps = eps_uncond + s (eps_cond - eps_uncond); " +
  "Ho & Salimans write the same rule with w = s - 1. A negative prompt takes the unconditional branch's place. " +
  "diffusers skips the unconditional pass when s <= 1, so there a negative prompt does nothing; " +
  "A1111 and ComfyUI do not skip it (ComfyUI only at exactly 1.0).";

export interface SweepCellResult {
  /** cfg_scale, negative_prompt, then each extra axis. */
  params: CellParams;
  /** The cell's folder name under images/. */
  slug: string;
  /** Images evaluated. */
  n: number;
  /** Images planned but not done (failed requests). */
  missing: number;
  /** Keys and shapes of `diffeval metrics --json`. */
  metrics: Record<string, unknown>;
  skipped: Record<string, string>;
  seconds: number;
  /** A few of the cell's image files for the contact sheet (absolute paths). */
  samples: string[];
  /** The cell's metrics prompt by prompt (results.json `per_prompt`, per_prompt.csv), in prompt order. */
  perPrompt?: PromptResult[];
}

/**
 * One prompt's images within a cell: the precision of those images against the reference (the
 * cell's k), their CLIP score against the prompt (with `clip` in the spec), and the per-prompt
 * diversity the cell's metrics computed (`*_by_group`); each absent where the cell has none.
 */
export interface PromptResult {
  prompt_index: number;
  prompt: string;
  n: number;
  precision?: number;
  clip_score?: number;
  mean_pairwise_distance?: number;
  vendi?: number;
  /** The prompt's images in this cell (absolute paths; not written to results.json). */
  files: string[];
}

/** The per-prompt values, in the order of per_prompt.csv's columns after the cell's. */
export const PROMPT_METRICS = ["precision", "clip_score", "mean_pairwise_distance", "vendi"] as const;

export interface SweepResults {
  name: string;
  generator: string;
  /** The feature space; recorded only when it is not inception (as in `metrics --json`). */
  encoder?: string;
  protocol: string;
  weights_sha256: string;
  version: string;
  device?: string;
  /** The reference side as the spec names it, and its image count (null for stats without n). */
  real: string;
  n_real: number | null;
  /** Extra axes besides cfg_scale and negative_prompt, in spec order. */
  axes: string[];
  prompts: { text: string; image_id?: number | string }[];
  seeds: number[];
  metrics: string[];
  bootstrap: number;
  cells: SweepCellResult[];
  failed: { key: string; error: string }[];
  seconds: number;
}

/** results.json: the gate's sweep schema, plus context keys the gate ignores. */
export function sweepResultsJson(r: SweepResults): Record<string, unknown> {
  return {
    schema: SWEEP_SCHEMA,
    protocol: r.protocol,
    weights_sha256: r.weights_sha256,
    version: r.version,
    name: r.name,
    generator: r.generator,
    real: r.real,
    n_real: r.n_real,
    conventions: GUIDANCE_CONVENTIONS,
    ...(r.device ? { device: r.device } : {}),
    axes: ["cfg_scale", "negative_prompt", ...r.axes],
    prompts: r.prompts,
    seeds: r.seeds,
    bootstrap: r.bootstrap,
    cells: r.cells.map((c) => ({
      params: c.params,
      w: wOf(c),
      metrics: c.metrics,
      fake: `images/${c.slug}`,
      n_fake: c.n,
      n_real: r.n_real,
      seconds: Number(c.seconds.toFixed(3)),
      ...(c.missing ? { missing: c.missing } : {}),
      ...(Object.keys(c.skipped).length ? { skipped: c.skipped } : {}),
      ...(c.perPrompt ? { per_prompt: c.perPrompt.map(({ files: _files, ...row }) => row) } : {}),
    })),
    failed: r.failed,
    seconds: Number(r.seconds.toFixed(3)),
  };
}

/** Ho & Salimans' guidance weight of a cell: w = s - 1. */
export function wOf(c: Pick<SweepCellResult, "params">): number {
  return Number(((c.params.cfg_scale as number) - 1).toFixed(10));
}

/** The CSV's leading columns, in this order (the list), then the axes, then the spreads. */
export const CSV_COLUMNS = ["cfg_scale", "w", "negative_prompt", "n", "fid", "kid", "precision", "recall", "density", "coverage", "is", "vendi", "pairwise_distance"] as const;

const SPREAD_COLUMNS = [
  "missing", "fid_std", "fid_ci95_low", "fid_ci95_high", "kid_std", "precision_ci95_low", "precision_ci95_high", "recall_ci95_low",
  "recall_ci95_high", "is_std", "pairwise_distance_all", "cell",
];

/**
 * After the columns: CLIP score of each cell's images against their prompts, and against
 * the cell's negative prompt with its change from the cell without one (empty without `clip` in
 * the spec; the neg_ columns also where a cell has no negative prompt or no such counterpart).
 */
const CLIP_COLUMNS = ["clip_score", "neg_clip", "neg_clip_delta"];

/** What each cell's images cost (metrics/cost.ts): empty model_evals_per_image for generators that do not count their passes. */
const COST_COLUMNS = ["model_evals_per_image", "seconds_per_image"];

/** Control adherence of each cell's images (metrics/control-f1.ts): empty without a `control` field in the spec. */
const CONTROL_COLUMNS = ["control_f1"];

/** Subject fidelity (clip_i, dinov2_i) and prompt fidelity (clip_t) (sweep/subject-scores.ts): empty without a `subject` field in the spec. */
const SUBJECT_COLUMNS = ["clip_i", "dinov2_i", "clip_t"];

/** results.csv: one row per cell (RFC 4180 quoting; empty where a metric was not computed). */
export function sweepResultsCsv(r: SweepResults): string {
  const header = [...CSV_COLUMNS, ...CLIP_COLUMNS, ...COST_COLUMNS, ...CONTROL_COLUMNS, ...SUBJECT_COLUMNS, ...r.axes, ...SPREAD_COLUMNS];
  const rows = r.cells.map((c) => {
    const m = c.metrics;
    const values: Record<string, unknown> = {
      cfg_scale: c.params.cfg_scale,
      w: wOf(c),
      negative_prompt: c.params.negative_prompt,
      n: c.n,
      fid: pointOf(m.fid),
      kid: pointOf(m.kid),
      precision: pointOf(m.precision),
      recall: pointOf(m.recall),
      density: pointOf(m.density),
      coverage: pointOf(m.coverage),
      is: pointOf(m.is),
      vendi: pointOf(m.vendi),
      pairwise_distance: pairwiseOf(m),
      clip_score: pointOf(m.clip_score),
      neg_clip: pointOf(m.neg_clip),
      neg_clip_delta: pointOf(m.neg_clip_delta),
      model_evals_per_image: pointOf(m.model_evals_per_image),
      seconds_per_image: pointOf(m.seconds_per_image),
      control_f1: pointOf(m.control_f1),
      clip_i: pointOf(m.clip_i),
      dinov2_i: pointOf(m.dinov2_i),
      clip_t: pointOf(m.clip_t),
      missing: c.missing,
      fid_std: spreadOf(m.fid, "std"),
      fid_ci95_low: spreadOf(m.fid, 0),
      fid_ci95_high: spreadOf(m.fid, 1),
      kid_std: spreadOf(m.kid, "std"),
      precision_ci95_low: spreadOf(m.precision, 0),
      precision_ci95_high: spreadOf(m.precision, 1),
      recall_ci95_low: spreadOf(m.recall, 0),
      recall_ci95_high: spreadOf(m.recall, 1),
      is_std: spreadOf(m.is, "std"),
      pairwise_distance_all: pointOf(m.mean_pairwise_distance),
      cell: c.slug,
      ...Object.fromEntries(r.axes.map((a) => [a, c.params[a]])),
    };
    return header.map((h) => csvField(values[h]));
  });
  return [header.join(","), ...rows.map((row) => row.join(","))].join("\n") + "\n";
}

/** per_prompt.csv: one row per cell and prompt (empty where a value was not computed). */
export function perPromptCsv(r: SweepResults): string {
  const header = ["cell", "cfg_scale", "w", "negative_prompt", ...r.axes, "prompt_index", "prompt", "n", ...PROMPT_METRICS];
  const rows = r.cells.flatMap((c) =>
    (c.perPrompt ?? []).map((p) => {
      const values: Record<string, unknown> = { ...c.params, ...p, cell: c.slug, w: wOf(c) };
      return header.map((h) => csvField(values[h])).join(",");
    }),
  );
  return [header.join(","), ...rows].join("\n") + "\n";
}

/** The number of a metric value: itself, or the mean of an estimate; undefined when absent. */
export function pointOf(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (v && typeof v === "object" && typeof (v as { mean?: unknown }).mean === "number") return (v as { mean: number }).mean;
  return undefined;
}

/** A bootstrap std, or one end of the 95% interval. */
export function spreadOf(v: unknown, which: "std" | 0 | 1): number | undefined {
  if (!v || typeof v !== "object") return undefined;
  const e = v as { std?: number; ci95?: [number, number] };
  return which === "std" ? e.std : e.ci95?.[which];
}

/** Per-prompt diversity (mean over prompts of the within-prompt mean pairwise distance), else over all images. */
export function pairwiseOf(m: Record<string, unknown>): number | undefined {
  const byGroup = m.mean_pairwise_distance_by_group as { meanOverGroups?: number } | undefined;
  return byGroup?.meanOverGroups ?? pointOf(m.mean_pairwise_distance);
}

function csvField(v: unknown): string {
  if (v === undefined || v === null) return "";
  const s = typeof v === "number" ? (Number.isFinite(v) ? String(v) : String(v)) : String(v);
  return /[",\n\r]/.test(s) || (typeof v === "string" && /^\s|\s$/.test(s)) ? `"${s.replace(/"/g, '""')}"` : s;
}
