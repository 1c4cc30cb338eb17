/**
 * Per-image cost of decoding and of each protocol's preprocessing (single thread), in ms/image:
 * the fixture's real images (PNG and JPEG, 128x128 to 512x384), plus 256x256 crops of them,
 * the typical size of generated images. Coefficient tables are warmed first (they are cached per
 * size pair), so the numbers are the steady state of a long run.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { decodeImage } from "../src/io/decode.js";
import { PROTOCOLS, type ProtocolName } from "../src/preprocess/protocols.js";
import { fixture } from "../test/helpers/fixtures.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

export async function benchPreprocess(): Promise<Record<string, number>> {
  const dir = fixture("images", "real");
  const files = (await readdir(dir)).sort();
  const encoded = await Promise.all(files.map(async (f) => new Uint8Array(await readFile(path.join(dir, f)))));
  const crops = await Promise.all(encoded.map(crop256Png));
  const result: Record<string, number> = { images: files.length, rounds: ROUNDS };
  result.decode_fixture_ms = await msPerImage(encoded, (b, i) => decodeImage(b, files[i]));
  result.decode_256_png_ms = await msPerImage(crops, (b, i) => decodeImage(b, files[i]));
  const decoded = await Promise.all(encoded.map((b, i) => decodeImage(b, files[i])));
  const decoded256 = await Promise.all(crops.map((b, i) => decodeImage(b, files[i])));
  for (const name of Object.keys(PROTOCOLS) as ProtocolName[]) {
    const p = PROTOCOLS[name];
    result[`${name}_fixture_ms`] = await msPerImage(decoded, (img) => p.preprocess(img));
    result[`${name}_256_ms`] = await msPerImage(decoded256, (img) => p.preprocess(img));
  }
  return result;
}

/** A 256x256 PNG crop (the fixture images are at least 128 on a side: upscale those first). */
async function crop256Png(bytes: Uint8Array): Promise<Uint8Array> {
  const out = await sharp(bytes).resize(256, 256, { fit: "cover" }).png().toBuffer();
  return new Uint8Array(out);
}

async function msPerImage<T>(inputs: T[], fn: (x: T, i: number) => unknown): Promise<number> {
  for (let i = 0; i < inputs.length; i++) await fn(inputs[i], i); // warm-up: JIT, coefficient caches
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) for (let i = 0; i < inputs.length; i++) await fn(inputs[i], i);
  return (performance.now() - t0) / (ROUNDS * inputs.length);
}

