/**
 * Which encoded image format a byte string is, from its magic bytes. Generators return whatever
 * their engine writes (A1111 follows `opts.samples_format`: png by default, jpg/webp possible;
 * an external command may write anything), so the format is read from the bytes, never trusted
 * from a file name.
 */
export type ImageFormat = "png" | "jpg" | "webp";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** "png", "jpg", "webp", or undefined when the bytes are none of these. */
export function imageFormatOf(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return "png";
  // JPEG: SOI marker FF D8 followed by the next marker's FF.
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpg";
  // WebP: a RIFF container whose form type is "WEBP".
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return "webp";
  return undefined;
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}
