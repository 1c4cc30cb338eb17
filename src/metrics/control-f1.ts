/**
 * Control adherence of ControlNet outputs: the pixel F1 of the generated image's Canny edges against
 * the control image's edges, as ControlNet-style evaluations compute it (Zhang et al. 2023; the
 * canny annotator is `cv2.Canny(img, 100, 200)`, reproduced in preprocess/canny.ts).
 *
 * precision = shared edge pixels / generated edge pixels, recall = shared / control edge pixels,
 * F1 = their harmonic mean = 2 shared / (generated + control). An empty denominator gives 0 (no
 * generated edges: precision 0; no control edges: recall 0; neither: F1 0), the convention of the
 * fixtures' expected.json, so that an all-flat pair scores 0 rather than NaN in a mean.
 */
import { DiffevalError } from "../errors.js";
import { cannyEdges } from "../preprocess/canny.js";
import { resizePil8 } from "../preprocess/pil-resample.js";
import type { RgbImage } from "../types.js";

export interface ControlF1Options {
  /** Canny's thresholds (ControlNet's annotator default: 100, 200). */
  low: number;
  high: number;
  /** The control is already an edge map: binarised (any channel nonzero = edge), not re-detected. */
  controlIsEdges?: boolean;
}

export interface ControlF1 {
  precision: number;
  recall: number;
  f1: number;
  generatedEdges: number;
  controlEdges: number;
  truePositives: number;
  /** Set when the generated image's aspect ratio differs from the control's (it is resized anyway). */
  warning?: string;
}

/** ControlNet's canny annotator thresholds, the default of `diffeval control --canny`. */
export const DEFAULT_CANNY: readonly [number, number] = [100, 200];

/**
 * Edge F1 of one generated image against its control. The generated image is first resized to the
 * control's size with Pillow's BICUBIC filter when the sizes differ.
 */
export function controlF1(generated: RgbImage, control: RgbImage, opts: ControlF1Options): ControlF1 {
  const warning = aspectWarning(generated, control);
  const gen = cannyEdges(resizedTo(generated, control.width, control.height), opts);
  const ctl = opts.controlIsEdges ? binarised(control) : cannyEdges(control, opts);
  let generatedEdges = 0;
  let controlEdges = 0;
  let truePositives = 0;
  for (let i = 0; i < gen.length; i++) {
    const g = gen[i] !== 0;
    const c = ctl[i] !== 0;
    if (g) generatedEdges++;
    if (c) controlEdges++;
    if (g && c) truePositives++;
  }
  const precision = generatedEdges > 0 ? truePositives / generatedEdges : 0;
  const recall = controlEdges > 0 ? truePositives / controlEdges : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1, generatedEdges, controlEdges, truePositives, ...(warning ? { warning } : {}) };
}

/** Each fake image's control image (by fake image index) and the edge settings, for the registry's `control` entry. */
export interface ControlImages extends ControlF1Options {
  count: number;
  read(i: number): Promise<RgbImage>;
}

/** Mean control_f1 over the fake images, each against its own control. */
export async function meanControlF1(fake: { count: number; read(i: number): Promise<RgbImage> }, controls: ControlImages): Promise<number> {
  if (controls.count !== fake.count) {
    throw new DiffevalError("E_INTERNAL", `control_f1 needs one control image per generated image: ${controls.count} controls for ${fake.count} images`);
  }
  if (fake.count === 0) throw new DiffevalError("E_EMPTY_SOURCE", "control_f1 needs at least one generated image");
  let sum = 0;
  for (let i = 0; i < fake.count; i++) sum += controlF1(await fake.read(i), await controls.read(i), controls).f1;
  return sum / fake.count;
}

function resizedTo(img: RgbImage, width: number, height: number): RgbImage {
  if (img.width === width && img.height === height) return img;
  return { width, height, data: resizePil8(img.data, img.width, img.height, 3, width, height, "bicubic") };
}

/**
 * A warning when the generated image would be stretched: its width at the control's height differs
 * from the control's width by a pixel or more (ControlNet itself resizes the control to the
 * generation size, so a rounding difference below a pixel is expected and not reported).
 */
function aspectWarning(generated: RgbImage, control: RgbImage): string | undefined {
  const widthAtControlHeight = (generated.width * control.height) / generated.height;
  if (Math.abs(widthAtControlHeight - control.width) < 1) return undefined;
  return (
    `the generated image (${generated.width}x${generated.height}) and its control (${control.width}x${control.height}) ` +
    "have different aspect ratios; the generated image was resized (stretched) to the control's size"
  );
}

/** An edge-map control: any nonzero channel is an edge (255), as it would be drawn. */
function binarised(img: RgbImage): Uint8Array {
  const out = new Uint8Array(img.width * img.height);
  for (let i = 0; i < out.length; i++) if (img.data[i * 3] | img.data[i * 3 + 1] | img.data[i * 3 + 2]) out[i] = 255;
  return out;
}
