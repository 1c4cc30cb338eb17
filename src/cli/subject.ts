/**
 * `diffeval subject --reference DIR --images DIR [--prompts FILE] [--clip-weights DIR]
 * [--dinov2-weights FILE] [--json]`: DreamBooth's subject fidelity (CLIP-I, DINO in DINOv2's space)
 * and, with prompts, prompt fidelity (CLIP-T) of generated images against the subject's reference
 * photos (pipeline/subject.ts). Without weights flags the encoders' registry weights are downloaded
 * into the cache, as for `--encoder clip|dinov2`.
 */
import { Command } from "commander";
import { getEncoder } from "../features/encoders.js";
import { parseDevice } from "../models/session.js";
import { runSubject, type SubjectReport } from "../pipeline/subject.js";
import { addRuntimeOptions, addTokenizerOption, nonNegativeInt, positiveInt, tokenizerFlavour } from "./common-options.js";

interface SubjectFlags {
  reference: string;
  images: string;
  prompts?: string;
  clipWeights?: string;
  dinov2Weights?: string;
  json?: boolean;
  device: string;
  batchSize: string;
  threads?: string;
  cache: boolean;
  tokenizer: string;
}

export function subjectCommand(): Command {
  const cmd = new Command("subject")
    .description("subject fidelity (DreamBooth's CLIP-I and DINO, here DINOv2) and prompt fidelity (CLIP-T) of generated images against reference photos; cosines in [-1, 1]")
    .requiredOption("--reference <source>", "the subject's reference photos (a folder or any image source)")
    .requiredOption("--images <source>", "the generated images (a folder or any image source)")
    .option("--prompts <file>", "for clip_t: a CSV with the header image,prompt (image paths relative to the CSV), or a file holding one prompt for every image")
    .option("--clip-weights <dir>", `CLIP weights: ${getEncoder("clip").weightsHelp}`)
    .option("--dinov2-weights <file>", `DINOv2 weights: ${getEncoder("dinov2").weightsHelp}`)
    .option("--json", "print one JSON object instead of the human summary");
  return addTokenizerOption(addRuntimeOptions(cmd)).action(async (flags: SubjectFlags) => {
    const flavour = tokenizerFlavour(flags.tokenizer);
    const r = await runSubject({
      reference: flags.reference,
      images: flags.images,
      prompts: flags.prompts,
      clipWeights: flags.clipWeights,
      dinov2Weights: flags.dinov2Weights,
      device: parseDevice(flags.device),
      batchSize: positiveInt(flags.batchSize, "--batch-size"),
      threads: flags.threads === undefined ? undefined : nonNegativeInt(flags.threads, "--threads"),
      cache: flags.cache,
      flavour,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : humanReport(r));
  });
}

function humanReport(r: SubjectReport): string {
  return (
    `clip_i    ${r.clip_i.toFixed(4)}\n` +
    `dinov2_i  ${r.dinov2_i.toFixed(4)}\n` +
    (r.clip_t === undefined ? "" : `clip_t    ${r.clip_t.toFixed(4)}\n`) +
    `reference ${r.n_reference} images, generated ${r.n_images}; clip ${r.clip.weights_sha256.slice(0, 12)}, dinov2 ${r.dinov2.weights_sha256.slice(0, 12)}, ` +
    `device ${r.clip.device}, ${r.seconds.toFixed(1)} s\n`
  );
}
