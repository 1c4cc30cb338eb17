/**
 * `diffeval generate --model DIR --prompt P [--negative N] [--cfg S] [--steps K]
 *  [--scheduler ddim|euler|pndm] [--seed N | --seeds A,B,... | --latents FILE.npy] [--width W --height H] --out FILE`
 *
 * One image from a Stable Diffusion ONNX export folder (generators/onnx-sd), seed-exact with
 * diffusers' OnnxStableDiffusionPipeline(generator=np.random.RandomState(seed)). `--out` ending in
 * `.png` writes diffusers' 8-bit image; `.npy` writes the float image in [0, 1], height x width x 3
 * float32 (diffusers' `output_type="np"` without the batch axis). Progress per UNet call on stderr.
 * `--seeds` makes one image per seed, all seeds through each UNet call together (generateSdBatch),
 * each the image its single-seed run makes: `x.png` becomes `x-<seed>.png` per seed, `x.npy` one
 * seeds x height x width x 3 array in the order given.
 */
import path from "node:path";
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { parseDevice } from "../models/session.js";
import { writeFileAtomic } from "../io/atomic.js";
import { readNpy, writeNpy } from "../io/npy.js";
import { encodeSdPng, generateSd, generateSdBatch, openSdExport, schedulerFrom, DEFAULT_SD_STEPS, type SdImage } from "../generators/onnx-sd/index.js";
import { createProgress } from "./progress.js";
import { positiveInt } from "./common-options.js";

interface GenerateFlags {
  model: string;
  prompt: string;
  negative?: string;
  cfg: string;
  steps: string;
  scheduler?: string;
  seed?: string;
  seeds?: string;
  latents?: string;
  width?: string;
  height?: string;
  out: string;
  device: string;
}

export function generateCommand(): Command {
  return new Command("generate")
    .description("generate one image (or one per --seeds seed, batched) with the built-in Stable Diffusion (an ONNX export folder), seed-exact with diffusers")
    .requiredOption("--model <dir>", "ONNX export folder (model_index.json, text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/)")
    .requiredOption("--prompt <text>", "the prompt")
    .option("--negative <text>", "negative prompt: takes the unconditional slot (default: the empty prompt)")
    .option("--cfg <s>", "guidance scale s in eps_u + s (eps_c - eps_u); any value, s < 1 included (diffusers' guidance_scale)", "7.5")
    .option("--steps <k>", "denoising steps", String(DEFAULT_SD_STEPS))
    .option("--scheduler <name>", "ddim, euler or pndm (default: the export's scheduler_config.json class)")
    .option("--seed <n>", "numpy RandomState seed of the initial latents (default 0)")
    .option("--seeds <list>", "comma-separated seeds of one image each, denoised together in one batch (x.png -> x-<seed>.png; x.npy: seeds x H x W x 3)")
    .option("--latents <file>", "initial latents .npy ([1,] 4, H/8, W/8; before init_noise_sigma) instead of --seed")
    .option("--width <px>", "image width, a multiple of 8 (default: the UNet's sample_size x 8, else 512)")
    .option("--height <px>", "image height, a multiple of 8 (default as --width)")
    .requiredOption("--out <file>", "output .png (8-bit) or .npy (float32 H x W x 3 in [0, 1])")
    .option("--device <device>", "auto, cpu, cuda or webgpu", "auto")
    .action(async (flags: GenerateFlags) => {
      await runGenerate(flags);
    });
}

async function runGenerate(flags: GenerateFlags): Promise<void> {
  const ext = path.extname(flags.out).toLowerCase();
  if (ext !== ".png" && ext !== ".npy") throw new DiffevalError("E_USAGE", `--out must end in .png or .npy, got '${flags.out}'`);
  const cfgScale = Number(flags.cfg);
  if (flags.cfg.trim() === "" || !Number.isFinite(cfgScale)) throw new DiffevalError("E_USAGE", `--cfg must be a number, got '${flags.cfg}'`);
  const seed = seedOf(flags.seed ?? "0", "--seed");
  const seeds = flags.seeds === undefined ? undefined : seedListOf(flags.seeds);
  if (seeds && (flags.seed !== undefined || flags.latents !== undefined)) throw new DiffevalError("E_USAGE", "--seeds replaces --seed and --latents; give one of them");
  const steps = positiveInt(flags.steps, "--steps");
  const scheduler = flags.scheduler === undefined ? undefined : schedulerFrom(flags.scheduler, "--scheduler");
  const latents = flags.latents === undefined ? undefined : await readLatents(flags.latents);
  const size = (v: string | undefined, flag: string) => (v === undefined ? undefined : positiveInt(v, flag));
  const width = size(flags.width, "--width") ?? latents?.width;
  const height = size(flags.height, "--height") ?? latents?.height;

  const model = await openSdExport(flags.model, parseDevice(flags.device));
  if (model.skipped.length > 0) process.stderr.write(`device: ${model.device} (skipped ${model.skipped.join("; ")})\n`);
  const progress = createProgress({ label: "denoising", unit: "steps", stream: process.stderr, summaryWhenNotTty: true });
  const t0 = performance.now();
  try {
    const request = {
      prompt: flags.prompt,
      negativePrompt: flags.negative ?? "",
      cfgScale,
      steps,
      ...(scheduler ? { scheduler } : {}),
      ...(width !== undefined ? { width } : {}),
      ...(height !== undefined ? { height } : {}),
      onStep: (done: number, total: number) => {
        progress.update(done, total);
        if (!process.stderr.isTTY) process.stderr.write(`step ${done}/${total}\n`);
      },
    };
    if (seeds) {
      const images = await generateSdBatch(model, { ...request, seeds });
      progress.finish();
      const files = await writeBatch(flags.out, ext, seeds, images);
      const first = images[0];
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      process.stdout.write(
        `wrote ${files.join(", ")}: ${images.length} images ${first.width}x${first.height}, ${first.scheduler} ${steps} steps (${first.timesteps.length} UNet calls of batch ${(first.guided ? 2 : 1) * images.length}), s=${cfgScale}, seeds ${seeds.join(",")}, ${model.device}, ${seconds} s\n`,
      );
      return;
    }
    const image = await generateSd(model, { ...request, seed, ...(latents ? { latents: latents.data } : {}) });
    progress.finish();
    const bytes = ext === ".png" ? await encodeSdPng(image) : writeNpy({ dtype: "<f4", shape: [image.height, image.width, 3], data: image.data });
    await writeFileAtomic(flags.out, bytes);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    const source = latents ? `latents ${flags.latents}` : `seed ${seed}`;
    process.stdout.write(
      `wrote ${flags.out}: ${image.width}x${image.height}, ${image.scheduler} ${steps} steps (${image.timesteps.length} UNet calls), s=${cfgScale}, ${source}, ${model.device}, ${seconds} s\n`,
    );
  } finally {
    await model.close();
  }
}

/** The files of a --seeds run: one PNG per seed (`x-<seed>.png`), or one seeds x H x W x 3 .npy. */
async function writeBatch(out: string, ext: string, seeds: readonly number[], images: SdImage[]): Promise<string[]> {
  if (ext === ".npy") {
    const { width, height } = images[0];
    const data = new Float32Array(images.length * height * width * 3);
    images.forEach((image, k) => data.set(image.data, k * image.data.length));
    await writeFileAtomic(out, writeNpy({ dtype: "<f4", shape: [images.length, height, width, 3], data }));
    return [out];
  }
  const stem = out.slice(0, out.length - ext.length);
  const files = seeds.map((seed) => `${stem}-${seed}${ext}`);
  for (const [k, image] of images.entries()) await writeFileAtomic(files[k], await encodeSdPng(image));
  return files;
}

function seedOf(text: string, flag: string): number {
  const seed = Number(text);
  if (text.trim() === "" || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new DiffevalError("E_USAGE", `${flag} must be an integer in [0, 2^32) (numpy's RandomState), got '${text}'`);
  return seed;
}

/** `--seeds 0,1,2,3`: distinct seeds, in the order given (the order of the images). */
function seedListOf(text: string): number[] {
  const seeds = text.split(",").map((part) => seedOf(part.trim(), "--seeds: each seed"));
  const repeated = seeds.find((v, i) => seeds.indexOf(v) !== i);
  if (repeated !== undefined) throw new DiffevalError("E_USAGE", `--seeds: seed ${repeated} is given twice; each seed makes one image`);
  return seeds;
}

/** A latents .npy: [1, C, h, w] or [C, h, w], float32 or float64; the image size follows from it. */
async function readLatents(file: string): Promise<{ data: Float32Array; width: number; height: number }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (e) {
    throw new DiffevalError("E_USAGE", `--latents: cannot read ${file}: ${(e as Error).message}`);
  }
  const arr = readNpy(bytes, file);
  const shape = arr.shape.length === 4 && arr.shape[0] === 1 ? arr.shape.slice(1) : arr.shape;
  if (shape.length !== 3 || arr.dtype === "|u1") {
    throw new DiffevalError("E_USAGE", `--latents: ${file} holds ${arr.dtype} [${arr.shape.join(", ")}]; expected float latents [1, channels, height/8, width/8]`);
  }
  return { data: Float32Array.from(arr.data), height: shape[1] * 8, width: shape[2] * 8 };
}
