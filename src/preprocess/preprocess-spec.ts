/**
 * Everything between decoded RGB pixels and an encoder's input, as data: a tagged union that the
 * extractor hands to its image-preparing worker threads (structured clone keeps it intact), so
 * that no one has to tell preprocessings apart by parsing their names.
 *
 *   fid     an FID resize protocol for the Inception network (protocols.ts)
 *   clip    CLIPImageProcessor with a checkpoint's preprocessor_config.json (clip.ts)
 *   dinov2  dgm-eval's DINOv2 transform at `size` pixels (dinov2.ts)
 *
 * `preprocessName` gives the name that results, statistics files and the feature cache record.
 * Those names predate this type and must not change (old caches and results stay valid):
 *   `clean`, `legacy-pytorch`, `legacy-tensorflow`      the FID protocols
 *   `clip`, `clip-336`                                  OpenAI's processor at 224 / 336
 *   `clip-<size>-<crop>-m<m0>,<m1>,<m2>-s<s0>,<s1>,<s2>` any other preprocessor_config.json
 *   `dinov2`, `dinov2-<size>`                           DINOv2 at 224 / another size
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../io/decode.js";
import { CLIP_PREPROCESS_224, CLIP_PREPROCESS_336, preprocessClip, type ClipPreprocessConfig } from "./clip.js";
import { DINOV2_SIZE, preprocessDinov2 } from "./dinov2.js";
import { getProtocol, type ProtocolName } from "./protocols.js";

export type PreprocessSpec =
  | { kind: "fid"; protocol: ProtocolName }
  | { kind: "clip"; config: ClipPreprocessConfig }
  | { kind: "dinov2"; size: number };

function sameClip(a: ClipPreprocessConfig, b: ClipPreprocessConfig): boolean {
  return a.size === b.size && a.crop === b.crop && a.mean.every((v, i) => v === b.mean[i]) && a.std.every((v, i) => v === b.std[i]);
}

/** The recorded name of a preprocessing (see the header for the names). */
export function preprocessName(spec: PreprocessSpec): string {
  switch (spec.kind) {
    case "fid":
      return spec.protocol;
    case "clip": {
      const c = spec.config;
      if (sameClip(c, CLIP_PREPROCESS_224)) return "clip";
      if (sameClip(c, CLIP_PREPROCESS_336)) return "clip-336";
      return `clip-${c.size}-${c.crop}-m${c.mean.join(",")}-s${c.std.join(",")}`;
    }
    case "dinov2":
      return spec.size === DINOV2_SIZE ? "dinov2" : `dinov2-${spec.size}`;
    default:
      throw unknownSpec(spec);
  }
}

/** Side of the square network input the preprocessing produces. */
export function preprocessInputSize(spec: PreprocessSpec): number {
  switch (spec.kind) {
    case "fid":
      return getProtocol(spec.protocol).inputSize;
    case "clip":
      return spec.config.crop;
    case "dinov2":
      return spec.size;
    default:
      throw unknownSpec(spec);
  }
}

/** RGB image -> CHW float32 network input (3 x side x side). */
export function preprocessImage(spec: PreprocessSpec, img: RgbImage): Float32Array {
  switch (spec.kind) {
    case "fid":
      return getProtocol(spec.protocol).preprocess(img);
    case "clip":
      return preprocessClip(img, spec.config);
    case "dinov2":
      return preprocessDinov2(img, spec.size);
    default:
      throw unknownSpec(spec);
  }
}

/** A value that is not a PreprocessSpec got here (a worker message from another build, say). */
function unknownSpec(spec: never): DiffevalError {
  return new DiffevalError("E_PROTOCOL", `unknown preprocessing ${JSON.stringify(spec)}; expected kind fid, clip or dinov2`);
}
