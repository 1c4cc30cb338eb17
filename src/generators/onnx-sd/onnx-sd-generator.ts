/**
 * The built-in `onnx-sd` generator: Stable Diffusion from an ONNX export folder, run by
 * onnxruntime-node in this process (pipeline.ts), as a `Generator` for sweeps.
 *
 * Request -> pipeline: `cfgScale` is s for any value (s < 1 too, unlike diffusers), the negative
 * prompt takes the unconditional slot, `seed` seeds numpy's RandomState as diffusers'
 * `OnnxStableDiffusionPipeline(generator=np.random.RandomState(seed))` does, `steps`, `width` and
 * `height` as given (default: the generator's settings), `extra.scheduler` picks ddim | euler |
 * pndm (default: the setting, then the export's own scheduler class). The image is written as PNG
 * with diffusers' 8-bit conversion, round(x * 255) (numpy rounds halves to even).
 * The models open on the first request, so a sweep that only resumes opens nothing.
 */
import sharp from "sharp";
import { DiffevalError } from "../../errors.js";
import type { DeviceName } from "../../models/session.js";
import type { GeneratedImage, GenerationRequest, Generator } from "../generator.js";
import { openSdExport, type SdExport } from "./export-folder.js";
import { generateSd, type SdImage } from "./pipeline.js";
import { roundHalfEven } from "./schedulers/config.js";
import { SCHEDULERS, type SchedulerName } from "./schedulers/index.js";

export interface OnnxSdGeneratorOptions {
  /** The export folder (model_index.json, text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/). */
  model: string;
  device?: DeviceName;
  /** Default scheduler (else the export's). */
  scheduler?: string;
  /** Steps when a request gives none (default 50). */
  steps?: number;
  /** Called after each UNet call (progress). */
  onStep?: (done: number, total: number) => void;
  /** Told once which device the models opened on. */
  log?: (line: string) => void;
}

export const DEFAULT_SD_STEPS = 50;

export function createOnnxSdGenerator(opts: OnnxSdGeneratorOptions): Generator {
  const defaultScheduler = opts.scheduler === undefined ? undefined : schedulerFrom(opts.scheduler, "scheduler");
  let opening: Promise<SdExport> | undefined;
  const model = (): Promise<SdExport> => {
    opening ??= openSdExport(opts.model, opts.device ?? "auto").then((m) => {
      opts.log?.(`onnx-sd: ${m.dir} on ${m.device}${m.skipped.length ? ` (skipped ${m.skipped.join("; ")})` : ""}`);
      return m;
    });
    return opening;
  };
  return {
    name: "onnx-sd",
    concurrency: 1,
    async generate(req: GenerationRequest, signal?: AbortSignal): Promise<GeneratedImage> {
      signal?.throwIfAborted();
      if (req.control) throw new DiffevalError("E_GENERATOR_REQUEST", "onnx-sd generator: it has no ControlNet and cannot follow a control image; use an a1111, comfyui or command generator");
      const scheduler = req.extra?.scheduler === undefined ? defaultScheduler : schedulerFrom(req.extra.scheduler, "extra.scheduler");
      const steps = Number.isInteger(req.steps) && req.steps > 0 ? req.steps : (opts.steps ?? DEFAULT_SD_STEPS);
      const sd = await model();
      const image = await generateSd(sd, {
        prompt: req.prompt,
        negativePrompt: req.negativePrompt,
        cfgScale: req.cfgScale,
        steps,
        seed: req.seed,
        ...(scheduler ? { scheduler } : {}),
        ...(req.width > 0 ? { width: req.width } : {}),
        ...(req.height > 0 ? { height: req.height } : {}),
        ...(opts.onStep ? { onStep: opts.onStep } : {}),
        ...(signal ? { signal } : {}),
      });
      return {
        bytes: await encodeSdPng(image),
        format: "png",
        used: {
          prompt: req.prompt,
          negativePrompt: req.negativePrompt,
          cfgScale: req.cfgScale,
          seed: req.seed,
          steps,
          width: image.width,
          height: image.height,
          scheduler: image.scheduler,
          unetCalls: image.timesteps.length,
          guided: image.guided,
          device: sd.device,
        },
        modelEvaluations: image.modelEvaluations,
      };
    },
    async close() {
      if (opening) await (await opening.catch(() => undefined))?.close();
      opening = undefined;
    },
  };
}

/** diffusers' `numpy_to_pil`: round(x * 255) in float32, halves to even, as 8-bit RGB PNG. */
export async function encodeSdPng(image: SdImage): Promise<Uint8Array> {
  const raw = new Uint8Array(image.data.length);
  for (let i = 0; i < raw.length; i++) raw[i] = roundHalfEven(Math.fround(image.data[i] * 255));
  return new Uint8Array(await sharp(raw, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer());
}

export function schedulerFrom(value: unknown, field: string): SchedulerName {
  if (typeof value === "string" && (SCHEDULERS as readonly string[]).includes(value)) return value as SchedulerName;
  throw new DiffevalError("E_GENERATOR_REQUEST", `onnx-sd generator: ${field} must be one of ${SCHEDULERS.join(", ")}, got ${JSON.stringify(value)}`);
}
