/**
 * The quality setting a JPEG was saved with, estimated from its quantisation tables.
 *
 * Nearly every encoder people meet (libjpeg, libjpeg-turbo, Pillow, OpenCV, ImageMagick, libvips,
 * browsers' canvas export) builds its tables the IJG way (libjpeg's jcparam.c,
 * `jpeg_quality_scaling` and `jpeg_add_quant_table`): the example tables of ITU-T T.81 Annex K
 * (K.1, luminance; K.2, chrominance) scaled by
 *   scale = quality < 50 ? floor(5000 / quality) : 200 - 2 * quality
 *   entry = clamp(floor((base * scale + 50) / 100), 1, 255)      (255: "force_baseline")
 * So for such files the quality is recovered exactly by finding the q whose scaled tables equal
 * the stored ones. Other encoders (Photoshop, cameras, mozjpeg's own tables) use other base tables:
 * for those the best-fitting IJG quality is an "IJG-equivalent" estimate, as ImageMagick's
 * `identify -format %Q` and GIMP's jpeg-quality.c also report one, and `exact` is false.
 */
import type { JpegHeader } from "./jpeg-header.js";

/** ITU-T T.81 Table K.1, luminance, in natural (row-major) order. */
const ANNEX_K_LUMINANCE = [
  16, 11, 10, 16, 24, 40, 51, 61,
  12, 12, 14, 19, 26, 58, 60, 55,
  14, 13, 16, 24, 40, 57, 69, 56,
  14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77,
  24, 35, 55, 64, 81, 104, 113, 92,
  49, 64, 78, 87, 103, 121, 120, 101,
  72, 92, 95, 98, 112, 100, 103, 99,
];

/** ITU-T T.81 Table K.2, chrominance, in natural order. */
const ANNEX_K_CHROMINANCE = [
  17, 18, 24, 47, 99, 99, 99, 99,
  18, 21, 26, 66, 99, 99, 99, 99,
  24, 26, 56, 99, 99, 99, 99, 99,
  47, 66, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99,
];

/**
 * Natural-order index of the k-th coefficient in zig-zag order (T.81 Figure A.6): the
 * anti-diagonals i + j = s in turn, walked up-right for even s and down-left for odd s.
 */
export const ZIGZAG_TO_NATURAL: readonly number[] = (() => {
  const order: number[] = [];
  for (let s = 0; s <= 14; s++) {
    const rows: number[] = [];
    for (let i = Math.max(0, s - 7); i <= Math.min(s, 7); i++) rows.push(i);
    if (s % 2 === 0) rows.reverse();
    for (const i of rows) order.push(i * 8 + (s - i));
  }
  return order;
})();

/** libjpeg's `jpeg_quality_scaling`: the percentage the Annex K tables are scaled by. */
export function ijgScaleFactor(quality: number): number {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  return q < 50 ? Math.floor(5000 / q) : 200 - 2 * q;
}

/** The IJG table for a quality, in zig-zag order (as stored in a DQT segment), baseline-clamped. */
export function ijgQuantTable(kind: "luminance" | "chrominance", quality: number): Uint16Array {
  const base = kind === "luminance" ? ANNEX_K_LUMINANCE : ANNEX_K_CHROMINANCE;
  const scale = ijgScaleFactor(quality);
  const out = new Uint16Array(64);
  for (let k = 0; k < 64; k++) {
    const v = Math.floor((base[ZIGZAG_TO_NATURAL[k]] * scale + 50) / 100);
    out[k] = Math.min(255, Math.max(1, v));
  }
  return out;
}

export interface JpegQualityEstimate {
  /** The IJG quality (1..100) whose tables are closest to the file's. */
  quality: number;
  /** True when the file's tables are exactly the IJG tables of that quality. */
  exact: boolean;
}

const IJG_TABLES = Array.from({ length: 100 }, (_, i) => ({
  quality: i + 1,
  luminance: ijgQuantTable("luminance", i + 1),
  chrominance: ijgQuantTable("chrominance", i + 1),
}));

/**
 * The best-fitting IJG quality: the q minimising the summed absolute difference between the
 * file's luminance (and, for colour files, chrominance) table and the IJG tables of q. The
 * luminance table is the one the first component uses, the chrominance one the second's
 * (T.81 B.2.2), falling back to table ids 0 and 1 when there is no frame header.
 */
export function estimateJpegQuality(header: JpegHeader): JpegQualityEstimate | undefined {
  const [first, second] = header.components;
  const luminance = header.quantTables.get(first?.tq ?? 0);
  if (!luminance) return undefined;
  const chrominance = header.components.length === 1 ? undefined : header.quantTables.get(second?.tq ?? 1);
  let best = { quality: 0, distance: Infinity };
  for (const t of IJG_TABLES) {
    const distance = tableDistance(luminance, t.luminance) + (chrominance ? tableDistance(chrominance, t.chrominance) : 0);
    if (distance < best.distance) best = { quality: t.quality, distance };
  }
  return { quality: best.quality, exact: best.distance === 0 };
}

function tableDistance(a: Uint16Array, b: Uint16Array): number {
  let sum = 0;
  for (let k = 0; k < 64; k++) sum += Math.abs(a[k] - b[k]);
  return sum;
}
