/**
 * `diffeval clipscore --pairs pairs.csv [--weights DIR] [--json]`: CLIP score of image-prompt pairs
 * (pipeline/clip-score.ts). Without --weights the registry's CLIP weights are downloaded into the
 * cache (as for --encoder clip). The CSV has the columns `image` and `prompt` (any order, other
 * columns ignored; io/csv.ts); image paths are relative to the CSV's folder.
 */
import { Command } from "commander";
import { getEncoder } from "../features/encoders.js";
import { parseDevice } from "../models/session.js";
import { runClipScore, type ClipScoreReport } from "../pipeline/clip-score.js";
import { addTokenizerOption, positiveInt, tokenizerFlavour } from "./common-options.js";

interface ClipScoreFlags {
  pairs: string;
  weights?: string;
  encoderWeights?: string;
  json?: boolean;
  device: string;
  batchSize: string;
  tokenizer: string;
}

export function clipscoreCommand(): Command {
  const clip = getEncoder("clip");
  const cmd = new Command("clipscore")
    .description("CLIP score (torchmetrics' definition: 100 x cosine per image-prompt pair, mean, clamped at 0) of a pairs CSV")
    .requiredOption("--pairs <csv>", "CSV with a header and columns image,prompt (image paths relative to the CSV)")
    .option("--weights <dir>", "Hugging Face CLIP checkpoint folder (config.json, model.safetensors, tokenizer files, preprocessor_config.json)")
    .option("--encoder-weights <id>", `registry id of the CLIP weights to download when --weights is absent (default ${clip.defaultWeightsId})`)
    .option("--json", "print one JSON object instead of the human summary")
    .option("--device <device>", "auto, cpu, cuda or webgpu", "auto")
    .option("--batch-size <n>", "images per inference batch", "16");
  return addTokenizerOption(cmd).action(async (flags: ClipScoreFlags) => {
    const flavour = tokenizerFlavour(flags.tokenizer);
    const r = await runClipScore({
      pairs: flags.pairs,
      weights: flags.weights,
      weightsId: flags.encoderWeights,
      device: parseDevice(flags.device),
      batchSize: positiveInt(flags.batchSize, "--batch-size"),
      flavour,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : humanReport(r));
  });
}

function humanReport(r: ClipScoreReport): string {
  return (
    `CLIP score  ${r.clip_score.toFixed(4)}\n` +
    `weights ${r.weights_sha256.slice(0, 12)} (${r.weights}), tokenizer ${r.tokenizer}, n ${r.n}, device ${r.device}, ${r.seconds.toFixed(1)} s\n`
  );
}
