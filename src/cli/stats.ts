/**
 * `diffeval stats`: statistics files.
 *   stats SOURCE --out stats.npz                 the Gaussian of a source's features (pytorch-fid compatible)
 *   stats SOURCE --shard I/N --out part-I.npz    the partial sums of shard I of N
 *   stats merge PART... --out stats.npz          merge the N parts exactly
 *   stats list | fetch NAME                      the published reference statistics (reference-stats/manifest.json)
 *   stats coco30k --images D --captions F --out DIR   the COCO text-to-image reference
 *
 * A SOURCE spelled like a subcommand (a folder called `list`) is passed as `./list`.
 *
 * commander parses an option of this group wherever it appears, before dispatching, so the
 * options shared by the subcommands (--out, --seed and the extraction flags) are declared here
 * only, and subcommands read them with optsWithGlobals().
 */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { writeStatsNpz } from "../io/npz.js";
import { parseShardSpec, writeShardPart } from "../io/shard-file.js";
import { computeStatsShard } from "../pipeline/sharded-stats.js";
import { extractImageSource } from "../pipeline/with-extraction.js";
import { VERSION } from "../version.js";
import { addExtractionOptions, extractorOptions, reportSkipped, subsetOptions } from "./common-options.js";
import { imageProgress } from "./image-progress.js";
import { statsCoco30kCommand } from "./stats-coco30k.js";
import { statsMergeCommand } from "./stats-merge.js";
import { requireNpzOut, type StatsFlags } from "./stats-options.js";
import { statsFetchCommand, statsListCommand } from "./stats-reference.js";

export function statsCommand(): Command {
  const cmd = new Command("stats")
    .description(
      "write the mean and covariance of a source's features (Inception pool3, or the --encoder's) to a .npz (readable by pytorch-fid); " +
        "subcommands: list and fetch published reference statistics, merge shards, build the COCO-30k reference",
    )
    .argument("[source]", "folder, list file or zip of images (a folder named like a subcommand: ./list)")
    .option("--out <file>", "where to write (.npz; a folder for coco30k)")
    .option("--shard <I/N>", "process only shard I of N (0-based; contiguous slices of the sorted items) and write its partial sums");
  addExtractionOptions(cmd);
  for (const sub of [statsListCommand(), statsFetchCommand(), statsMergeCommand(), statsCoco30kCommand()]) {
    cmd.addCommand(sub.configureHelp({ showGlobalOptions: true }));
  }
  return cmd.action(async (source: string | undefined, flags: StatsFlags) => {
    if (source === undefined) {
      throw new DiffevalError("E_USAGE", "stats needs a SOURCE (folder, list file or zip) or a subcommand: list, fetch, merge, coco30k");
    }
    const out = requireNpzOut(flags.out);
    if (flags.shard !== undefined) await writeShard(source, out, flags);
    else await writeStats(source, out, flags);
  });
}

async function writeStats(source: string, out: string, flags: StatsFlags): Promise<void> {
  const progress = imageProgress();
  const resolved = await extractImageSource(source, {
    ...extractorOptions(flags),
    ...subsetOptions(flags),
    onProgress: (done, total) => progress.update("images", done, total),
  });
  progress.finish();
  reportSkipped(source, resolved.skipped);
  const meta = { ...resolved.meta, tool: "diffeval", tool_version: VERSION, date: new Date().toISOString() };
  await writeFileAtomic(out, writeStatsNpz(resolved.gaussian, meta));
  const encoder = resolved.meta.encoder ? `encoder ${resolved.meta.encoder}, ` : "";
  process.stderr.write(`wrote ${out}: n ${resolved.gaussian.n}, d ${resolved.gaussian.mu.length}, ${encoder}protocol ${resolved.meta.protocol}\n`);
}

async function writeShard(source: string, out: string, flags: StatsFlags): Promise<void> {
  const shard = parseShardSpec(flags.shard!);
  const progress = imageProgress();
  const part = await computeStatsShard({
    ...extractorOptions(flags),
    ...subsetOptions(flags),
    source,
    shard,
    onProgress: (done, total) => progress.update(`shard ${shard.index}/${shard.count}`, done, total),
  });
  progress.finish();
  reportSkipped(source, part.skipped);
  await writeFileAtomic(out, writeShardPart(part.acc, part.meta));
  const { start, end } = part.meta.shard;
  process.stderr.write(
    `wrote ${out}: shard ${shard.index}/${shard.count}, items ${start}..${end - 1} of ${part.meta.source_count}, ` +
      `n ${part.meta.n}, protocol ${part.meta.protocol}\n`,
  );
}
