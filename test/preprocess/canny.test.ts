/**
 * Canny against OpenCV 4.6's own cv2.Canny maps (../shared/fixtures/control: 8 control photos and
 * their JPEG-degraded, shifted stand-ins, at thresholds 100,200 and 50,150): every pixel must agree.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { cannyEdges } from "../../src/preprocess/canny.js";
import type { RgbImage } from "../../src/types.js";
import { fixture } from "../helpers/fixtures.js";

const PAIRS = ["00", "01", "02", "03", "04", "05", "06", "07"];
const THRESHOLDS: [number, number][] = [
  [100, 200],
  [50, 150],
];

const decodeFixture = (name: string): Promise<RgbImage> => decodeImage(readFileSync(fixture("control", name)), name);

/** Pixels where our map and OpenCV's (0/255 PNG, read as RGB: channel 0) disagree. */
function mismatches(ours: Uint8Array, opencv: RgbImage): number {
  let n = 0;
  for (let i = 0; i < ours.length; i++) if ((ours[i] !== 0) !== (opencv.data[i * 3] !== 0)) n++;
  return n;
}

describe("cannyEdges (OpenCV 4.6 cv2.Canny, aperture 3, L1 gradient)", () => {
  for (const [low, high] of THRESHOLDS) {
    for (const side of ["control", "gen"]) {
      it(`equals cv2.Canny(img, ${low}, ${high}) on every pixel of the 8 ${side} images`, async () => {
        const counts: Record<string, number> = {};
        let edges = 0;
        for (const xx of PAIRS) {
          const img = await decodeFixture(`${side}_${xx}.png`);
          const ref = await decodeFixture(`canny_${low}_${high}_${side}_${xx}.png`);
          expect([ref.width, ref.height]).toEqual([img.width, img.height]);
          const ours = cannyEdges(img, { low, high });
          counts[xx] = mismatches(ours, ref);
          edges += ours.filter((v) => v !== 0).length;
        }
        expect(counts).toEqual(Object.fromEntries(PAIRS.map((xx) => [xx, 0])));
        expect(edges).toBeGreaterThan(0);
      });
    }
  }

  it("swaps low and high when low > high, as OpenCV does", async () => {
    const img = await decodeFixture("control_00.png");
    expect(cannyEdges(img, { low: 200, high: 100 })).toEqual(cannyEdges(img, { low: 100, high: 200 }));
  });

  it("finds no edge in a flat image and a closed outline around a bright square", () => {
    const w = 16;
    const flat: RgbImage = { width: w, height: w, data: new Uint8Array(w * w * 3).fill(90) };
    expect(cannyEdges(flat, { low: 100, high: 200 }).some((v) => v !== 0)).toBe(false);
    const square = new Uint8Array(w * w * 3);
    for (let y = 4; y < 12; y++) for (let x = 4; x < 12; x++) square.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const map = cannyEdges({ width: w, height: w, data: square }, { low: 100, high: 200 });
    // Every row between the square's top and bottom has edge pixels on both its sides.
    for (let y = 5; y < 11; y++) {
      const row = [...map.subarray(y * w, (y + 1) * w)].map((v) => v !== 0);
      expect(row.slice(0, 8).some(Boolean) && row.slice(8).some(Boolean)).toBe(true);
    }
  });
});
