/**
 * `diffeval stats coco30k`: the COCO text-to-image reference. Draws n (image, caption) pairs
 * (coco-captions.ts), centre-crops and resizes each image to the chosen resolution (Pillow 8-bit
 * bicubic, preprocess/centre-crop.ts), runs the resized images through the normal extractor and
 * protocol, and writes into one folder:
 *   prompts.jsonl   {"image_id": 42, "caption": "..."} per line, image-id order: the sweep's prompts
 *   image_ids.txt   the ids, one per line, same order
 *   stats.npz       mu, sigma and meta (protocol, weights, n, the draw's settings, ids' sha256)
 * The resized images reach the extractor as lossless PNG bytes built in memory, so they take the
 * same decode -> protocol resize -> network path (and feature cache) as any image file.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { DiffevalError } from "../errors.js";
import { parseJsonText } from "../io/read-json.js";
import { withExtraction } from "./with-extraction.js";
import type { ExtractorOptions } from "../features/extractor.js";
import { writeFileAtomic } from "../io/atomic.js";
import { decodeImage } from "../io/decode.js";
import { writeStatsNpz } from "../io/npz.js";
import { extractSource } from "./resolve-source.js";
import type { ImageItem } from "../io/sources.js";
import { centreCropResize } from "../preprocess/centre-crop.js";
import { VERSION } from "../version.js";
import { parseCocoCaptions, pickCocoPairs, type CocoPair } from "../reference/coco-captions.js";

export interface CocoReferenceOptions extends ExtractorOptions {
  /** The val2014 image folder (file names as in the captions JSON). */
  images: string;
  /** captions_val2014.json */
  captions: string;
  /** Output folder. */
  out: string;
  n: number;
  seed: number;
  /** Side of the square the images are resized to. */
  resolution: number;
  onProgress?: (done: number, total: number) => void;
}

export interface CocoReference {
  n: number;
  protocol: string;
  files: { prompts: string; ids: string; stats: string };
}

export const COCO_FILES = { prompts: "prompts.jsonl", ids: "image_ids.txt", stats: "stats.npz" } as const;

export async function buildCocoReference(opts: CocoReferenceOptions): Promise<CocoReference> {
  const captionsBytes = await readFile(opts.captions).catch((e: NodeJS.ErrnoException) => {
    throw new DiffevalError("E_SOURCE", `${opts.captions}: cannot read the captions file (${e.code ?? e.message})`);
  });
  const pairs = pickCocoPairs(parseCocoCaptions(parseJson(captionsBytes, opts.captions), opts.captions), opts.n, opts.seed);
  await assertImagesPresent(pairs, opts.images);
  const items = pairs.map((p) => resizedItem(p, opts.images, opts.resolution));
  // The items are made here (cropped and resized in memory), so no image source is opened.
  return withExtraction([], opts, async (_none, extractor) => {
    const spec = `coco:${opts.images}`;
    const source = { kind: "folder" as const, items, close: async () => {} };
    const resolved = await extractSource(spec, source, extractor, { onProgress: opts.onProgress });
    const idsText = pairs.map((p) => `${p.imageId}\n`).join("");
    const files = {
      prompts: path.join(opts.out, COCO_FILES.prompts),
      ids: path.join(opts.out, COCO_FILES.ids),
      stats: path.join(opts.out, COCO_FILES.stats),
    };
    const meta = {
      ...resolved.meta,
      source: "coco-val2014",
      coco: {
        images: opts.images,
        captions: opts.captions,
        captions_sha256: sha256(captionsBytes),
        n: opts.n,
        seed: opts.seed,
        resolution: opts.resolution,
        crop: "centre square, offsets floor((w-s)/2), floor((h-s)/2)",
        resize: "Pillow 8-bit BICUBIC",
        ids_sha256: sha256(idsText),
      },
      tool: "diffeval",
      tool_version: VERSION,
      date: new Date().toISOString(),
    };
    await writeFileAtomic(files.prompts, pairs.map(promptLine).join(""));
    await writeFileAtomic(files.ids, idsText);
    await writeFileAtomic(files.stats, writeStatsNpz(resolved.gaussian, meta));
    return { n: resolved.gaussian.n, protocol: extractor.protocol, files };
  });
}

/** One line of prompts.jsonl. */
function promptLine(p: CocoPair): string {
  return `${JSON.stringify({ image_id: p.imageId, caption: p.caption })}\n`;
}

function parseJson(bytes: Uint8Array, name: string): unknown {
  return parseJsonText(new TextDecoder().decode(bytes), name, "E_COCO_FORMAT", "COCO's captions_val2014.json");
}

/** Every chosen image must be there: a silently smaller set would no longer match the prompts. */
async function assertImagesPresent(pairs: readonly CocoPair[], dir: string): Promise<void> {
  const missing: string[] = [];
  for (const p of pairs) {
    const st = await stat(path.join(dir, p.fileName)).catch(() => null);
    if (!st?.isFile()) missing.push(p.fileName);
  }
  if (missing.length > 0) {
    throw new DiffevalError(
      "E_SOURCE",
      `${missing.length} of the ${pairs.length} chosen images are not in ${dir} (e.g. ${missing.slice(0, 3).join(", ")}); ` +
        `--images must be the folder holding the files named in the captions JSON (val2014/)`,
    );
  }
}

/** An item whose bytes are the centre-cropped, resized image as PNG (lossless, so the pixels are exact). */
function resizedItem(p: CocoPair, dir: string, side: number): ImageItem {
  const file = path.join(dir, p.fileName);
  return {
    name: p.fileName,
    location: file,
    read: async () => {
      const img = centreCropResize(await decodeImage(new Uint8Array(await readFile(file)), file), side);
      const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
        .png({ compressionLevel: 1 })
        .toBuffer();
      return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
    },
  };
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}
