/**
 * `diffeval control --pairs pairs.csv | --images DIR --controls DIR [--canny LOW,HIGH]
 * [--control-is-edges] [--json]`: ControlNet control adherence, the mean edge F1 of generated images
 * against their control images (pipeline/control.ts, metrics/control-f1.ts).
 */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { DEFAULT_CANNY } from "../metrics/control-f1.js";
import { pairFoldersByName, readControlPairsCsv, runControl, type ControlReport } from "../pipeline/control.js";

interface ControlFlags {
  pairs?: string;
  images?: string;
  controls?: string;
  canny: string;
  controlIsEdges?: boolean;
  json?: boolean;
}

export function controlCommand(): Command {
  return new Command("control")
    .description("control adherence (ControlNet): pixel F1 of each generated image's Canny edges against its control image's, and the mean")
    .option("--pairs <csv>", "CSV with a header and columns image,control (paths relative to the CSV)")
    .option("--images <dir>", "generated images, matched to --controls by file name")
    .option("--controls <dir>", "control images, one per generated image, of the same file name")
    .option("--canny <low,high>", "cv2.Canny thresholds (ControlNet's canny annotator default)", DEFAULT_CANNY.join(","))
    .option("--control-is-edges", "the controls are edge maps already: binarise them (nonzero = edge) instead of running Canny")
    .option("--json", "print one JSON object instead of the human summary")
    .action(async (flags: ControlFlags) => {
      const [low, high] = parseCanny(flags.canny);
      const pairs = await pairsOf(flags);
      const r = await runControl(pairs, { low, high, controlIsEdges: flags.controlIsEdges, warn: (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : humanReport(r));
    });
}

function pairsOf(flags: ControlFlags) {
  const folders = flags.images !== undefined || flags.controls !== undefined;
  if (flags.pairs !== undefined && folders) throw new DiffevalError("E_USAGE", "give either --pairs or --images with --controls, not both");
  if (flags.pairs !== undefined) return readControlPairsCsv(flags.pairs);
  if (flags.images === undefined || flags.controls === undefined) {
    throw new DiffevalError("E_USAGE", "give --pairs pairs.csv, or --images DIR with --controls DIR");
  }
  return pairFoldersByName(flags.images, flags.controls);
}

/** `--canny LOW,HIGH`: two non-negative numbers. */
export function parseCanny(value: string): [number, number] {
  const parts = value.split(",").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.length !== 2 || parts.some((s) => s === "") || nums.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new DiffevalError("E_USAGE", `--canny must be two non-negative numbers LOW,HIGH (e.g. 100,200), got '${value}'`);
  }
  return [nums[0], nums[1]];
}

function humanReport(r: ControlReport): string {
  return `control_f1  ${r.control_f1.toFixed(4)}\nCanny ${r.canny.join(",")}, n ${r.n}\n`;
}
