/**
 * Weights -> a runnable FID Inception .onnx, with provenance.
 *
 * A .pth (given, from $DIFFEVAL_WEIGHTS, cached or downloaded) is converted once and the result
 * cached next to it, keyed by the weights' sha256 and the converter version. An .onnx made by
 * `diffeval model convert` carries the sha256 of its source weights in its metadata; any other
 * .onnx is identified by its own sha256.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import { CACHE_FILE, sha256File, writeFileAtomic } from "../io/atomic.js";
import { convertedModelCachePath } from "./cache.js";
import { ensureWeightsFile } from "./ensure-weights.js";
import {
  buildInceptionOnnx,
  checkInceptionLayout,
  INCEPTION_CONVERTER_VERSION,
  INCEPTION_SPATIAL_VERSION,
} from "./inception-onnx.js";
import { appendOnnxMetadata, readOnnxMetadataFile } from "./onnx-metadata.js";
import { readStateDict } from "./pth.js";

export interface ResolvedModel {
  onnxPath: string;
  /** sha256 of the weight file the network comes from: what results record. */
  weightsSha256: string;
  /** The file the user (or the cache) supplied: a .pth or an .onnx. */
  weightsPath: string;
  source: "flag" | "env" | "cache" | "download";
}

export const METADATA_WEIGHTS_SHA256 = "diffeval.weights_sha256";
export const METADATA_CONVERTER_VERSION = "diffeval.converter_version";
export const METADATA_SPATIAL = "diffeval.spatial";

export async function resolveInceptionModel(opts: {
  weights?: string;
  /** Also output sFID's spatial features (a separate cached conversion). */
  spatial?: boolean;
  allowDownload?: boolean;
  log?: (line: string) => void;
  onProgress?: (received: number, total: number | undefined) => void;
}): Promise<ResolvedModel> {
  const file = await ensureWeightsFile({
    weights: opts.weights,
    allowDownload: opts.allowDownload,
    onProgress: opts.onProgress,
  });
  if (file.kind === "onnx") {
    const meta = await readOnnxMetadataFile(file.path);
    if (opts.spatial && meta[METADATA_SPATIAL] !== "true") {
      throw new DiffevalError(
        "E_MODEL_OUTPUTS",
        `${file.path}: this ONNX model has no 'spatial' output, which sFID needs. Pass the .pth weights instead, ` +
          `or convert with \`diffeval model convert --spatial\`.`,
      );
    }
    return {
      onnxPath: file.path,
      weightsSha256: meta[METADATA_WEIGHTS_SHA256] ?? file.sha256,
      weightsPath: file.path,
      source: file.source,
    };
  }
  const onnxPath = convertedModelCachePath(file.sha256, converterKey(opts.spatial ?? false));
  if (!existsSync(onnxPath)) {
    opts.log?.(`converting ${file.path} to ONNX (once; cached at ${onnxPath})`);
    await writeFileAtomic(onnxPath, await convertWeightsFile(file.path, { sha256: file.sha256, spatial: opts.spatial }), CACHE_FILE);
  }
  return { onnxPath, weightsSha256: file.sha256, weightsPath: file.path, source: file.source };
}

/** The cache key of a conversion: the spatial graph depends on both versions. */
export function converterKey(spatial: boolean): string {
  return spatial ? `${INCEPTION_CONVERTER_VERSION}-s${INCEPTION_SPATIAL_VERSION}` : String(INCEPTION_CONVERTER_VERSION);
}

/** Reads a .pth, checks its layout and returns the ONNX model bytes with provenance metadata. */
export async function convertWeightsFile(
  pthPath: string,
  opts: { sha256?: string; spatial?: boolean } = {},
): Promise<Uint8Array> {
  const buf = await readFile(pthPath).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_WEIGHTS_MISSING", `${pthPath}: cannot read the weight file (${e.code ?? e.message})`);
  });
  const sd = readStateDict(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), pthPath);
  checkInceptionLayout(sd);
  const spatial = opts.spatial ?? false;
  return appendOnnxMetadata(buildInceptionOnnx(sd, { spatial }), {
    [METADATA_WEIGHTS_SHA256]: opts.sha256 ?? (await sha256File(pthPath)),
    [METADATA_CONVERTER_VERSION]: converterKey(spatial),
    [METADATA_SPATIAL]: String(spatial),
  });
}
