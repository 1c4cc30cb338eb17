/**
 * The JPEG-robustness check: how far FID moves when only the compression changes.
 *
 * The real set's decoded pixels are re-encoded in memory at each quality (jpeg-encoder.ts) and
 * the copies go through the same extractor as the originals. Per quality it reports
 * FID(real, JPEG_q(real)) next to the mean PSNR and SSIM between each image and its copy, so
 * "looks identical" and "moves FID by this much" sit side by side (Parmar et al., CVPR 2022, sec. 4,
 * show the effect); with a fake set also FID(real, fake) and FID(JPEG_q(real), fake), which says
 * whether compressing the reference like the fakes closes part of the gap.
 *
 * The uncompressed sets go through the on-disk feature cache as usual; the copies only with
 * `cacheVariants` (they are cheap to remake and would fill the cache with files nobody has).
 */
import { DiffevalError } from "../errors.js";
import { DEFAULT_ENCODER } from "../features/encoders.js";
import type { Extractor, ExtractorOptions } from "../features/extractor.js";
import type { SkippedImage } from "../features/extract.js";
import { decodeImage, type RgbImage } from "../io/decode.js";
import { extractSource, featureSpaceMeta, isStatsFile, resolveStatsSource, type ResolvedSource } from "./resolve-source.js";
import type { ImageItem, ImageSourceOptions } from "../io/sources.js";
import { assertComparable, plannedProtocol } from "./source-pair.js";
import { withExtraction } from "./with-extraction.js";
import { frechetDistanceOfSides } from "../stats/frechet.js";
import type { FeatureMatrix } from "../types.js";
import { VERSION } from "../version.js";
import { psnr, ssim } from "../robustness/image-similarity.js";
import { encodeJpeg, jpegEncoderInfo, type JpegEncoderInfo } from "../robustness/jpeg-encoder.js";

export const DEFAULT_QUALITIES: readonly number[] = [100, 95, 90, 75, 50];

export interface JpegCheckOptions extends ExtractorOptions, ImageSourceOptions {
  /** Images (folder, list file or zip): the set that is re-encoded. */
  real: string;
  /** Optional generated set to compare with: images, a stats .npz or a reference-statistics name. */
  fake?: string;
  /** JPEG qualities, 1..100 (default 100, 95, 90, 75, 50). */
  qualities?: readonly number[];
  limit?: number;
  seed?: number;
  /** Compare even when a stats-file fake disagrees on protocol or weights. */
  force?: boolean;
  /** Also keep the JPEG copies' features in the on-disk cache. */
  cacheVariants?: boolean;
  /** Progress per pass: "real", "fake", then "q100", "q95", ... */
  onProgress?: (pass: string, done: number, total: number) => void;
  /** Each JPEG copy as it is made (e.g. to write it out and check it with another tool). */
  onVariant?: (variant: { quality: number; name: string; bytes: Uint8Array }) => void | Promise<void>;
}

/** One quality's row: the JSON `results` entry. */
export interface JpegQualityResult {
  quality: number;
  fid_real_vs_jpeg: number;
  /** Mean over images of the PSNR (dB) between each image and its copy; +Infinity if any is lossless. */
  psnr: number;
  /** Mean over images of the SSIM (image-similarity.ts); images under 11 px are left out. */
  ssim: number;
  /** Bits per pixel of the copies (all bytes over all pixels). */
  bpp: number;
  fid_jpeg_vs_fake?: number;
}

/** One image at every quality, for the report's strip. */
export interface JpegSample {
  name: string;
  original: RgbImage;
  variants: { quality: number; bytes: Uint8Array; image: RgbImage }[];
}

export interface JpegCheckResult {
  results: JpegQualityResult[];
  fid_real_vs_fake?: number;
  /** The JPEG encoder (its settings). */
  encoder: JpegEncoderInfo;
  /** The feature space the distances are in, when it is not inception (they are then FDs, not FIDs). */
  feature_encoder?: string;
  protocol: string;
  weights_sha256: string;
  n_real: number;
  n_fake?: number | null;
  real: string;
  fake?: string;
  seconds: number;
  version: string;
  device?: string;
  /** Undecodable images left out with `skipBad`, per side. */
  skipped: { real: SkippedImage[]; fake: SkippedImage[] };
  sample: JpegSample;
}

export async function runJpegCheck(opts: JpegCheckOptions): Promise<JpegCheckResult> {
  const t0 = performance.now();
  const qualities = checkedQualities(opts.qualities ?? DEFAULT_QUALITIES);
  if (await isStatsFile(opts.real, opts.arrayKey)) {
    throw new DiffevalError("E_USAGE", `${opts.real}: the JPEG check re-encodes the real images; --real must be images (folder, list file or zip), not a stats file`);
  }
  const fakeStats = opts.fake ? await resolveStatsSource(opts.fake, { log: opts.log, onProgress: opts.onDownloadProgress, arrayKey: opts.arrayKey }) : undefined;
  const encoder = opts.encoder ?? DEFAULT_ENCODER;
  const protocol = plannedProtocol(encoder, opts.protocol, [fakeStats]);
  if (fakeStats && !opts.force) assertComparable(fakeStats, { spec: opts.real, meta: featureSpaceMeta(encoder, protocol) });

  const specs = [opts.real, opts.fake && !fakeStats ? opts.fake : undefined];
  return withExtraction(specs, { ...opts, protocol }, async ([realImages, fakeImages], extractor) => {
    const progress = (pass: string) => (done: number, total: number) => opts.onProgress?.(pass, done, total);
    const real = await extractSource(opts.real, realImages!, extractor, { onProgress: progress("real") });
    const fake = fakeStats ?? (fakeImages && (await extractSource(opts.fake!, fakeImages, extractor, { onProgress: progress("fake") })));
    if (fake && !opts.force) assertComparable(real, fake);

    const items = decodableItems(realImages!.items, real);
    const sample: JpegSample = { name: items[0].name, original: await decodeImage(await items[0].read(), items[0].location), variants: [] };
    const results: JpegQualityResult[] = [];
    for (const quality of qualities) {
      const pass = await jpegPass(extractor, items, quality, sample, opts, progress(`q${quality}`));
      results.push({
        quality,
        fid_real_vs_jpeg: frechetDistanceOfSides(real, { features: pass.features }).value,
        psnr: pass.psnr,
        ssim: pass.ssim,
        bpp: pass.bpp,
        ...(fake ? { fid_jpeg_vs_fake: frechetDistanceOfSides({ features: pass.features }, fake).value } : {}),
      });
    }
    return {
      results,
      ...(fake ? { fid_real_vs_fake: frechetDistanceOfSides(real, fake).value } : {}),
      encoder: jpegEncoderInfo(),
      ...(extractor.encoder !== "inception" ? { feature_encoder: extractor.encoder } : {}),
      protocol: extractor.protocol,
      weights_sha256: extractor.model.weightsSha256,
      n_real: real.gaussian.n,
      ...(fake ? { n_fake: fake.gaussian.n || null, fake: opts.fake } : {}),
      real: opts.real,
      seconds: (performance.now() - t0) / 1000,
      version: VERSION,
      device: extractor.device,
      skipped: { real: real.skipped, fake: fake?.skipped ?? [] },
      sample,
    };
  });
}

function checkedQualities(qualities: readonly number[]): number[] {
  for (const q of qualities) {
    if (!Number.isInteger(q) || q < 1 || q > 100) {
      throw new DiffevalError("E_USAGE", `JPEG qualities are integers from 1 to 100, got '${q}'`);
    }
  }
  if (qualities.length === 0) throw new DiffevalError("E_USAGE", "no JPEG qualities given");
  return [...new Set(qualities)].sort((a, b) => b - a);
}

/** The items that have a feature row (undecodable ones skipped with --skip-bad have none). */
function decodableItems(items: ImageItem[], real: ResolvedSource): ImageItem[] {
  const skipped = new Set(real.skipped.map((s) => s.name));
  return items.filter((item) => !skipped.has(item.name));
}

interface JpegPass {
  features: FeatureMatrix;
  psnr: number;
  ssim: number;
  bpp: number;
}

/**
 * Features of the JPEG copies at one quality. Each copy is made when the extractor reads it, and
 * compared with its original right there, so no set of copies is ever held in memory.
 */
async function jpegPass(
  extractor: Extractor,
  items: ImageItem[],
  quality: number,
  sample: JpegSample,
  opts: JpegCheckOptions,
  onProgress: (done: number, total: number) => void,
): Promise<JpegPass> {
  const n = items.length;
  const psnrs = new Float64Array(n);
  const ssims = new Float64Array(n).fill(NaN);
  let bytes = 0;
  let pixels = 0;
  const copies: ImageItem[] = items.map((item, i) => ({
    name: item.name,
    location: `${item.location} (JPEG q${quality})`,
    read: async () => {
      const original = i === 0 ? sample.original : await decodeImage(await item.read(), item.location);
      const jpeg = await encodeJpeg(original, quality);
      const copy = await decodeImage(jpeg, `${item.location} (JPEG q${quality})`);
      psnrs[i] = psnr(original, copy);
      if (Math.min(copy.width, copy.height) >= 11) ssims[i] = ssim(original, copy);
      bytes += jpeg.length;
      pixels += copy.width * copy.height;
      if (i === 0) sample.variants.push({ quality, bytes: jpeg, image: copy });
      await opts.onVariant?.({ quality, name: item.name, bytes: jpeg });
      return jpeg;
    },
  }));
  const out = await extractor.extract(copies, onProgress, { cache: opts.cacheVariants === true });
  return { features: out.embedding, psnr: mean(psnrs), ssim: mean(ssims.filter((v) => !Number.isNaN(v))), bpp: (8 * bytes) / pixels };
}

function mean(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return values.length ? sum / values.length : NaN;
}
