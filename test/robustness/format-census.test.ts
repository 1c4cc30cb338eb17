import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { ImageItem } from "../../src/io/sources.js";
import {
  censusRecorder,
  describeCensus,
  formatCensus,
  formatMixDifference,
  formatMixWarning,
  imageFormatOf,
  type FormatRecord,
} from "../../src/robustness/format-census.js";
import { fixture } from "../helpers/fixtures.js";

const bytes = (...b: number[]) => new Uint8Array(b);
const ascii = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

describe("imageFormatOf (magic bytes, not names)", () => {
  it("tells JPEG, PNG, WebP, uncompressed BMP (and array rows) and other apart", async () => {
    const rgb = { raw: { width: 4, height: 4, channels: 3 as const } };
    const px = new Uint8Array(48).fill(200);
    expect(imageFormatOf(new Uint8Array(await sharp(px, rgb).jpeg().toBuffer()))).toBe("jpeg");
    expect(imageFormatOf(new Uint8Array(await sharp(px, rgb).png().toBuffer()))).toBe("png");
    expect(imageFormatOf(new Uint8Array(await sharp(px, rgb).webp().toBuffer()))).toBe("webp");
    expect(imageFormatOf(new Uint8Array(await sharp(px, rgb).tiff().toBuffer()))).toBe("other");
    expect(imageFormatOf(ascii("BM6\0\0\0"))).toBe("bmp");
    expect(imageFormatOf(ascii("RIFF\0\0\0\0WAVE"))).toBe("other");
    expect(imageFormatOf(bytes(0xff, 0xd8))).toBe("other"); // too short to be a JPEG
    expect(imageFormatOf(new Uint8Array(0))).toBe("other");
  });

  it("classifies a mis-named file by its content", () => {
    expect(imageFormatOf(new Uint8Array(readFileSync(fixture("images", "odd", "not-an-image.png"))))).toBe("other");
  });
});

describe("formatCensus", () => {
  it("counts the fixture sets as their file names say, with the JPEGs' quality", async () => {
    for (const side of ["real", "fake"]) {
      const dir = fixture("images", side);
      const names = readdirSync(dir);
      const recorder = censusRecorder();
      const items: ImageItem[] = names.map((n) => ({
        name: n,
        location: path.join(dir, n),
        read: async () => new Uint8Array(readFileSync(path.join(dir, n))),
      }));
      for (const item of recorder.watch(items)) await item.read();
      const c = recorder.census();
      const jpg = names.filter((n) => n.endsWith(".jpg")).length;
      const png = names.filter((n) => n.endsWith(".png")).length;
      expect(c.counts).toEqual({ jpeg: jpg, png, webp: 0, bmp: 0, other: 0 });
      expect(c.n).toBe(names.length);
      expect(c.shares.jpeg).toBeCloseTo(jpg / names.length, 12);
      expect(c.jpeg_quality).toEqual({ median: 95, min: 95, max: 95, n: jpg, exact: jpg });
    }
  });

  it("counts an item read twice once", async () => {
    const recorder = censusRecorder();
    const [item] = recorder.watch([{ name: "a", location: "a", read: async () => ascii("\x89PNG\r\n\x1a\n....") }]);
    await item.read();
    await item.read();
    expect(recorder.census().counts.png).toBe(1);
  });
});

const census = (records: FormatRecord[]) => formatCensus(records);
const png = (n: number): FormatRecord[] => Array.from({ length: n }, () => ({ format: "png" }));
const jpeg = (n: number, quality: number): FormatRecord[] => Array.from({ length: n }, () => ({ format: "jpeg", quality: { quality, exact: true } }));

describe("formatMixDifference and the warning", () => {
  it("fires for PNG-only against JPEG-only and names diffeval jpeg", () => {
    const pair = { real: census(png(10)), fake: census(jpeg(10, 75)) };
    expect(formatMixDifference(pair.real, pair.fake)).toBe("format");
    const line = formatMixWarning(pair, "./coco", "out dir")!;
    expect(line).toBe(
      "warning: the two sets differ in format (real: 100% PNG; fake: 100% JPEG (quality ~75)); compression alone moves FID: " +
        "measure how much with `diffeval jpeg --real ./coco --fake 'out dir'`",
    );
    expect(line.split("\n")).toHaveLength(1);
  });

  it("stays quiet for matching sets and for small chance differences in a mixed pair", () => {
    expect(formatMixDifference(census(png(8)), census(png(20)))).toBeUndefined();
    expect(formatMixDifference(census([...png(17), ...jpeg(15, 95)]), census([...png(14), ...jpeg(18, 95)]))).toBeUndefined();
    expect(formatMixWarning({ real: census(png(3)) }, "a", "stats.npz")).toBeUndefined(); // a stats side has no census
  });

  it("fires for mostly-JPEG sets saved at clearly different qualities", () => {
    expect(formatMixDifference(census(jpeg(10, 75)), census(jpeg(10, 95)))).toBe("JPEG quality");
    expect(formatMixDifference(census(jpeg(10, 93)), census(jpeg(10, 95)))).toBeUndefined();
  });

  it("describes a mixed set largest share first", () => {
    expect(describeCensus(census([...png(1), ...jpeg(3, 90)]))).toBe("75% JPEG (quality ~90), 25% PNG");
  });
});
