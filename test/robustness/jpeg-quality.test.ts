import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImage, type RgbImage } from "../../src/io/decode.js";
import { encodeJpeg } from "../../src/robustness/jpeg-encoder.js";
import { chromaSubsampling, readJpegHeader } from "../../src/robustness/jpeg-header.js";
import { estimateJpegQuality, ijgQuantTable, ijgScaleFactor, ZIGZAG_TO_NATURAL } from "../../src/robustness/jpeg-quality.js";
import { fixture } from "../helpers/fixtures.js";

const realDir = fixture("images", "real");

async function fixtureImage(name: string): Promise<RgbImage> {
  return decodeImage(new Uint8Array(readFileSync(path.join(realDir, name))), name);
}

describe("JPEG header", () => {
  it("reads the quantisation tables, size and 4:2:0 baseline frame of the encoder's output at every quality", async () => {
    const img = await fixtureImage("real_0001.png");
    for (const q of [100, 95, 90, 50]) {
      const header = readJpegHeader(await encodeJpeg(img, q))!;
      expect(header).toBeDefined();
      expect([header.width, header.height]).toEqual([img.width, img.height]);
      expect(chromaSubsampling(header)).toBe("4:2:0"); // also at q >= 90, where "auto" modes turn it off
      expect(header.progressive).toBe(false);
      expect([...header.quantTables.keys()].sort()).toEqual([0, 1]);
      expect(header.components.map((c) => c.tq)).toEqual([0, 1, 1]);
    }
  });

  it("returns undefined for non-JPEG or cut-short bytes", async () => {
    expect(readJpegHeader(new Uint8Array(readFileSync(path.join(realDir, "real_0000.png"))))).toBeUndefined();
    const jpeg = await encodeJpeg(await fixtureImage("real_0000.png"), 75);
    expect(readJpegHeader(jpeg.subarray(0, 30))).toBeUndefined(); // inside the first DQT segment
  });
});

describe("IJG quality estimate", () => {
  it("zig-zag order starts 0, 1, 8, 16, 9, 2 and visits every coefficient once (T.81 Figure A.6)", () => {
    expect(ZIGZAG_TO_NATURAL.slice(0, 6)).toEqual([0, 1, 8, 16, 9, 2]);
    expect(ZIGZAG_TO_NATURAL.slice(-3)).toEqual([55, 62, 63]);
    expect([...ZIGZAG_TO_NATURAL].sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  it("scales as libjpeg's jpeg_quality_scaling", () => {
    expect([1, 10, 49, 50, 75, 95, 100].map(ijgScaleFactor)).toEqual([5000, 500, 102, 100, 50, 10, 0]);
    // quality 50: the Annex K tables themselves; 100: all ones
    expect(ijgQuantTable("luminance", 50)[0]).toBe(16);
    expect(ijgQuantTable("chrominance", 50)[0]).toBe(17);
    expect([...ijgQuantTable("luminance", 100)].every((v) => v === 1)).toBe(true);
  });

  it("recovers the quality of sharp-encoded JPEGs at 50, 75 and 95 exactly (and at every other quality)", async () => {
    const img = await fixtureImage("real_0000.png");
    for (let q = 1; q <= 100; q++) {
      const estimate = estimateJpegQuality(readJpegHeader(await encodeJpeg(img, q))!);
      expect(estimate, `quality ${q}`).toEqual({ quality: q, exact: true });
    }
  });

  it("finds quality 95 in every fixture JPEG (saved by Pillow at 95, ../shared/fixtures/README.md)", () => {
    for (const side of ["real", "fake"]) {
      const dir = fixture("images", side);
      for (const f of readdirSync(dir).filter((n) => n.endsWith(".jpg"))) {
        const estimate = estimateJpegQuality(readJpegHeader(new Uint8Array(readFileSync(path.join(dir, f))))!);
        expect(estimate, f).toEqual({ quality: 95, exact: true });
      }
    }
  });

  it("gives the nearest IJG quality, not exact, for tables from another family", () => {
    const header = { quantTables: new Map([[0, ijgQuantTable("luminance", 80).map((v) => v + 1)], [1, ijgQuantTable("chrominance", 80)]]), components: [], progressive: false };
    const estimate = estimateJpegQuality(header)!;
    expect(estimate.exact).toBe(false);
    expect(Math.abs(estimate.quality - 79)).toBeLessThanOrEqual(1);
  });
});
