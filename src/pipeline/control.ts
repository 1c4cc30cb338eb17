/**
 * `diffeval control`: control adherence (metrics/control-f1.ts) of generated images against their
 * ControlNet control images, given as a pairs CSV (`image,control`, paths relative to the CSV, as
 * io/csv.ts reads `image,prompt`) or as two folders matched by file name.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { DiffevalError } from "../errors.js";
import { readCsvTable } from "../io/csv.js";
import { decodeImage } from "../io/decode.js";
import { compareCodePoints, hasImageExtension } from "../io/sources.js";
import { controlF1 } from "../metrics/control-f1.js";
import type { RgbImage } from "../types.js";

export interface ControlPair {
  /** The paths as the CSV wrote them (or the file names of the two folders). */
  image: string;
  control: string;
  imagePath: string;
  controlPath: string;
}

export interface ControlOptions {
  low: number;
  high: number;
  controlIsEdges?: boolean;
  /** Warnings (an aspect ratio that differs between an image and its control). */
  warn?: (line: string) => void;
}

export interface ControlReport {
  control_f1: number;
  canny: [number, number];
  n: number;
  per_image: { image: string; control: string; precision: number; recall: number; f1: number }[];
}

/** control_f1 of each pair and their mean. */
export async function runControl(pairs: readonly ControlPair[], opts: ControlOptions): Promise<ControlReport> {
  if (pairs.length === 0) throw new DiffevalError("E_EMPTY_SOURCE", "no image/control pairs to evaluate");
  const perImage: ControlReport["per_image"] = [];
  for (const p of pairs) {
    const r = controlF1(await readImage(p.imagePath), await readImage(p.controlPath), opts);
    if (r.warning) opts.warn?.(`warning: ${p.image}: ${r.warning}`);
    perImage.push({ image: p.image, control: p.control, precision: r.precision, recall: r.recall, f1: r.f1 });
  }
  const mean = perImage.reduce((s, r) => s + r.f1, 0) / perImage.length;
  return { control_f1: mean, canny: [opts.low, opts.high], n: perImage.length, per_image: perImage };
}

/** The `image,control` rows of a CSV (header required, any column order, blank lines skipped); every named file must exist. */
export async function readControlPairsCsv(file: string): Promise<ControlPair[]> {
  const base = path.dirname(path.resolve(file));
  const pairs = (await readCsvTable(file, ["image", "control"])).map(({ record, values: { image, control } }) => {
    if (image.trim() === "" || control.trim() === "") throw new DiffevalError("E_PAIRS_FORMAT", `${file}: record ${record} has an empty path`);
    return { image, control, imagePath: path.resolve(base, image), controlPath: path.resolve(base, control) };
  });
  await Promise.all(pairs.flatMap((p) => [mustExist(p.imagePath, `${file}: ${p.image}`), mustExist(p.controlPath, `${file}: ${p.control}`)]));
  return pairs;
}

/** The images of two folders paired by file name; a name on one side only is an error naming it. */
export async function pairFoldersByName(imagesDir: string, controlsDir: string): Promise<ControlPair[]> {
  const [images, controls] = await Promise.all([imageNames(imagesDir), imageNames(controlsDir)]);
  const controlSet = new Set(controls);
  const imageSet = new Set(images);
  const lonely = images.find((n) => !controlSet.has(n));
  if (lonely) throw new DiffevalError("E_SOURCE", `${path.join(imagesDir, lonely)} has no control of the same name in ${controlsDir}`);
  const orphan = controls.find((n) => !imageSet.has(n));
  if (orphan) throw new DiffevalError("E_SOURCE", `${path.join(controlsDir, orphan)} has no image of the same name in ${imagesDir}`);
  return images.map((n) => ({ image: n, control: n, imagePath: path.join(imagesDir, n), controlPath: path.join(controlsDir, n) }));
}

async function imageNames(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new DiffevalError("E_SOURCE", `${dir}: cannot read the folder (${(e as Error).message})`);
  }
  const names = entries.filter((e) => e.isFile() && hasImageExtension(e.name)).map((e) => e.name);
  if (names.length === 0) throw new DiffevalError("E_EMPTY_SOURCE", `${dir}: no images (.png, .jpg, .jpeg, .webp, .bmp, .tif)`);
  return names.sort(compareCodePoints);
}

async function mustExist(file: string, label: string): Promise<void> {
  const isFile = await stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!isFile) throw new DiffevalError("E_SOURCE", `${label}: no such file (${file})`);
}

async function readImage(file: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new DiffevalError("E_SOURCE", `${file}: cannot read the image (${(e as Error).message})`);
  }
  return decodeImage(bytes, file);
}
