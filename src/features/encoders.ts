/**
 * The encoder registry: the feature spaces diffeval measures in, one entry each, and everything
 * else (the extractor, `--encoder` and its help, `--weights` help, the feature cache) derives from
 * the entry.
 *
 *   inception  the FID Inception network: pool3 (2048-d), logits (1008, for IS), sFID's spatial
 *              features; input by an FID resize protocol (preprocess/protocols.ts)
 *   clip       a Hugging Face CLIPModel's vision tower + visual_projection: `image_embeds`, the
 *              raw (not normalised) projected embedding; input as CLIPImageProcessor makes it from
 *              the checkpoint's preprocessor_config.json (clip-model.ts)
 *   dinov2     a torch-hub DINOv2 ViT: the normalised class token; input as dgm-eval's DINOv2
 *              transform makes it (dinov2-model.ts)
 *
 * An entry's `open` turns weights (a path, or without one the entry's registry id in
 * models/registry.ts, downloaded into the cache) into an `EncoderNetwork`: the converted graph
 * with its provenance, the preprocessing (a PreprocessSpec) and, once a session is open, how to
 * run it and which outputs to collect. The extractor's feature cache is keyed by the weights'
 * sha256, the preprocessing's name and those outputs.
 */
import * as ort from "onnxruntime-node";
import { DiffevalError } from "../errors.js";
import type { ProgressCallback } from "../models/download.js";
import { getEncoderWeightsEntry, DEFAULT_WEIGHTS_ID } from "../models/registry.js";
import { resolveInceptionModel, type ResolvedModel } from "../models/resolve-model.js";
import { DEFAULT_PROTOCOL, getProtocol, isProtocolName } from "../preprocess/protocols.js";
import { preprocessName, type PreprocessSpec } from "../preprocess/preprocess-spec.js";
import { CLIP_IMAGE_OUTPUT, CLIP_VISION_INPUT, ensureClipOnnx, readClipCheckpoint } from "./clip-model.js";
import { DINOV2_INPUT, DINOV2_OUTPUT, resolveDinov2Network } from "./dinov2-model.js";
import { ensureEncoderWeights } from "./encoder-weights.js";
import type { FeatureRunner } from "./extract.js";
import { inceptionRunner, INPUT_SIZE, OUTPUT_DIMS, POOL3_DIM, sessionOutputs } from "./inception-runner.js";

export const ENCODER_NAMES = ["inception", "clip", "dinov2"] as const;
export type EncoderName = (typeof ENCODER_NAMES)[number];
export const DEFAULT_ENCODER: EncoderName = "inception";

export function parseEncoderName(name: string): EncoderName {
  const n = name.trim().toLowerCase();
  if (!(ENCODER_NAMES as readonly string[]).includes(n)) {
    throw new DiffevalError("E_USAGE", `unknown encoder '${name}': choose from ${ENCODER_NAMES.join(", ")}`);
  }
  return n as EncoderName;
}

/** What an encoder is opened with (the extractor's options, less the running ones). */
export interface EncoderOpenOptions {
  /** A weight file or folder (see the entry's weightsHelp). */
  weights?: string;
  /** Without `weights`: the registry id of the weights (default: the entry's defaultWeightsId). */
  weightsId?: string;
  /** Inception only: the FID resize protocol (default clean). */
  protocol?: string;
  /** Inception only: also sFID's spatial features. */
  spatial?: boolean;
  /** Download missing weights into the cache (default true). */
  allowDownload?: boolean;
  log?: (line: string) => void;
  onProgress?: ProgressCallback;
}

/** How a session's network is run: its runner, the outputs to collect and their widths. */
export interface NetworkPlan {
  run: FeatureRunner;
  /** The outputs to collect, in the feature cache's layout order. */
  outputs: string[];
  dims: Record<string, number>;
  /** The output returned as the main features. */
  primary: string;
  /** Side of the square network input. */
  inputSize: number;
}

/** An encoder's weights, resolved: a converted graph, its preprocessing, and how to run it. */
export interface EncoderNetwork {
  model: ResolvedModel;
  preprocess: PreprocessSpec;
  /** Width of the main features with these weights. */
  dim: number;
  /** The plan for an open session (Inception's outputs depend on the converted graph). */
  plan(session: ort.InferenceSession): NetworkPlan;
}

export interface EncoderEntry {
  name: EncoderName;
  /** One line for the CLI's `--encoder` help. */
  description: string;
  /** The `--weights` help for this encoder. */
  weightsHelp: string;
  /** The weights used without `--weights` (models/registry.ts id). */
  defaultWeightsId: string;
  /** Width of the main features with the default weights (other weights may differ: EncoderNetwork.dim). */
  dim: number;
  /** The model output the main features come from. */
  primaryOutput: string;
  /** Has Inception's logits (the Inception Score needs them). */
  hasLogits: boolean;
  /** Has sFID's spatial features. */
  hasSpatial: boolean;
  /** Takes an FID resize protocol (`--protocol`); the others' preprocessing comes with their weights. */
  takesProtocol: boolean;
  open(opts: EncoderOpenOptions): Promise<EncoderNetwork>;
}

/** A CLIP or DINOv2 network, ready to open a session on (what `resolveEncoder` returns). */
export interface ResolvedEncoder {
  encoder: Exclude<EncoderName, "inception">;
  onnxPath: string;
  /** sha256 of the weight file (model.safetensors / the .pth): what results record. */
  weightsSha256: string;
  weightsPath: string;
  /** The preprocessing, and its recorded name. */
  preprocess: PreprocessSpec;
  protocol: string;
  inputName: string;
  inputSize: number;
  /** The output every metric uses, and its width. */
  outputName: string;
  dim: number;
}

export interface ResolveEncoderOptions extends Pick<EncoderOpenOptions, "weights" | "weightsId" | "allowDownload" | "log" | "onProgress"> {
  env?: NodeJS.ProcessEnv;
}

const INCEPTION: EncoderEntry = {
  name: "inception",
  description: "FID Inception-v3 (pytorch-fid's weights): pool3 2048-d; logits for IS; spatial features for sFID",
  weightsHelp: "FID Inception weights (.pth or .onnx; default $DIFFEVAL_WEIGHTS, then the cached standard weights)",
  defaultWeightsId: DEFAULT_WEIGHTS_ID,
  dim: POOL3_DIM,
  primaryOutput: "pool3",
  hasLogits: true,
  hasSpatial: true,
  takesProtocol: true,
  async open(opts) {
    const protocol = getProtocol(opts.protocol ?? DEFAULT_PROTOCOL).name;
    const model = await resolveInceptionModel({
      weights: opts.weights,
      spatial: opts.spatial,
      allowDownload: opts.allowDownload ?? true,
      log: opts.log,
      onProgress: opts.onProgress,
    });
    return {
      model,
      preprocess: { kind: "fid", protocol },
      dim: POOL3_DIM,
      plan: (session) => ({ run: inceptionRunner(session), outputs: sessionOutputs(session), dims: OUTPUT_DIMS, primary: "pool3", inputSize: INPUT_SIZE }),
    };
  },
};

const CLIP: EncoderEntry = {
  name: "clip",
  description: "CLIP image embeddings (Hugging Face CLIPModel vision tower + projection, not normalised): CMMD, FD in CLIP space",
  weightsHelp:
    "a Hugging Face CLIP folder (config.json, model.safetensors, preprocessor_config.json) or its model.safetensors " +
    "(default: --encoder-weights, else openai/clip-vit-large-patch14, downloaded into the cache)",
  defaultWeightsId: "openai/clip-vit-large-patch14",
  // projection_dim of openai/clip-vit-large-patch14's config.json.
  dim: 768,
  primaryOutput: CLIP_IMAGE_OUTPUT,
  hasLogits: false,
  hasSpatial: false,
  takesProtocol: false,
  open: async (opts) => encoderNetwork(await resolveEncoder("clip", opts)),
};

const DINOV2: EncoderEntry = {
  name: "dinov2",
  description: "DINOv2 ViT class token (torch-hub weights, normalised): FD-DINOv2 as dgm-eval computes it",
  weightsHelp:
    "a torch-hub DINOv2 .pth with a config.json of its constructor arguments next to it, or their folder " +
    "(default: --encoder-weights, else dinov2_vitl14, downloaded into the cache)",
  defaultWeightsId: "dinov2_vitl14",
  dim: Number(getEncoderWeightsEntry("dinov2_vitl14").config!.embed_dim),
  primaryOutput: DINOV2_OUTPUT,
  hasLogits: false,
  hasSpatial: false,
  takesProtocol: false,
  open: async (opts) => encoderNetwork(await resolveEncoder("dinov2", opts)),
};

const ENCODERS: Readonly<Record<EncoderName, EncoderEntry>> = Object.freeze({ inception: INCEPTION, clip: CLIP, dinov2: DINOV2 });

/** The registry entry of an encoder (a name from ENCODER_NAMES, or any spelling parseEncoderName accepts). */
export function getEncoder(name: string): EncoderEntry {
  return ENCODERS[parseEncoderName(name)];
}

/** The registry entry each encoder uses when neither --weights nor --encoder-weights is given. */
export const DEFAULT_ENCODER_WEIGHTS: Readonly<Record<"clip" | "dinov2", string>> = Object.freeze({
  clip: CLIP.defaultWeightsId,
  dinov2: DINOV2.defaultWeightsId,
});

/**
 * Refuses options that do not apply to the encoder: sFID's spatial features and FID resize
 * protocols (Inception only), `--encoder-weights` for Inception, and both ways of naming weights.
 */
export function checkEncoderOptions(entry: EncoderEntry, opts: EncoderOpenOptions): void {
  if (opts.weights !== undefined && opts.weightsId !== undefined) {
    throw new DiffevalError("E_USAGE", "--weights and --encoder-weights exclude each other (the first names files, the second a registry id to download)");
  }
  if (opts.spatial && !entry.hasSpatial) {
    throw new DiffevalError("E_USAGE", `sFID's spatial features exist only for the inception encoder, not ${entry.name}`);
  }
  // The CLI passes the default protocol to every command, so only another FID protocol is refused.
  if (!entry.takesProtocol && opts.protocol !== undefined && opts.protocol !== DEFAULT_PROTOCOL && isProtocolName(opts.protocol)) {
    throw new DiffevalError("E_USAGE", `--protocol ${opts.protocol} is an Inception resize protocol; the ${entry.name} encoder has its own preprocessing`);
  }
  if (entry.name === "inception" && opts.weightsId !== undefined) {
    throw new DiffevalError("E_USAGE", `--encoder-weights chooses clip or dinov2 weights; the inception encoder's weights are given with --weights (or $DIFFEVAL_WEIGHTS)`);
  }
}

/** A CLIP or DINOv2 encoder's weights (given, or the registry's, downloaded) resolved to a converted graph. */
export async function resolveEncoder(encoder: Exclude<EncoderName, "inception">, opts: ResolveEncoderOptions = {}): Promise<ResolvedEncoder> {
  const entry = ENCODERS[encoder];
  checkEncoderOptions(entry, opts);
  const weights = opts.weights ?? (await ensureEncoderWeights(encoder, opts.weightsId ?? entry.defaultWeightsId, opts));
  return encoder === "clip" ? resolveClip(weights, opts) : resolveDinov2(weights, opts);
}

async function resolveClip(weights: string, opts: ResolveEncoderOptions): Promise<ResolvedEncoder> {
  const ckpt = await readClipCheckpoint(weights, opts.env);
  const { vision } = await ensureClipOnnx(ckpt, ["vision"], opts);
  const preprocess: PreprocessSpec = { kind: "clip", config: ckpt.preprocess };
  return {
    encoder: "clip",
    onnxPath: vision!,
    weightsSha256: ckpt.weightsSha256,
    weightsPath: ckpt.weightsPath,
    preprocess,
    protocol: preprocessName(preprocess),
    inputName: CLIP_VISION_INPUT,
    inputSize: ckpt.config.vision.imageSize,
    outputName: CLIP_IMAGE_OUTPUT,
    dim: ckpt.config.projectionDim,
  };
}

async function resolveDinov2(weights: string, opts: ResolveEncoderOptions): Promise<ResolvedEncoder> {
  const net = await resolveDinov2Network(weights, opts.log);
  const preprocess: PreprocessSpec = { kind: "dinov2", size: net.inputSize };
  return {
    encoder: "dinov2",
    onnxPath: net.onnxPath,
    weightsSha256: net.weightsSha256,
    weightsPath: net.weightsPath,
    preprocess,
    protocol: preprocessName(preprocess),
    inputName: DINOV2_INPUT,
    inputSize: net.inputSize,
    outputName: DINOV2_OUTPUT,
    dim: net.config.embedDim,
  };
}

/** One batch through a CLIP/DINOv2 session: `{ [outputName]: n x dim }`. */
export function encoderRunner(session: ort.InferenceSession, enc: Pick<ResolvedEncoder, "inputName" | "inputSize" | "outputName">): FeatureRunner {
  if (!session.outputNames.includes(enc.outputName)) {
    throw new DiffevalError("E_MODEL_OUTPUTS", `the model has no '${enc.outputName}' output (it has ${session.outputNames.join(", ")})`);
  }
  return async (images, n) => {
    const input = new ort.Tensor("float32", images, [n, 3, enc.inputSize, enc.inputSize]);
    const out = await session.run({ [enc.inputName]: input });
    return { [enc.outputName]: out[enc.outputName].data as Float32Array };
  };
}

/** A resolved CLIP/DINOv2 encoder as the extractor runs it: one input, one output. */
function encoderNetwork(enc: ResolvedEncoder): EncoderNetwork {
  return {
    model: { onnxPath: enc.onnxPath, weightsSha256: enc.weightsSha256, weightsPath: enc.weightsPath, source: "flag" },
    preprocess: enc.preprocess,
    dim: enc.dim,
    plan: (session) => ({
      run: encoderRunner(session, enc),
      outputs: [enc.outputName],
      dims: { [enc.outputName]: enc.dim },
      primary: enc.outputName,
      inputSize: enc.inputSize,
    }),
  };
}
