/** diffeval's library API: `import { computeFid, frechetDistance } from "diffeval"`. */
export { DiffevalError, isDiffevalError } from "./errors.js";
export type { FeatureMatrix, Gaussian } from "./types.js";
export { VERSION } from "./version.js";
export { computeFid, type FidOptions, type FidResult } from "./fid.js";
export { resolveSourcePair, assertComparable, type SourcePair, type SourcePairOptions } from "./source-pair.js";
export { openExtractor, DEFAULT_PROTOCOL, type Extractor, type ExtractorOptions } from "./features/extractor.js";
export { openSession, type DeviceName } from "./features/session.js";
export { openImageSource, type ImageItem } from "./io/sources.js";
export { decodeImage, type RgbImage } from "./io/decode.js";
export { readNpy, writeNpy, type NpyArray } from "./io/npy.js";
export { readNpz, writeNpz, readStatsNpz, writeStatsNpz } from "./io/npz.js";
export { extractSource, loadStatsFile, type ResolvedSource, type StatsMeta } from "./io/resolve-source.js";
export { getProtocol, PROTOCOLS, type ProtocolName } from "./preprocess/protocols.js";
export { fitGaussian } from "./stats/gaussian.js";
export { frechetDistance, frechetDistanceFromFeatures } from "./stats/frechet.js";
export { readStateDict } from "./models/pth.js";
export { buildInceptionOnnx } from "./models/inception-onnx.js";
export { resolveInceptionModel, convertWeightsFile } from "./models/resolve-model.js";
