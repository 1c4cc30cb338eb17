/**
 * The one interface every image generator implements (command, a1111, comfyui, analytic, and
 * later onnx-sd): one request in, one image's bytes out, with the parameters actually used.
 *
 * Guidance convention (state it everywhere): `cfgScale` is s in
 *   eps = eps_uncond + s * (eps_cond - eps_uncond)
 * = A1111 `cfg_scale` = ComfyUI `cfg` = diffusers `guidance_scale`; Ho & Salimans' w = s - 1.
 * A negative prompt takes the unconditional slot. diffusers skips the unconditional pass when
 * s <= 1; A1111 and ComfyUI do not (ComfyUI only at exactly 1.0).
 */

export interface GenerationRequest {
  prompt: string;
  /** "" means no negative prompt (the unconditional branch is the empty prompt / class prior). */
  negativePrompt: string;
  cfgScale: number;
  seed: number;
  steps: number;
  width: number;
  height: number;
  /** Any other generator parameter swept as an axis (sampler, LoRA weight, ...), by name. */
  extra: Record<string, string | number | boolean>;
  /** A ControlNet conditioning image for this request (a sweep spec's `control`); built-in generators refuse it. */
  control?: ControlRequest;
}

/**
 * One ControlNet unit: what the sd-webui-controlnet extension calls a ControlNetUnit and
 * ComfyUI's ControlNetApplyAdvanced node takes (strength, start_percent, end_percent).
 */
export interface ControlRequest {
  /** Absolute path of the control image. */
  image: string;
  /** The kind of control ("canny": edges). */
  type: "canny";
  /** The ControlNet model's name on the backend (A1111's `model`, ComfyUI's `control_net_name`); absent: the backend's own. */
  model?: string;
  /** true: the backend runs the edge detector on the image; false: the image already is the edge map. */
  preprocess: boolean;
  /** Canny's low and high thresholds (OpenCV's, 0..255), for a backend that runs the detector. */
  canny: [number, number];
  /** ControlNet strength (A1111 `weight`, ComfyUI `strength`); 0 turns the control off. */
  weight: number;
  /** Fraction of the sampling steps where the control starts and ends (0..1). */
  start: number;
  end: number;
}

export interface GeneratedImage {
  /** Encoded image (PNG unless the generator returns another format). */
  bytes: Uint8Array;
  /** File extension matching `bytes`, without the dot ("png", "jpg", "webp"). */
  format: string;
  /** The parameters the generator reports it actually used (e.g. A1111's `all_seeds`). */
  used: Partial<GenerationRequest> & Record<string, unknown>;
  /**
   * Denoiser (network) evaluations this image took, as the generator counted them while sampling:
   * a guided step is two (conditional and unconditional, batched or not), an unguided one one.
   * Built-in generators report it; external ones (command, a1111, comfyui) cannot see their
   * backend's passes and leave it absent.
   */
  modelEvaluations?: number;
}

export interface Generator {
  /** Short name recorded in results ("analytic", "a1111", "comfyui", "command"). */
  readonly name: string;
  /** How many requests may run at once (a server's concurrency limit; 1 for a local process). */
  readonly concurrency: number;
  generate(req: GenerationRequest, signal?: AbortSignal): Promise<GeneratedImage>;
  /** Reference images the generator can supply itself (e.g. `analytic:real`), if any. */
  reference?(count: number, seed: number): AsyncIterable<{ name: string; bytes: Uint8Array }>;
  close?(): Promise<void>;
}
