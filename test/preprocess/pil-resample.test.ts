import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { pilCoefficients, resizePil8, resizePilFloat, resizePilFloatRgb, type PilFilter } from "../../src/preprocess/pil-resample.js";

interface Case {
  path: "float" | "uint8";
  filter: PilFilter;
  w: number;
  h: number;
  outW: number;
  outH: number;
  expected: string; // base64 of float32 LE / uint8
}

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = JSON.parse(readFileSync(path.join(here, "pillow-resize-cases.json"), "utf8")) as { cases: Case[] };

/** The generator's test pattern: v(x, y, c) = (37x + 91y + 5((x*y) mod 23) + 50c) mod 256, HWC. */
function pattern(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = (x * 37 + y * 91 + ((x * y) % 23) * 5 + c * 50) % 256;
  return out;
}

function band(rgb: Uint8Array, c: number): Float32Array {
  return Float32Array.from({ length: rgb.length / 3 }, (_, i) => rgb[i * 3 + c]);
}

function decoded(b64: string, kind: Case["path"]): Float32Array | Uint8Array {
  const bytes = new Uint8Array(Buffer.from(b64, "base64"));
  return kind === "float" ? new Float32Array(bytes.buffer, 0, bytes.length / 4) : bytes;
}

describe("resizePilFloat / resizePil8 equal Pillow 9.4's Image.resize bit for bit", () => {
  it.each(doc.cases.map((c) => [`${c.path} ${c.filter} ${c.w}x${c.h} -> ${c.outW}x${c.outH}`, c] as const))("%s", (_, c) => {
    const rgb = pattern(c.w, c.h);
    const expected = decoded(c.expected, c.path);
    if (c.path === "float") {
      const got = resizePilFloat(band(rgb, 1), c.w, c.h, c.outW, c.outH, c.filter);
      expect(Array.from(got)).toEqual(Array.from(expected));
      const viaRgb = resizePilFloatRgb(rgb, c.w, c.h, c.outW, c.outH, c.filter);
      expect(Array.from({ length: got.length }, (_, i) => viaRgb[i * 3 + 1])).toEqual(Array.from(expected));
    } else {
      expect(Array.from(resizePil8(rgb, c.w, c.h, 3, c.outW, c.outH, c.filter))).toEqual(Array.from(expected));
    }
  });
});

describe("pilCoefficients", () => {
  it("normalises each output's weights to 1 and widens the support when shrinking", () => {
    const down = pilCoefficients(512, 299, "bicubic");
    const up = pilCoefficients(128, 299, "bicubic");
    expect(down.ksize).toBe(Math.ceil(2 * (512 / 299)) * 2 + 1);
    expect(up.ksize).toBe(5);
    for (const c of [down, up]) {
      for (let i = 0; i < 299; i++) {
        let sum = 0;
        for (let j = 0; j < c.count[i]; j++) sum += c.weights[i * c.ksize + j];
        expect(sum).toBeCloseTo(1, 12);
      }
    }
  });

  it("is cached per (in, out, filter)", () => {
    expect(pilCoefficients(100, 50, "lanczos")).toBe(pilCoefficients(100, 50, "lanczos"));
  });
});
