import { readFileSync } from "node:fs";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { isDiffevalError } from "../../src/errors.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";
import { bmp24 } from "../helpers/image-bytes.js";

function bytes(...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(fixture(...parts)));
}

async function decodeError(input: Uint8Array, name: string): Promise<unknown> {
  try {
    await decodeImage(input, name);
  } catch (e) {
    return e;
  }
  throw new Error(`${name} decoded without error`);
}

describe("decodeImage matches Pillow's open().convert('RGB')", () => {
  const expected = expectedJson().odd_pixel00_after_PIL_convert_RGB as Record<string, number[]>;

  it.each(["gray.png", "rgba.png", "tiny.png", "cmyk.jpg"])("pixel (0,0) of %s equals Pillow's", async (f) => {
    const img = await decodeImage(bytes("images", "odd", f), f);
    expect(Array.from(img.data.subarray(0, 3))).toEqual(expected[f]);
  });

  it("keeps the size and replicates 8-bit grey into three channels", async () => {
    const img = await decodeImage(bytes("images", "odd", "gray.png"), "gray.png");
    expect([img.width, img.height, img.data.length]).toEqual([150, 100, 150 * 100 * 3]);
    for (let i = 0; i < img.width * img.height; i += 97) {
      expect(img.data[i * 3 + 1]).toBe(img.data[i * 3]);
      expect(img.data[i * 3 + 2]).toBe(img.data[i * 3]);
    }
  });

  it("decodes a 31x17 image at its own size", async () => {
    const img = await decodeImage(bytes("images", "odd", "tiny.png"), "tiny.png");
    expect([img.width, img.height]).toEqual([31, 17]);
  });

  it("drops alpha without compositing: colours under alpha 0 survive", async () => {
    // 2x1 RGBA: an opaque pixel and a fully transparent one whose colour must be kept as is.
    const rgba = Buffer.from([10, 20, 30, 255, 200, 100, 50, 0]);
    const png = await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
    const img = await decodeImage(new Uint8Array(png), "rgba2.png");
    expect(Array.from(img.data)).toEqual([10, 20, 30, 200, 100, 50]);
  });

  it("does not apply EXIF orientation (Pillow's open() never rotates)", async () => {
    // 32x16, left half red, right half black; orientation 6 would make it 16x32.
    const raw = Buffer.alloc(32 * 16 * 3, 0);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) raw[(y * 32 + x) * 3] = 255;
    const jpg = await sharp(raw, { raw: { width: 32, height: 16, channels: 3 } })
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 100, chromaSubsampling: "4:4:4" })
      .toBuffer();
    expect((await sharp(jpg).metadata()).orientation).toBe(6);
    const img = await decodeImage(new Uint8Array(jpg), "rotated.jpg");
    expect([img.width, img.height]).toEqual([32, 16]);
    expect(img.data[0]).toBeGreaterThan(200); // top-left still red
    expect(img.data[(31 * 3)]).toBeLessThan(50); // top-right still black
  });
});

describe("16-bit grey", () => {
  it("is scaled to 8 bits as round(v / 257), not clipped to 255 like Pillow 9.4", async () => {
    const img = await decodeImage(bytes("images", "odd", "gray16.png"), "gray16.png");
    // Pillow gives (255, 255, 255) here; the stored 16-bit value is 30583 = 0x7777.
    expect(Array.from(img.data.subarray(0, 3))).toEqual([119, 119, 119]);
  });

  it("rounds values that are not multiples of 257", async () => {
    const values = new Uint16Array([0, 128, 129, 385, 65535, 32896]);
    // sharp takes the raw depth from the typed array's type (Uint16Array -> ushort)
    const png = await sharp(values, { raw: { width: 6, height: 1, channels: 1 } })
      .toColourspace("grey16")
      .png()
      .toBuffer();
    expect((await sharp(png).metadata()).depth).toBe("ushort");
    const img = await decodeImage(new Uint8Array(png), "g16.png");
    expect(Array.from(img.data.filter((_, i) => i % 3 === 0))).toEqual(Array.from(values, (v) => Math.round(v / 257)));
  });
});

describe("bad input", () => {
  it.each(["truncated.jpg", "not-an-image.png"])("%s gives E_IMAGE_DECODE naming the file", async (f) => {
    const name = `odd/${f}`;
    const e = await decodeError(bytes("images", "odd", f), name);
    expect(isDiffevalError(e, "E_IMAGE_DECODE")).toBe(true);
    expect((e as Error).message).toContain(name);
  });

  it("a truncated PNG gives E_IMAGE_DECODE", async () => {
    const half = bytes("images", "real", "real_0000.png").subarray(0, 20000);
    expect(isDiffevalError(await decodeError(half, "half.png"), "E_IMAGE_DECODE")).toBe(true);
  });

  it("an SVG (which libvips would render, Pillow would not open) gives E_IMAGE_DECODE", async () => {
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>');
    const e = await decodeError(svg, "drawing.png");
    expect(isDiffevalError(e, "E_IMAGE_DECODE")).toBe(true);
    expect((e as Error).message).toMatch(/drawing\.png: .*svg/);
  });

  it("an empty file gives E_IMAGE_DECODE", async () => {
    expect(isDiffevalError(await decodeError(new Uint8Array(0), "empty.png"), "E_IMAGE_DECODE")).toBe(true);
  });

  it("refuses images over the pixel limit with E_IMAGE_TOO_LARGE naming file and size", async () => {
    let err: unknown;
    try {
      await decodeImage(bytes("images", "real", "real_0000.png"), "big.png", { maxPixels: 128 * 128 - 1 });
    } catch (e) {
      err = e;
    }
    expect(isDiffevalError(err, "E_IMAGE_TOO_LARGE")).toBe(true);
    expect((err as Error).message).toMatch(/big\.png: 128x128/);
  });
});

describe("BMP (which libvips cannot read)", () => {

  it("decodes a bottom-up 24-bit BMP with row padding", async () => {
    const rgb = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
    const img = await decodeImage(bmp24(3, 2, rgb), "x.bmp");
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(Array.from(img.data)).toEqual(rgb);
  });

  it("a truncated BMP gives E_IMAGE_DECODE", async () => {
    const b = bmp24(3, 2, new Array(18).fill(0)).subarray(0, 60);
    expect(isDiffevalError(await decodeError(b, "t.bmp"), "E_IMAGE_DECODE")).toBe(true);
  });
});
