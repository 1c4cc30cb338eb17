/**
 * The JPEG encoder of the robustness check, with every setting that changes pixels spelled out.
 *
 * The goal is "what common encoders do": libjpeg / libjpeg-turbo as called by Pillow's
 * `save(..., quality=q)`, OpenCV's `imwrite` and most camera-less pipelines: baseline sequential
 * JPEG, 4:2:0 chroma subsampling, the IJG (ITU-T T.81 Annex K) tables scaled by quality, plain
 * rounding quantisation, the accurate integer DCT.
 *
 * sharp writes JPEG through libvips with mozjpeg. libvips first resets mozjpeg to its
 * libjpeg-compatible profile (`JINT_COMPRESS_PROFILE = JCP_FASTEST`, then `jpeg_set_defaults` and
 * `jpeg_set_quality(q, force_baseline=TRUE)`, libvips vips2jpeg.c), and only then turns on the
 * mozjpeg extras it is asked for. So we ask for none of them:
 * - `mozjpeg: false`, `trellisQuantisation: false`, `overshootDeringing: false`,
 *   `optimiseScans: false`, `progressive: false`, `quantisationTable: 0` (Annex K tables);
 * - `chromaSubsampling: "4:2:0"` at every quality, the libjpeg default (libvips/ImageMagick turn
 *   subsampling off at quality >= 90 only in their "auto" mode, which sharp does not use);
 * - `optimiseCoding: true` (optimal Huffman tables): entropy coding only, lossless, so the decoded
 *   pixels are those of libjpeg's default tables; it only makes the files smaller.
 * No metadata is written. The bytes are deterministic for a given sharp/libvips/mozjpeg build.
 */
import sharp, { type JpegOptions } from "sharp";
import type { RgbImage } from "../io/decode.js";

export const JPEG_SETTINGS = {
  chromaSubsampling: "4:2:0",
  progressive: false,
  mozjpeg: false,
  trellisQuantisation: false,
  overshootDeringing: false,
  optimiseScans: false,
  optimiseCoding: true,
  quantisationTable: 0,
} as const satisfies JpegOptions;

/** The encoder, as recorded in results (JSON `encoder`). */
export interface JpegEncoderInfo {
  library: string;
  subsampling: string;
  progressive: boolean;
  quantisation_tables: string;
  trellis_quantisation: boolean;
  overshoot_deringing: boolean;
  optimise_scans: boolean;
  optimise_coding: boolean;
  dct: string;
}

export function jpegEncoderInfo(): JpegEncoderInfo {
  const v = sharp.versions as Record<string, string | undefined>;
  return {
    library: `sharp ${v.sharp ?? "?"} (libvips ${v.vips ?? "?"}, mozjpeg ${v.mozjpeg ?? "?"} in its libjpeg-compatible profile)`,
    subsampling: JPEG_SETTINGS.chromaSubsampling,
    progressive: JPEG_SETTINGS.progressive,
    quantisation_tables: "IJG / ITU-T T.81 Annex K scaled by quality, baseline (<= 255)",
    trellis_quantisation: JPEG_SETTINGS.trellisQuantisation,
    overshoot_deringing: JPEG_SETTINGS.overshootDeringing,
    optimise_scans: JPEG_SETTINGS.optimiseScans,
    optimise_coding: JPEG_SETTINGS.optimiseCoding,
    dct: "accurate integer (islow)",
  };
}

/** One line for the terminal. */
export function describeJpegEncoder(info: JpegEncoderInfo = jpegEncoderInfo()): string {
  const onOff = (b: boolean) => (b ? "on" : "off");
  return (
    `${info.library}: baseline${info.progressive ? " progressive" : " sequential"}, ${info.subsampling} chroma subsampling, ` +
    `${info.quantisation_tables}, ${info.dct} DCT, trellis quantisation ${onOff(info.trellis_quantisation)}, ` +
    `overshoot deringing ${onOff(info.overshoot_deringing)}, scan optimisation ${onOff(info.optimise_scans)}, ` +
    `Huffman optimisation ${onOff(info.optimise_coding)} (lossless)`
  );
}

/** The JPEG bytes of an RGB image at a quality (1..100). */
export async function encodeJpeg(img: RgbImage, quality: number): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ ...JPEG_SETTINGS, quality })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
