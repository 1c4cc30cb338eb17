/**
 * `diffeval sweep SPEC [--dry-run]`: generate an image set per cell of a guidance scale x
 * negative prompt (x any other axis) grid with a real generator, evaluate every cell, write the
 * report. Resumable: a re-run skips the images the manifest holds. Ctrl-C stops after the images
 * in flight (a second Ctrl-C quits at once).
 */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { runSweep, type SweepOutcome } from "../sweep/run-sweep.js";
import type { PlannedCell } from "../sweep/plan.js";
import type { RunProgress } from "../sweep/runner.js";
import { addModelOptions, extractorOptions, type ExtractionFlags } from "./common-options.js";
import { imageProgress } from "./image-progress.js";
import { formatProgressLine, type ProgressStream } from "./progress.js";

interface SweepFlags extends Omit<ExtractionFlags, "seed"> {
  dryRun?: boolean;
}

export function sweepCommand(): Command {
  const cmd = new Command("sweep")
    .description("generate images over guidance scales x negative prompts (x other axes), evaluate every cell, write a report")
    .argument("<spec>", "sweep spec (JSON)")
    .option("--dry-run", "print the plan (cells, images, requests) and exit");
  return addModelOptions(cmd).action(async (specFile: string, flags: SweepFlags) => {
      if (flags.dryRun) {
        process.stdout.write(planText(await runSweep({ spec: specFile, dryRun: true })));
        return;
      }
      await runWithInterrupt(specFile, flags);
    });
}

async function runWithInterrupt(specFile: string, flags: SweepFlags): Promise<void> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write("\nstopping after the images in flight (Ctrl-C again to quit now)\n");
    controller.abort();
  };
  process.on("SIGINT", onSigint);
  const images = sweepProgress(process.stderr);
  const extraction = imageProgress();
  try {
    const outcome = await runSweep({
      ...extractorOptions({ ...flags, seed: "0" }),
      spec: specFile,
      signal: controller.signal,
      onImages: (p) => images.update(p),
      onExtract: (what, done, total) => {
        images.finish();
        extraction.update(what, done, total);
      },
    });
    images.finish();
    extraction.finish();
    process.stdout.write(outcomeText(outcome));
    throwIfIncomplete(outcome);
  } finally {
    process.off("SIGINT", onSigint);
    images.finish();
    extraction.finish();
  }
}

/** A stopped run or failed images are errors (exit 2) after everything that is done was kept. */
function throwIfIncomplete(o: SweepOutcome): void {
  if (o.aborted) {
    throw new DiffevalError("E_SWEEP_ABORTED", `stopped; ${o.summary.done + o.generated} of ${o.summary.images} images are done and kept. Run the same command again to resume`);
  }
  if (o.failed.length) {
    const first = o.failed[0];
    throw new DiffevalError(
      "E_SWEEP_FAILED",
      `${o.failed.length} image request(s) failed (first: ${first.key}: ${first.error}); they are listed in manifest.jsonl and the report, ` +
        `and the cells were evaluated without them. Run the same command again to retry them`,
    );
  }
}

/** Plan as --dry-run prints it. */
export function planText(o: SweepOutcome): string {
  const { spec, plan, summary } = o;
  const dims = [`guidance_scales ${spec.guidanceScales.length}`, `negative_prompts ${spec.negativePrompts.length}`, ...spec.axes.map(([n, v]) => `${n} ${v.length}`)];
  const ref = spec.reference.count ? `${spec.reference.source} (${spec.reference.count} images, seed ${spec.reference.seed})` : spec.reference.source;
  const lines = [
    `sweep ${spec.name}: generator ${spec.generator.type}`,
    `cells: ${summary.cells} (${dims.join(" x ")})`,
    `images: ${summary.images} (${summary.cells} cells x ${plan.prompts.length} prompts x ${spec.seeds.length} seeds), ${summary.done} already done`,
    `requests: ${summary.requests} (one image per request)`,
    `size ${spec.width}x${spec.height}, steps ${spec.steps}; seeds ${seedText(spec.seeds)}`,
    `reference: ${ref}`,
    `metrics: ${spec.metrics.join(", ")}${spec.bootstrap ? `; bootstrap ${spec.bootstrap}` : ""}`,
    `output: ${spec.output}`,
    `report: ${spec.report}`,
    "",
    ...cellTable(o),
  ];
  return `${lines.join("\n")}\n`;
}

/** Cells listed by --dry-run (the rest are counted). */
export const MAX_TABLE_ROWS = 1000;

function seedText(seeds: number[]): string {
  const contiguous = seeds.every((s, i) => i === 0 || s === seeds[i - 1] + 1);
  if (contiguous && seeds.length > 2) return `${seeds[0]}..${seeds[seeds.length - 1]}`;
  return seeds.length > 20 ? `${seeds.slice(0, 20).join(", ")}, ... (${seeds.length} seeds)` : seeds.join(", ");
}

/**
 * One aligned row per cell. Linear in cells + images: the images are counted per cell in one
 * pass (filtering all images for every cell was cells x images, minutes for 100,000 cells), and
 * the widths found with a loop (Math.max(...column) passes every row as an argument); long
 * values cut (see shortText), and the first MAX_TABLE_ROWS cells listed: the output stays a
 * readable size however large the grid.
 */
function cellTable(o: SweepOutcome): string[] {
  const axes = o.spec.axes.map(([n]) => n);
  const header = ["cell", "cfg_scale", "w", "negative_prompt", ...axes, "images"];
  const perCell = new Map<PlannedCell, number>();
  for (const im of o.plan.images) perCell.set(im.cell, (perCell.get(im.cell) ?? 0) + 1);
  const rows = o.plan.cells.slice(0, MAX_TABLE_ROWS).map((c) => [
    c.slug,
    String(c.cfgScale),
    String(Number((c.cfgScale - 1).toFixed(10))),
    shortText(JSON.stringify(c.negativePrompt)),
    ...axes.map((a) => shortText(String(c.axes[a]))),
    String(perCell.get(c) ?? 0),
  ]);
  const all = [header, ...rows];
  const widths = header.map((h) => h.length);
  for (const r of all) r.forEach((cell, i) => (widths[i] = Math.max(widths[i], cell.length)));
  const lines = all.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
  const more = o.plan.cells.length - rows.length;
  return more > 0 ? [...lines, `... and ${more} more cells`] : lines;
}

/** A value cut to 40 characters: every row is padded to the widest, so one long negative prompt would widen them all. */
function shortText(s: string): string {
  return s.length > 40 ? `${s.slice(0, 39)}~` : s;
}

function outcomeText(o: SweepOutcome): string {
  const lines = [`generated ${o.generated} image(s), ${o.summary.done} already done, ${o.failed.length} failed`];
  if (o.report) lines.push(`report: ${o.report.html}`, `results: ${o.report.json}, ${o.report.csv}, ${o.report.markdown}`);
  return `${lines.join("\n")}\n`;
}

/**
 * The generation progress line: "cells 3/10 45 img / 100 img (45%) 1.2 img/s ETA 0:45", counting
 * only this run's images (skipped ones would make the rate a lie). On a TTY it updates in place;
 * elsewhere one line per finished cell, so CI logs show progress without carriage returns.
 */
export function sweepProgress(stream: ProgressStream & { isTTY?: boolean }, now: () => number = Date.now) {
  const start = now();
  let last: RunProgress | undefined;
  let lastDraw = -Infinity;
  let open = false;
  const line = (p: RunProgress, final: boolean) =>
    formatProgressLine({
      label: `cells ${p.cellsDone}/${p.cellsTotal}`,
      unit: "img",
      done: p.generated + p.failed,
      total: p.total - p.skipped,
      elapsedMs: now() - start,
      final,
    });
  return {
    update(p: RunProgress): void {
      const cellFinished = last !== undefined && p.cellsDone > last.cellsDone;
      last = p;
      if (stream.isTTY) {
        if (now() - lastDraw < 100 && !cellFinished) return;
        lastDraw = now();
        open = true;
        stream.write(`\r${line(p, false)}\x1b[K`);
      } else if (cellFinished) {
        stream.write(`${line(p, false)}\n`);
      }
    },
    finish(): void {
      if (!open || !last) return;
      open = false;
      stream.write(`\r${line(last, true)}\x1b[K\n`);
    },
  };
}
