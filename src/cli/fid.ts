/** `diffeval fid --real A --fake B`: the main job. */
import { Command } from "commander";
import { computeFid, type FidResult } from "../pipeline/fid.js";
import { provenanceJson } from "../pipeline/source-pair.js";
import { addExtractionOptions, extractorOptions, provenanceLine, reportSkipped, subsetOptions, type ExtractionFlags } from "./common-options.js";
import { warnFormatMix } from "./format-warning.js";
import { imageProgress } from "./image-progress.js";

interface FidFlags extends ExtractionFlags {
  real: string;
  fake: string;
  json?: boolean;
  force?: boolean;
}

export function fidCommand(): Command {
  const cmd = new Command("fid")
    .description("Frechet Inception Distance (or FD in the --encoder's space) between two sources: images (folder, list, zip, tar, .npy/.npz array), a features file, a stats .npz or a reference name")
    .requiredOption("--real <source>", "reference images, features file, stats .npz or reference name")
    .requiredOption("--fake <source>", "generated images, features file, stats .npz or reference name")
    .option("--json", "print one JSON object instead of the human summary")
    .option("--force", "compare even when the sides disagree on protocol or weights");
  return addExtractionOptions(cmd).action(async (flags: FidFlags) => {
    const progress = imageProgress();
    const result = await computeFid({
      ...extractorOptions(flags),
      ...subsetOptions(flags),
      real: flags.real,
      fake: flags.fake,
      force: flags.force,
      onProgress: (side, done, total) => progress.update(side, done, total),
    });
    progress.finish();
    warnFormatMix(result, flags.real, flags.fake);
    reportSkipped(flags.real, result.skipped.real);
    reportSkipped(flags.fake, result.skipped.fake);
    process.stdout.write(flags.json ? `${JSON.stringify(jsonResult(result))}\n` : humanResult(result));
  });
}

/** `fid` for the Inception space; `fd` (and `encoder`) for another encoder's, as `metrics --json` names them. */
function jsonResult(r: FidResult): Record<string, unknown> {
  const { fid, route, skipped, ...rest } = r;
  const key = r.encoder && r.encoder !== "inception" ? "fd" : "fid";
  return { [key]: fid, ...provenanceJson(rest), route, skipped_real: skipped.real.length, skipped_fake: skipped.fake.length };
}

function humanResult(r: FidResult): string {
  const smallest = Math.min(r.n_real ?? Infinity, r.n_fake ?? Infinity);
  const note = smallest < 2048 ? " (fewer images than the 2048 feature dimensions: FID is biased upwards at small n)" : "";
  const label = r.encoder && r.encoder !== "inception" ? `FD (${r.encoder})` : "FID";
  return `${label}  ${r.fid.toFixed(4)}\n${provenanceLine(r, note)}`;
}
