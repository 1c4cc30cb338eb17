/**
 * A torch-hub DINOv2 ViT as the `dinov2` encoder: the .pth state dict and the config.json of its
 * constructor arguments next to it (the .pth carries none), converted once to an ONNX graph whose
 * output `features` is the normalised class token (`x_norm_clstoken`, dgm-eval's FD-DINOv2
 * feature). The graph is cached at `<cache>/onnx/dinov2-<sha12>-v<converter>-c<config8>.onnx`,
 * keyed by the config and the input size as well as the weights (the position grid is resampled
 * for that size at conversion).
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { buildDinov2Onnx, checkDinov2Layout, DINOV2_CONVERTER_VERSION, parseDinov2Config, type Dinov2Config } from "../models/dinov2-onnx.js";
import { readStateDict } from "../models/pth.js";
import { DINOV2_SIZE } from "../preprocess/dinov2.js";
import { convertOnce, encoderOnnxCachePath, hashWeightsFile, isFolder, readWeightsBytes, readWeightsJson } from "./encoder-weights.js";

/** The graph's input and output (dinov2-onnx.ts). */
export const DINOV2_INPUT = "pixel_values";
export const DINOV2_OUTPUT = "features";

export interface Dinov2Network {
  onnxPath: string;
  weightsPath: string;
  weightsSha256: string;
  config: Dinov2Config;
  /** Side of the square input (dgm-eval's 224). */
  inputSize: number;
}

/** The .pth at `weights` (or the one .pth in the folder `weights`), converted (once). */
export async function resolveDinov2Network(weights: string, log?: (line: string) => void): Promise<Dinov2Network> {
  const weightsPath = (await isFolder(weights)) ? await onlyPth(weights) : weights;
  const configFile = path.join(path.dirname(weightsPath), "config.json");
  const config = parseDinov2Config(await readWeightsJson(configFile, "the DINOv2 constructor arguments (config.json)"), configFile);
  const inputSize = DINOV2_SIZE;
  if (inputSize % config.patchSize !== 0) {
    throw new DiffevalError("E_WEIGHTS_LAYOUT", `${configFile}: patch_size ${config.patchSize} does not divide dgm-eval's ${inputSize}-pixel input`);
  }
  const weightsSha256 = await hashWeightsFile(weightsPath);
  const onnxPath = encoderOnnxCachePath("dinov2", weightsSha256, DINOV2_CONVERTER_VERSION, { config, inputSize });
  await convertOnce(onnxPath, weightsPath, log, async () => {
    const sd = readStateDict(await readWeightsBytes(weightsPath), weightsPath);
    checkDinov2Layout(sd, config);
    return buildDinov2Onnx(sd, config, { inputSize });
  });
  return { onnxPath, weightsPath, weightsSha256, config, inputSize };
}

async function onlyPth(dir: string): Promise<string> {
  const pths = (await readdir(dir)).filter((f) => /\.pth$/i.test(f)).sort();
  if (pths.length !== 1) {
    throw new DiffevalError(
      "E_WEIGHTS_MISSING",
      `${dir}: expected exactly one .pth file (the DINOv2 state dict) next to config.json, found ${pths.length ? pths.join(", ") : "none"}`,
    );
  }
  return path.join(dir, pths[0]);
}
