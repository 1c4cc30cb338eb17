/** `diffeval stats coco30k --images VAL2014_DIR --captions captions_val2014.json --out DIR`: the COCO text-to-image reference. */
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { buildCocoReference } from "../pipeline/coco30k.js";
import { extractorOptions, positiveInt, subsetOptions } from "./common-options.js";
import { imageProgress } from "./image-progress.js";
import { refuseFlags, statsFlags } from "./stats-options.js";

interface Coco30kFlags {
  images: string;
  captions: string;
  n: string;
  resolution: string;
}

export function statsCoco30kCommand(): Command {
  return new Command("coco30k")
    .description(
      "the COCO text-to-image reference: n val2014 images with one caption each (seeded by --seed), centre-cropped and " +
        "resized (Pillow bicubic); writes DIR/prompts.jsonl, DIR/image_ids.txt and DIR/stats.npz",
    )
    .requiredOption("--images <dir>", "the COCO val2014 image folder")
    .requiredOption("--captions <file>", "captions_val2014.json")
    .option("--n <count>", "number of (image, caption) pairs", "30000")
    .option("--resolution <px>", "side of the centre-cropped square the images are resized to", "256")
    .action(async (flags: Coco30kFlags, cmd: Command) => {
      const group = statsFlags(cmd);
      // --skip-bad would drop images after the prompts were fixed: the pairs would no longer match.
      refuseFlags(group, "coco30k", ["shard", "limit", "skipBad"]);
      if (group.out === undefined) throw new DiffevalError("E_USAGE", "--out <dir> is required: the folder for prompts.jsonl, image_ids.txt and stats.npz");
      const progress = imageProgress();
      const result = await buildCocoReference({
        ...extractorOptions(group),
        images: flags.images,
        captions: flags.captions,
        out: group.out,
        n: positiveInt(flags.n, "--n"),
        seed: subsetOptions(group).seed,
        resolution: positiveInt(flags.resolution, "--resolution"),
        onProgress: (done, total) => progress.update("coco", done, total),
      });
      progress.finish();
      process.stderr.write(
        `wrote ${result.files.prompts}, ${result.files.ids} and ${result.files.stats}: n ${result.n}, protocol ${result.protocol}\n`,
      );
    });
}
