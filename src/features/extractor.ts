/**
 * The feature extractor a command works with: one onnxruntime session on the chosen device, one
 * pool of image-preparing threads, one feature cache, for one protocol and one set of weights.
 */
import type { ImageItem } from "../io/sources.js";
import { resolveInceptionModel, type ResolvedModel } from "../models/resolve-model.js";
import { DiffevalError } from "../errors.js";
import { DEFAULT_PROTOCOL, getProtocol, isProtocolName } from "../preprocess/protocols.js";
import { openFeatureCache } from "./feature-cache.js";
import type { InferenceSession } from "onnxruntime-node";
import { extractFeatures, type ExtractedFeatures, type FeatureRunner } from "./extract.js";
import { inceptionRunner, OUTPUT_DIMS, sessionOutputs } from "./inception-runner.js";
import { createImagePreparer, defaultThreadCount } from "./prepare-pool.js";
import { openSession, type DeviceName, type ResolvedDevice } from "../models/session.js";
import { cacheDir } from "../models/cache.js";
import { DEFAULT_ENCODER, encoderRunner, resolveEncoder, type EncoderName, type ResolvedEncoder } from "./encoders.js";

export interface ExtractorOptions {
  /** The feature space (encoders.ts): inception (default), clip or dinov2. */
  encoder?: EncoderName;
  protocol?: string;
  /** A .pth or .onnx file; default: $DIFFEVAL_WEIGHTS, then the cached standard weights. */
  weights?: string;
  /** clip/dinov2 without `weights`: the registry id to use (encoders.ts DEFAULT_ENCODER_WEIGHTS). */
  encoderWeights?: string;
  /** Also extract sFID's spatial features (uses a model converted with that output). */
  spatial?: boolean;
  device?: DeviceName;
  batchSize?: number;
  /** Worker threads for decoding and resizing (0: the main thread). */
  threads?: number;
  /** Use the on-disk feature cache (default true). */
  cache?: boolean;
  skipBad?: boolean;
  allowDownload?: boolean;
  /** One-line notices (device choice, conversions) for stderr. */
  log?: (line: string) => void;
  onDownloadProgress?: (received: number, total: number | undefined) => void;
}

export interface Extractor {
  encoder: EncoderName;
  /** The preprocessing: an FID protocol for inception, the encoder's (e.g. "clip", "dinov2") otherwise. */
  protocol: string;
  model: ResolvedModel;
  device: ResolvedDevice;
  /** Worker threads preparing images (0: the calling thread). */
  threads: number;
  /** `use.cache: false` keeps these items out of the on-disk cache (e.g. transient variants of a set). */
  extract(
    items: ImageItem[],
    onProgress?: (done: number, total: number) => void,
    use?: { cache?: boolean },
  ): Promise<ExtractedFeatures>;
  close(): Promise<void>;
}

export { DEFAULT_PROTOCOL };

export async function openExtractor(opts: ExtractorOptions = {}): Promise<Extractor> {
  const encoder = opts.encoder ?? DEFAULT_ENCODER;
  if (encoder !== "inception") return openEncoderExtractor(encoder, opts);
  const protocol = getProtocol(opts.protocol ?? DEFAULT_PROTOCOL).name;
  const model = await resolveInceptionModel({
    weights: opts.weights,
    spatial: opts.spatial,
    allowDownload: opts.allowDownload ?? true,
    log: opts.log,
    onProgress: opts.onDownloadProgress,
  });
  return assembleExtractor({ encoder, protocol, model }, opts, (session) => {
    const outputs = sessionOutputs(session);
    return { run: inceptionRunner(session), outputs, dims: OUTPUT_DIMS };
  });
}

/** A CLIP or DINOv2 extractor: the same pipeline, with the encoder's input, output and preprocessing. */
async function openEncoderExtractor(encoder: Exclude<EncoderName, "inception">, opts: ExtractorOptions): Promise<Extractor> {
  if (opts.spatial) throw new DiffevalError("E_USAGE", `sFID's spatial features exist only for the inception encoder, not ${encoder}`);
  if (opts.protocol !== undefined && opts.protocol !== DEFAULT_PROTOCOL && isProtocolName(opts.protocol)) {
    throw new DiffevalError("E_USAGE", `--protocol ${opts.protocol} is an Inception resize protocol; the ${encoder} encoder has its own preprocessing`);
  }
  const enc: ResolvedEncoder = await resolveEncoder(encoder, {
    weights: opts.weights,
    weightsId: opts.encoderWeights,
    allowDownload: opts.allowDownload ?? true,
    log: opts.log,
    onProgress: opts.onDownloadProgress,
  });
  const model: ResolvedModel = { onnxPath: enc.onnxPath, weightsSha256: enc.weightsSha256, weightsPath: enc.weightsPath, source: "flag" };
  return assembleExtractor({ encoder, protocol: enc.protocol, model }, opts, (session) => ({
    run: encoderRunner(session, enc),
    outputs: [enc.outputName],
    dims: { [enc.outputName]: enc.dim },
    primary: enc.outputName,
    inputSize: enc.inputSize,
  }));
}

/** How a session's network is run: its runner, the outputs to collect and their widths. */
interface NetworkPlan {
  run: FeatureRunner;
  outputs: string[];
  dims: Record<string, number>;
  primary?: string;
  inputSize?: number;
}

/**
 * The part every encoder shares: the session on the chosen device (with a notice for `auto`), the
 * image-preparing threads, the feature cache keyed by weights, preprocessing and outputs.
 */
async function assembleExtractor(
  id: { encoder: EncoderName; protocol: string; model: ResolvedModel },
  opts: ExtractorOptions,
  planFor: (session: InferenceSession) => NetworkPlan,
): Promise<Extractor> {
  const opened = await openSession(id.model.onnxPath, opts.device ?? "auto");
  if ((opts.device ?? "auto") === "auto") {
    const why = opened.skipped.length ? ` (${opened.skipped.join("; ")})` : "";
    opts.log?.(`device: ${opened.device}${why}`);
  }
  const plan = planFor(opened.session);
  const preparer = createImagePreparer(id.protocol, opts.threads ?? defaultThreadCount());
  const cache =
    opts.cache === false
      ? undefined
      : openFeatureCache({
          root: cacheDir(),
          weightsSha256: id.model.weightsSha256,
          protocol: id.protocol,
          outputs: plan.outputs.map((o) => [o, plan.dims[o]]),
        });
  return {
    ...id,
    device: opened.device,
    threads: preparer.threads,
    extract: (items, onProgress, use = {}) =>
      extractFeatures(items, {
        ...plan,
        preparer,
        batchSize: opts.batchSize,
        cache: use.cache === false ? undefined : cache,
        skipBad: opts.skipBad,
        onProgress,
      }),
    async close() {
      await preparer.close();
      await opened.session.release();
    },
  };
}
