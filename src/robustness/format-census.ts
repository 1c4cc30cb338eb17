/**
 * What a set of images is stored as: the share of JPEG / PNG / WebP / other files (from the magic
 * bytes, not the file names) and, for the JPEGs, the IJG quality estimated from their quantisation
 * tables. FID sees compression (Parmar et al., "On Aliased Resizing and Surprising Subtleties in
 * GAN Evaluation", CVPR 2022, sec. 4: JPEG at quality 75 moves FID visibly on images that look the
 * same), so two sets stored differently are not compared on content alone; `diffeval fid` and
 * `diffeval metrics` warn, and `diffeval jpeg` measures how much it matters.
 *
 * The census is taken from bytes the extraction reads anyway (`censusRecorder` wraps the items),
 * so it costs one header parse per image and no extra I/O.
 */
import type { ImageItem } from "../io/sources.js";
import { isJpeg, readJpegHeader } from "./jpeg-header.js";
import { estimateJpegQuality, type JpegQualityEstimate } from "./jpeg-quality.js";
import { isBmp } from "../io/bmp.js";

export const IMAGE_FORMATS = ["jpeg", "png", "webp", "bmp", "other"] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export interface FormatRecord {
  format: ImageFormat;
  /** For JPEGs whose header has quantisation tables. */
  quality?: JpegQualityEstimate;
}

export interface FormatCensus {
  n: number;
  counts: Record<ImageFormat, number>;
  /** counts / n. */
  shares: Record<ImageFormat, number>;
  /** Estimated IJG quality over the JPEGs that have tables: median, range, how many, how many exact. */
  jpeg_quality?: { median: number; min: number; max: number; n: number; exact: number };
}

/** The census of both sides of a comparison; a stats-file side has none. */
export interface CensusPair {
  real?: FormatCensus;
  fake?: FormatCensus;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The container format from the magic bytes: PNG signature (RFC 2083 3.1), JPEG SOI + marker, RIFF....WEBP. */
export function imageFormatOf(bytes: Uint8Array): ImageFormat {
  if (isJpeg(bytes)) return "jpeg";
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return "png";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  // Uncompressed: BMP files, and the rows of image arrays (io/array-source.ts hands them over as BMP).
  if (isBmp(bytes)) return "bmp";
  return "other";
}

/** Format and, for a JPEG, its estimated quality (only the header before the first scan is parsed). */
export function formatRecordOf(bytes: Uint8Array): FormatRecord {
  const format = imageFormatOf(bytes);
  if (format !== "jpeg") return { format };
  const header = readJpegHeader(bytes);
  const quality = header && estimateJpegQuality(header);
  return quality ? { format, quality } : { format };
}

export function formatCensus(records: readonly FormatRecord[]): FormatCensus {
  const counts = { jpeg: 0, png: 0, webp: 0, bmp: 0, other: 0 };
  for (const r of records) counts[r.format]++;
  const n = records.length;
  const shares = Object.fromEntries(IMAGE_FORMATS.map((f) => [f, n ? counts[f] / n : 0])) as Record<ImageFormat, number>;
  const census: FormatCensus = { n, counts, shares };
  const qualities = records.flatMap((r) => (r.quality ? [r.quality] : []));
  if (qualities.length) {
    const sorted = qualities.map((q) => q.quality).sort((a, b) => a - b);
    census.jpeg_quality = {
      median: median(sorted),
      min: sorted[0],
      max: sorted[sorted.length - 1],
      n: sorted.length,
      exact: qualities.filter((q) => q.exact).length,
    };
  }
  return census;
}

function median(sorted: number[]): number {
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
}

export interface CensusRecorder {
  /** The same items, each noting the format of the bytes it returns. */
  watch(items: readonly ImageItem[]): ImageItem[];
  /** The census of the watched items read so far (every item, once extraction has run). */
  census(): FormatCensus;
}

export function censusRecorder(): CensusRecorder {
  const records = new Map<number, FormatRecord>();
  return {
    watch: (items) =>
      items.map((item, i) => ({
        ...item,
        read: async () => {
          const bytes = await item.read();
          records.set(i, formatRecordOf(bytes));
          return bytes;
        },
      })),
    census: () => formatCensus([...records.values()]),
  };
}

/**
 * Two sets "differ in format mix" when some format's share differs by at least this much. A
 * fraction, not any difference: mixed sets of a few dozen images drawn from the same pool differ
 * by a few images by chance.
 */
export const SHARE_TOLERANCE = 0.2;

/** Mostly-JPEG sets whose median estimated qualities differ by at least this much also differ. */
export const QUALITY_TOLERANCE = 5;

/** Why two censuses differ enough to matter for FID, or undefined when they do not. */
export function formatMixDifference(a: FormatCensus, b: FormatCensus): string | undefined {
  const shareGap = Math.max(...IMAGE_FORMATS.map((f) => Math.abs(a.shares[f] - b.shares[f])));
  if (shareGap >= SHARE_TOLERANCE) return "format";
  const qa = a.shares.jpeg >= 0.5 ? a.jpeg_quality?.median : undefined;
  const qb = b.shares.jpeg >= 0.5 ? b.jpeg_quality?.median : undefined;
  if (qa !== undefined && qb !== undefined && Math.abs(qa - qb) >= QUALITY_TOLERANCE) return "JPEG quality";
  return undefined;
}

/** "100% PNG", "47% JPEG (quality ~95), 53% PNG": the non-zero shares, largest first. */
export function describeCensus(c: FormatCensus): string {
  const label: Record<ImageFormat, string> = { jpeg: "JPEG", png: "PNG", webp: "WebP", bmp: "uncompressed (BMP or array)", other: "other" };
  return IMAGE_FORMATS.filter((f) => c.counts[f] > 0)
    .sort((x, y) => c.counts[y] - c.counts[x])
    .map((f) => {
      const q = f === "jpeg" && c.jpeg_quality ? ` (quality ~${c.jpeg_quality.median})` : "";
      return `${Math.round(100 * c.shares[f])}% ${label[f]}${q}`;
    })
    .join(", ");
}

/** The one warning line for a pair stored differently, pointing to `diffeval jpeg`; undefined otherwise. */
export function formatMixWarning(census: CensusPair | undefined, real: string, fake: string): string | undefined {
  if (!census?.real || !census.fake) return undefined;
  const what = formatMixDifference(census.real, census.fake);
  if (!what) return undefined;
  return (
    `warning: the two sets differ in ${what} (real: ${describeCensus(census.real)}; fake: ${describeCensus(census.fake)}); ` +
    `compression alone moves FID: measure how much with \`diffeval jpeg --real ${quoteArg(real)} --fake ${quoteArg(fake)}\``
  );
}

function quoteArg(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
