import { describe, expect, it } from "vitest";
import { parseCocoCaptions, pickCocoPairs } from "../../src/reference/coco-captions.js";
import { codeOf } from "../helpers/errors.js";

/** The captions_val2014.json layout, a few images and captions, deliberately out of order. */
function captionsJson(count = 20) {
  const images = Array.from({ length: count }, (_, i) => ({ id: 1000 - i * 7, file_name: `COCO_val2014_${String(1000 - i * 7).padStart(12, "0")}.jpg` }));
  const annotations = images.flatMap((img, i) =>
    Array.from({ length: 2 + (i % 4) }, (_, k) => ({ id: 50_000 - i * 10 - k, image_id: img.id, caption: ` caption ${k} of ${img.id}\n` })),
  );
  images.push({ id: 5, file_name: "COCO_val2014_000000000005.jpg" }); // no captions: never drawn
  return { info: {}, images, annotations };
}

describe("COCO captions", () => {
  it("keeps captioned images only, sorted by id, captions in annotation-id order and trimmed", () => {
    const images = parseCocoCaptions(captionsJson(), "c.json");
    expect(images).toHaveLength(20);
    expect(images.map((i) => i.id)).toEqual([...images.map((i) => i.id)].sort((a, b) => a - b));
    expect(images.some((i) => i.id === 5)).toBe(false);
    const last = images.at(-1)!; // id 1000, annotation ids 50000, 49999: reversed to ascending
    expect(last.captions).toEqual(["caption 1 of 1000", "caption 0 of 1000"]);
  });

  it("draws the same pairs for the same seed, other pairs for another, one caption of the image each", () => {
    const images = parseCocoCaptions(captionsJson(), "c.json");
    const a = pickCocoPairs(images, 8, 1);
    expect(pickCocoPairs(images, 8, 1)).toEqual(a);
    expect(a.map((p) => p.imageId)).toEqual([...a.map((p) => p.imageId)].sort((x, y) => x - y));
    expect(new Set(a.map((p) => p.imageId)).size).toBe(8);
    for (const p of a) expect(images.find((i) => i.id === p.imageId)!.captions).toContain(p.caption);
    const b = pickCocoPairs(images, 8, 2);
    expect(b.map((p) => p.imageId)).not.toEqual(a.map((p) => p.imageId));
    expect(pickCocoPairs(images, 20, 9).map((p) => p.imageId)).toEqual(images.map((i) => i.id));
  });

  it("refuses a layout that is not COCO's and more pairs than captioned images", () => {
    expect(codeOf(() => parseCocoCaptions({ images: [] }, "c.json"))).toBe("E_COCO_FORMAT");
    expect(codeOf(() => parseCocoCaptions({ images: [{ id: 1 }], annotations: [] }, "c.json"))).toBe("E_COCO_FORMAT");
    expect(codeOf(() => parseCocoCaptions({ images: [], annotations: [{ image_id: 3, caption: "x" }] }, "c.json"))).toBe("E_COCO_FORMAT");
    expect(codeOf(() => pickCocoPairs(parseCocoCaptions(captionsJson(3), "c.json"), 4, 0))).toBe("E_USAGE");
  });
});
