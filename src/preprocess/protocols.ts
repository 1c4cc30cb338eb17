/**
 * The registry of FID preprocessing protocols: each names everything between decoded RGB pixels
 * and the Inception network's input, so results record it and are never compared across
 * protocols by accident (torch-fidelity's idea of registering extractors by name).
 */
import { DiffevalError } from "../errors.js";
import type { RgbImage } from "../io/decode.js";
import { preprocessClean } from "./clean.js";
import { preprocessLegacyPytorch } from "./legacy-pytorch.js";
import { preprocessLegacyTensorflow } from "./legacy-tensorflow.js";

export type ProtocolName = "clean" | "legacy-pytorch" | "legacy-tensorflow";

export interface Protocol {
  name: ProtocolName;
  description: string;
  /** The weights the protocol's reference numbers are computed with. */
  weights: "pt_inception-2015-12-05";
  /** Side of the square network input. */
  inputSize: 299;
  /** RGB uint8 image -> CHW float32 3 x 299 x 299, ready for the network. */
  preprocess(img: RgbImage): Float32Array;
}

export const DEFAULT_PROTOCOL: ProtocolName = "clean";

export const PROTOCOLS: Record<ProtocolName, Protocol> = {
  clean: {
    name: "clean",
    description:
      "clean-fid: each channel as float32 resized by Pillow BICUBIC (antialiased) to 299x299, clipped to [0,255], (x-128)/128",
    weights: "pt_inception-2015-12-05",
    inputSize: 299,
    preprocess: (img) => preprocessClean(img),
  },
  "legacy-pytorch": {
    name: "legacy-pytorch",
    description: "pytorch-fid: x/255, torch bilinear resize to 299x299 (align_corners=False, no antialias), 2x-1",
    weights: "pt_inception-2015-12-05",
    inputSize: 299,
    preprocess: (img) => preprocessLegacyPytorch(img),
  },
  "legacy-tensorflow": {
    name: "legacy-tensorflow",
    description:
      "TTUR / torch-fidelity: TF1 ResizeBilinear to 299x299 (no half-pixel centres) on 0..255, (x-128)/128",
    weights: "pt_inception-2015-12-05",
    inputSize: 299,
    preprocess: (img) => preprocessLegacyTensorflow(img),
  },
};

export function isProtocolName(name: string): name is ProtocolName {
  return Object.prototype.hasOwnProperty.call(PROTOCOLS, name);
}

export function getProtocol(name: string = DEFAULT_PROTOCOL): Protocol {
  if (!isProtocolName(name)) {
    throw new DiffevalError(
      "E_PROTOCOL",
      `unknown protocol '${name}'; valid protocols: ${Object.keys(PROTOCOLS).join(", ")} (default ${DEFAULT_PROTOCOL})`,
    );
  }
  return PROTOCOLS[name];
}
