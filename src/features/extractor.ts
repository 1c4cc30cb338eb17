/**
 * The feature extractor a command works with: one onnxruntime session on the chosen device, one
 * pool of image-preparing threads, one feature cache, for one protocol and one set of weights.
 */
import type { ImageItem } from "../io/sources.js";
import type { ResolvedModel } from "../models/resolve-model.js";
import { DEFAULT_PROTOCOL } from "../preprocess/protocols.js";
import { preprocessName, type PreprocessSpec } from "../preprocess/preprocess-spec.js";
import { openFeatureCache } from "./feature-cache.js";
import { extractFeatures, type ExtractedFeatures } from "./extract.js";
import { createImagePreparer, defaultThreadCount } from "./prepare-pool.js";
import { openSession, type DeviceName, type ResolvedDevice } from "../models/session.js";
import { cacheDir } from "../models/cache.js";
import { checkEncoderOptions, DEFAULT_ENCODER, getEncoder, type EncoderName, type EncoderNetwork } from "./encoders.js";

export interface ExtractorOptions {
  /** The feature space (the registry in encoders.ts): inception (default), clip or dinov2. */
  encoder?: EncoderName;
  protocol?: string;
  /** The encoder's weights (its registry entry's weightsHelp); inception: a .pth or .onnx, default $DIFFEVAL_WEIGHTS, then the cached standard weights. */
  weights?: string;
  /** clip/dinov2 without `weights`: the registry id to use (default: the encoder entry's defaultWeightsId). */
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
  /** One-line notices (device choice, conversions, corrupt feature-cache entries) for stderr. */
  log?: (line: string) => void;
  onDownloadProgress?: (received: number, total: number | undefined) => void;
}

export interface Extractor {
  encoder: EncoderName;
  /** The preprocessing's recorded name: an FID protocol for inception, the encoder's (e.g. "clip", "dinov2") otherwise. */
  protocol: string;
  /** The preprocessing itself. */
  preprocess: PreprocessSpec;
  model: ResolvedModel;
  /** Width of the main features (`pool3` of what `extract` returns) with these weights. */
  dim: number;
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

/** The extractor of `opts.encoder` (default inception), opened through its registry entry. */
export async function openExtractor(opts: ExtractorOptions = {}): Promise<Extractor> {
  const entry = getEncoder(opts.encoder ?? DEFAULT_ENCODER);
  const openOpts = {
    weights: opts.weights,
    weightsId: opts.encoderWeights,
    protocol: opts.protocol,
    spatial: opts.spatial,
    allowDownload: opts.allowDownload ?? true,
    log: opts.log,
    onProgress: opts.onDownloadProgress,
  };
  checkEncoderOptions(entry, openOpts);
  return assembleExtractor(entry.name, await entry.open(openOpts), opts);
}

/**
 * The part every encoder shares: the session on the chosen device (with a notice for `auto`), the
 * image-preparing threads, the feature cache keyed by weights, preprocessing and outputs.
 */
async function assembleExtractor(encoder: EncoderName, network: EncoderNetwork, opts: ExtractorOptions): Promise<Extractor> {
  const { model, preprocess } = network;
  const protocol = preprocessName(preprocess);
  const opened = await openSession(model.onnxPath, opts.device ?? "auto");
  if ((opts.device ?? "auto") === "auto") {
    const why = opened.skipped.length ? ` (${opened.skipped.join("; ")})` : "";
    opts.log?.(`device: ${opened.device}${why}`);
  }
  if (opened.notice) opts.log?.(opened.notice);
  let plan;
  try {
    plan = network.plan(opened.session);
  } catch (e) {
    await opened.session.release();
    throw e;
  }
  const preparer = createImagePreparer(preprocess, opts.threads ?? defaultThreadCount());
  const cache =
    opts.cache === false
      ? undefined
      : openFeatureCache({
          root: cacheDir(),
          weightsSha256: model.weightsSha256,
          protocol,
          outputs: plan.outputs.map((o) => [o, plan.dims[o]]),
          warn: opts.log,
        });
  return {
    encoder,
    protocol,
    preprocess,
    model,
    dim: network.dim,
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
