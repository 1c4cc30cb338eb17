/**
 * The text-to-image reference protocol on MS-COCO: n images of val2014, one caption each, drawn
 * with a seed so that the prompts a sweep generates from and the reference statistics are the same
 * (image, caption) pairs, and anyone with the same files and seed gets the same pairs.
 *
 * Input: the COCO captions JSON (`captions_val2014.json`): `images: [{id, file_name, ...}]` and
 * `annotations: [{id, image_id, caption}]`, several captions per image.
 *
 * The draw (diffeval's own; papers' "COCO-30k" subsets differ, so record the id list with results):
 * 1. images that have at least one caption, sorted by image id;
 * 2. n of them chosen by `seededSubsetIndices(count, n, seed)` (sources.ts: partial Fisher-Yates
 *    over mulberry32(seed), the draw --limit uses), kept in image-id order;
 * 3. for each chosen image in that order, its captions sorted by annotation id (file order when
 *    ids are missing), one picked with a second mulberry32 stream seeded (seed + 0x9E3779B9) mod 2^32;
 *    surrounding whitespace is trimmed.
 */
import { DiffevalError } from "../errors.js";
import { mulberry32, seededSubsetIndices } from "../random/mulberry32.js";

export interface CocoImage {
  id: number;
  fileName: string;
  captions: string[];
}

export interface CocoPair {
  imageId: number;
  fileName: string;
  caption: string;
}

/** Images with at least one caption, sorted by id, captions in annotation-id order. */
export function parseCocoCaptions(json: unknown, name: string): CocoImage[] {
  const root = json as { images?: unknown; annotations?: unknown } | null;
  if (!root || !Array.isArray(root.images) || !Array.isArray(root.annotations)) {
    throw new DiffevalError(
      "E_COCO_FORMAT",
      `${name}: expected the COCO captions layout {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}`,
    );
  }
  const byId = new Map<number, { fileName: string; captions: { order: number; text: string }[] }>();
  for (const [i, img] of (root.images as Record<string, unknown>[]).entries()) {
    if (!Number.isInteger(img?.id) || typeof img?.file_name !== "string") {
      throw new DiffevalError("E_COCO_FORMAT", `${name}: images[${i}] needs an integer "id" and a string "file_name"`);
    }
    byId.set(img.id as number, { fileName: img.file_name, captions: [] });
  }
  for (const [i, ann] of (root.annotations as Record<string, unknown>[]).entries()) {
    if (!Number.isInteger(ann?.image_id) || typeof ann?.caption !== "string") {
      throw new DiffevalError("E_COCO_FORMAT", `${name}: annotations[${i}] needs an integer "image_id" and a string "caption"`);
    }
    const img = byId.get(ann.image_id as number);
    if (!img) throw new DiffevalError("E_COCO_FORMAT", `${name}: annotations[${i}] refers to image_id ${ann.image_id}, which is not in "images"`);
    img.captions.push({ order: Number.isInteger(ann.id) ? (ann.id as number) : i, text: ann.caption.trim() });
  }
  return [...byId.entries()]
    .filter(([, img]) => img.captions.length > 0)
    .sort(([a], [b]) => a - b)
    .map(([id, img]) => ({ id, fileName: img.fileName, captions: img.captions.sort((x, y) => x.order - y.order).map((c) => c.text) }));
}

/** The seeded draw of n (image, caption) pairs described in the file comment, in image-id order. */
export function pickCocoPairs(images: readonly CocoImage[], n: number, seed: number): CocoPair[] {
  if (n > images.length) {
    throw new DiffevalError("E_USAGE", `--n ${n} is more than the ${images.length} captioned images in the captions file`);
  }
  const captionRandom = mulberry32((seed + 0x9e3779b9) >>> 0);
  return seededSubsetIndices(images.length, n, seed).map((i) => {
    const img = images[i];
    const caption = img.captions[Math.floor(captionRandom() * img.captions.length)];
    return { imageId: img.id, fileName: img.fileName, caption };
  });
}
