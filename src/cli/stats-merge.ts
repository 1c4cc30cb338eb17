/** `diffeval stats merge PART... --out stats.npz`: the exact merge of sharded partial sums. */
import { Command } from "commander";
import { writeFileAtomic } from "../io/atomic.js";
import { writeStatsNpz } from "../io/npz.js";
import { mergeStatsShardFiles } from "../pipeline/sharded-stats.js";
import { VERSION } from "../version.js";
import { refuseFlags, requireNpzOut, statsFlags } from "./stats-options.js";

export function statsMergeCommand(): Command {
  return new Command("merge")
    .description("merge shard parts written by 'stats SOURCE --shard I/N' into one statistics file (exact; refuses mismatched, duplicated or missing shards)")
    .argument("<parts...>", "the N part files (e.g. part-*.npz)")
    .action(async (parts: string[], _flags: unknown, cmd: Command) => {
      const flags = statsFlags(cmd);
      refuseFlags(flags, "merge", ["shard", "limit", "weights", "protocol"]);
      const out = requireNpzOut(flags.out);
      const merged = await mergeStatsShardFiles(parts);
      const meta = { ...merged.meta, tool: "diffeval", tool_version: VERSION, date: new Date().toISOString() };
      await writeFileAtomic(out, writeStatsNpz(merged.gaussian, meta));
      process.stderr.write(
        `wrote ${out}: ${parts.length} shards, n ${merged.gaussian.n}, d ${merged.gaussian.mu.length}, protocol ${merged.meta.protocol}\n`,
      );
    });
}
