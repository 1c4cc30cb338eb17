/** Flags shared by every command that extracts features, and their translation to library options. */
import { Command, Option } from "commander";
import { DiffevalError } from "../errors.js";
import { ARRAY_RANGES, parseArrayRange, type ArrayRange } from "../io/array-source.js";
import { ENCODER_NAMES, getEncoder, parseEncoderName } from "../features/encoders.js";
import { getEncoderWeightsEntry, knownEncoderWeightsIds } from "../models/registry.js";
import type { SkippedImage } from "../features/extract.js";
import type { ExtractorOptions } from "../features/extractor.js";
import { parseDevice } from "../models/session.js";
import type { Provenance } from "../pipeline/source-pair.js";
import type { ClipFlavour } from "../text/clip-tokenizer.js";

export interface ExtractionFlags {
  encoder?: string;
  /** Only with --encoder clip|dinov2: the registry id downloaded when --weights is absent. */
  encoderWeights?: string;
  protocol?: string;
  weights?: string;
  device: string;
  batchSize: string;
  threads?: string;
  cache: boolean;
  skipBad?: boolean;
  limit?: string;
  seed: string;
  arrayKey?: string;
  arrayRange?: string;
}

/**
 * The flags that choose the model and how it runs: every command that extracts features (fid,
 * stats, features, metrics, jpeg, sweep) takes the same ones, with the same help.
 */
export function addModelOptions(cmd: Command): Command {
  cmd
    .addOption(new Option("--encoder <name>", `feature space: ${ENCODER_NAMES.map((n) => `${n} (${getEncoder(n).description})`).join("; ")}`).default(undefined, "inception"))
    .option(
      "--encoder-weights <id>",
      `without --weights: the registry weights of the clip/dinov2 encoder, downloaded once into the cache (${encoderWeightIds()})`,
    )
    .addOption(new Option("--protocol <name>", "resize protocol of the inception encoder: clean (default), legacy-pytorch, legacy-tensorflow"))
    .option("--weights <file>", `the encoder's weights: ${ENCODER_NAMES.map((n) => `${n}: ${getEncoder(n).weightsHelp}`).join("; ")}`);
  return addRuntimeOptions(cmd);
}

/** How a model runs, for every command that runs one over images: --device, --batch-size, --threads, --no-cache. */
export function addRuntimeOptions(cmd: Command): Command {
  return cmd
    .option("--device <device>", "auto, cpu, cuda or webgpu", "auto")
    .option("--batch-size <n>", "images per inference batch", "16")
    .option("--threads <n>", "worker threads for decoding and resizing (default: cores - 1)")
    .option("--no-cache", "do not read or write the on-disk feature cache");
}

/** --tokenizer, for the commands that embed prompts with CLIP (clipscore, subject). */
export function addTokenizerOption(cmd: Command): Command {
  return cmd.option("--tokenizer <flavour>", "prompt clean-up: openai (OpenAI's, with HTML unescaping) or hf (Hugging Face's without ftfy)", "openai");
}

/** The --tokenizer value, checked. */
export function tokenizerFlavour(value: string): ClipFlavour {
  if (value !== "openai" && value !== "hf") throw new DiffevalError("E_USAGE", `--tokenizer must be openai or hf, got '${value}'`);
  return value;
}

/** The registry's clip/dinov2 weight ids, each encoder's default marked. */
function encoderWeightIds(): string {
  const defaults = new Set(ENCODER_NAMES.map((n) => getEncoder(n).defaultWeightsId));
  return knownEncoderWeightsIds()
    .map((id) => (defaults.has(id) ? `${id} (${getEncoderWeightsEntry(id).encoder} default)` : id))
    .join(", ");
}

/** The model flags, and those that choose the images: --skip-bad, --limit, --seed, --array-key, --array-range. */
export function addExtractionOptions(cmd: Command): Command {
  return addModelOptions(cmd)
    .option("--skip-bad", "warn about undecodable images and go on, instead of stopping")
    .option("--limit <n>", "use a random subset of N images per image source")
    .option("--seed <n>", "seed for --limit's subset", "0")
    .option("--array-key <key>", "which array of an .npz image source holds the images (default arr_0, else the only image-shaped one); on an .npz with mu/sigma too (ADM reference batches), reads its images instead of its statistics")
    .option("--array-range <lo,hi>", `value range of a float image array (.npy/.npz): ${Object.keys(ARRAY_RANGES).join(" | ")}; required for float arrays`);
}

export function extractorOptions(flags: ExtractionFlags): ExtractorOptions {
  return {
    ...(flags.encoder !== undefined ? { encoder: parseEncoderName(flags.encoder) } : {}),
    ...(flags.encoderWeights !== undefined ? { encoderWeights: flags.encoderWeights } : {}),
    protocol: flags.protocol,
    weights: flags.weights,
    device: parseDevice(flags.device),
    batchSize: positiveInt(flags.batchSize, "--batch-size"),
    threads: flags.threads === undefined ? undefined : nonNegativeInt(flags.threads, "--threads"),
    cache: flags.cache,
    skipBad: flags.skipBad,
    log: (line) => process.stderr.write(`${line}\n`),
    onDownloadProgress: downloadProgressLine(),
  };
}

/** Download progress on one rewritten stderr line, only when stderr is a terminal. */
function downloadProgressLine(): (received: number, total: number | undefined) => void {
  let last = 0;
  return (received, total) => {
    if (!process.stderr.isTTY) return;
    const now = Date.now();
    const done = total !== undefined && received >= total;
    if (!done && now - last < 200) return;
    last = now;
    const mb = (n: number) => (n / 2 ** 20).toFixed(1);
    const of = total !== undefined ? ` / ${mb(total)} MiB (${Math.floor((100 * received) / Math.max(total, 1))}%)` : " MiB";
    process.stderr.write(`\r  downloading: ${mb(received)}${total !== undefined ? "" : ""}${of}${done ? "\n" : ""}`);
  };
}

/** The options that choose the images of a source: the --limit subset, and which array (and range) of an array file. */
export function subsetOptions(flags: ExtractionFlags): { limit?: number; seed: number; arrayKey?: string; arrayRange?: ArrayRange } {
  return {
    limit: flags.limit === undefined ? undefined : positiveInt(flags.limit, "--limit"),
    seed: nonNegativeInt(flags.seed, "--seed"),
    ...(flags.arrayKey !== undefined ? { arrayKey: flags.arrayKey } : {}),
    ...(flags.arrayRange !== undefined ? { arrayRange: parseArrayRange(flags.arrayRange) } : {}),
  };
}

export function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new DiffevalError("E_USAGE", `${flag} must be a positive integer, got '${value}'`);
  return n;
}

export function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new DiffevalError("E_USAGE", `${flag} must be a non-negative integer, got '${value}'`);
  return n;
}

/** Skipped images named in a --skip-bad warning; the rest are counted ("and N more"). */
export const SKIPPED_NAMED = 5;

/**
 * Warns once per source about the images --skip-bad left out, naming them: every command that
 * honours --skip-bad (fid, metrics, jpeg, features, stats) reports through this one function.
 */
export function reportSkipped(spec: string, skipped: readonly SkippedImage[]): void {
  process.stderr.write(skippedWarning(spec, skipped));
}

/** The warning text: a count, then one line per named image with its decode error. */
export function skippedWarning(spec: string, skipped: readonly SkippedImage[]): string {
  if (skipped.length === 0) return "";
  const lines = [`warning: ${spec}: skipped ${skipped.length} undecodable image(s):`];
  for (const s of skipped.slice(0, SKIPPED_NAMED)) lines.push(`  ${s.message.includes(s.name) ? s.message : `${s.name}: ${s.message}`}`);
  if (skipped.length > SKIPPED_NAMED) lines.push(`  ... and ${skipped.length - SKIPPED_NAMED} more`);
  return `${lines.join("\n")}\n`;
}

/** The line under every comparison: what the number was computed with. */
export function provenanceLine(p: Provenance, note = ""): string {
  const weights = p.weights_sha256 === "unknown" ? "unknown weights" : `weights ${p.weights_sha256.slice(0, 12)}`;
  const n = (v: number | null) => (v === null ? "unknown" : String(v));
  const encoder = p.encoder && p.encoder !== "inception" ? `encoder ${p.encoder}, ` : "";
  return `${encoder}protocol ${p.protocol}, ${weights}, n_real ${n(p.n_real)}, n_fake ${n(p.n_fake)}${note}, ${p.seconds.toFixed(1)} s\n`;
}
