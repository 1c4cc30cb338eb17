/** `diffeval stats SOURCE --out stats.npz`: the Gaussian of a source's features, pytorch-fid compatible. */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { openExtractor } from "../features/extractor.js";
import { writeFileAtomic } from "../io/atomic.js";
import { writeStatsNpz } from "../io/npz.js";
import { extractSource } from "../io/resolve-source.js";
import { openImageSource } from "../io/sources.js";
import { VERSION } from "../version.js";
import { addExtractionOptions, extractorOptions, reportSkipped, subsetOptions, type ExtractionFlags } from "./common-options.js";
import { imageProgress } from "./image-progress.js";

interface StatsFlags extends ExtractionFlags {
  out: string;
}

export function statsCommand(): Command {
  const cmd = new Command("stats")
    .description("write the mean and covariance of a source's pool3 features to a .npz (readable by pytorch-fid)")
    .argument("<source>", "folder, list file or zip of images")
    .requiredOption("--out <file.npz>", "where to write the statistics");
  return addExtractionOptions(cmd).action(async (source: string, flags: StatsFlags) => {
    if (!/\.npz$/i.test(flags.out)) throw new DiffevalError("E_USAGE", `--out must name a .npz file, got '${flags.out}'`);
    const images = await openImageSource(source, subsetOptions(flags));
    const extractor = await openExtractor(extractorOptions(flags)).catch(async (e: unknown) => {
      await images.close();
      throw e;
    });
    const progress = imageProgress();
    try {
      const resolved = await extractSource(source, images, extractor, {
        onProgress: (done, total) => progress.update("images", done, total),
      });
      progress.finish();
      reportSkipped(source, resolved.skipped);
      const meta = {
        ...resolved.meta,
        tool: "diffeval",
        tool_version: VERSION,
        date: new Date().toISOString(),
      };
      await writeFileAtomic(flags.out, writeStatsNpz(resolved.gaussian, meta));
      process.stderr.write(
        `wrote ${flags.out}: n ${resolved.gaussian.n}, d ${resolved.gaussian.mu.length}, protocol ${extractor.protocol}\n`,
      );
    } finally {
      await extractor.close();
      await images.close();
    }
  });
}
