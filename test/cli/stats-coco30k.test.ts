import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../src/io/decode.js";
import { readStatsNpz } from "../../src/io/npz.js";
import { resizePil8 } from "../../src/preprocess/pil-resample.js";
import { parseCocoCaptions, pickCocoPairs } from "../../src/reference/coco-captions.js";
import { runCli } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

let weights: string;
let tmp: string;
let images: string;
let captions: string;
const real = fixture("images", "real");
const savedCache = process.env.DIFFEVAL_CACHE;
const IDS = [42, 73, 74, 133, 136, 139, 164, 192];

const common = () => ["--weights", weights, "--device", "cpu", "--threads", "0"];
const cocoName = (id: number) => `COCO_val2014_${String(id).padStart(12, "0")}.jpg`;
const stats = (file: string) => readStatsNpz(new Uint8Array(readFileSync(file)), file);
const coco = (out: string, ...extra: string[]) =>
  runCli(["stats", "coco30k", "--images", images, "--captions", captions, "--out", out, "--n", "5", "--resolution", "64", ...extra, ...common()]);

/** The COCO captions layout: images with ids and file names, several captions per image, unordered. */
function captionsJson() {
  return {
    info: { description: "test" },
    images: [...IDS, 999].map((id) => ({ id, file_name: cocoName(id), width: 128, height: 128 })),
    annotations: IDS.flatMap((id, i) =>
      [0, 1, 2].map((k) => ({ id: 9000 - 10 * i - k, image_id: id, caption: `image ${id}, caption ${k} ` })),
    ),
  };
}

beforeAll(async () => {
  weights = await fixtureStateDictPath(false);
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-coco-"));
  process.env.DIFFEVAL_CACHE = path.join(tmp, "cache");
  images = path.join(tmp, "val2014");
  mkdirSync(images);
  const sources = readdirSync(real).sort().slice(0, IDS.length);
  for (const [i, id] of IDS.entries()) {
    const bytes = readFileSync(path.join(real, sources[i]));
    // Every other image made landscape or portrait, so the centre crop does something.
    const extract = i % 2 ? { left: 0, top: 9 + i, width: 128, height: 96 } : i % 4 === 0 ? { left: 17, top: 0, width: 101, height: 128 } : null;
    const out = extract ? await sharp(bytes).extract(extract).png().toBuffer() : bytes;
    writeFileSync(path.join(images, cocoName(id)), out); // PNG data under a .jpg name: decoded by content, as Pillow does
  }
  captions = path.join(tmp, "captions_val2014.json");
  writeFileSync(captions, JSON.stringify(captionsJson()));
});

afterAll(() => {
  if (savedCache === undefined) delete process.env.DIFFEVAL_CACHE;
  else process.env.DIFFEVAL_CACHE = savedCache;
  rmSync(tmp, { recursive: true, force: true });
});

describe("diffeval stats coco30k", () => {
  it("writes the prompt file, the id list and the statistics of the same seeded pairs", async () => {
    const out = path.join(tmp, "ref");
    const r = await coco(out, "--seed", "3");
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const expected = pickCocoPairs(parseCocoCaptions(captionsJson(), "c"), 5, 3);
    const prompts = readFileSync(path.join(out, "prompts.jsonl"), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(prompts).toEqual(expected.map((p) => ({ image_id: p.imageId, caption: p.caption })));
    for (const p of prompts) {
      expect(IDS).toContain(p.image_id);
      expect(p.caption).toMatch(new RegExp(`^image ${p.image_id}, caption [012]$`));
    }
    const ids = readFileSync(path.join(out, "image_ids.txt"), "utf8");
    expect(ids).toBe(prompts.map((p) => `${p.image_id}\n`).join(""));
    const s = stats(path.join(out, "stats.npz"));
    expect(s.gaussian.n).toBe(5);
    expect(s.gaussian.mu.length).toBe(2048);
    expect(s.meta).toMatchObject({ protocol: "clean", n: 5, source: "coco-val2014", coco: { n: 5, seed: 3, resolution: 64 } });
  });

  it("computes the statistics of the centre-cropped, Pillow-bicubic-resized images through the normal extractor", async () => {
    const out = path.join(tmp, "ref");
    const ids = readFileSync(path.join(out, "image_ids.txt"), "utf8").trim().split("\n").map(Number);
    const resized = path.join(tmp, "resized");
    mkdirSync(resized);
    for (const id of ids) {
      const img = await decodeImage(new Uint8Array(readFileSync(path.join(images, cocoName(id)))), cocoName(id));
      const s = Math.min(img.width, img.height);
      const left = Math.floor((img.width - s) / 2);
      const top = Math.floor((img.height - s) / 2);
      const crop = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
        .extract({ left, top, width: s, height: s })
        .raw()
        .toBuffer();
      const small = resizePil8(new Uint8Array(crop), s, s, 3, 64, 64, "bicubic");
      const name = `${String(id).padStart(12, "0")}.png`; // folder order = id order: the same summation order
      await sharp(Buffer.from(small), { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(path.join(resized, name));
    }
    const check = path.join(tmp, "resized.npz");
    expect((await runCli(["stats", resized, "--out", check, ...common()])).code).toBe(0);
    const a = stats(path.join(out, "stats.npz")).gaussian;
    const b = stats(check).gaussian;
    expect(Array.from(a.mu)).toEqual(Array.from(b.mu));
  });

  it("draws the same pairs again with the same seed and other pairs with another", async () => {
    const again = path.join(tmp, "again");
    expect((await coco(again, "--seed", "3")).code).toBe(0);
    const first = readFileSync(path.join(tmp, "ref", "prompts.jsonl"), "utf8");
    expect(readFileSync(path.join(again, "prompts.jsonl"), "utf8")).toBe(first);
    const other = path.join(tmp, "other");
    expect((await coco(other, "--seed", "4")).code).toBe(0);
    expect(readFileSync(path.join(other, "image_ids.txt"), "utf8")).not.toBe(readFileSync(path.join(tmp, "ref", "image_ids.txt"), "utf8"));
  });

  it("refuses a missing image, more pairs than captioned images, and --skip-bad", async () => {
    const json = captionsJson();
    json.annotations.push({ id: 1, image_id: 999, caption: "an image that is not there" });
    const withMissing = path.join(tmp, "missing.json");
    writeFileSync(withMissing, JSON.stringify(json));
    const r = await runCli(["stats", "coco30k", "--images", images, "--captions", withMissing, "--out", path.join(tmp, "x"), "--n", "9", ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_SOURCE\]: 1 of the 9 chosen images are not in .*COCO_val2014_000000000999\.jpg/);
    const many = await coco(path.join(tmp, "x"), "--n", "50");
    expect(many.code).toBe(2);
    expect(many.stderr).toMatch(/error\[E_USAGE\]: --n 50 is more than the 8 captioned images/);
    const skip = await coco(path.join(tmp, "x"), "--skip-bad");
    expect(skip.code).toBe(2);
    expect(skip.stderr).toMatch(/error\[E_USAGE\]: stats coco30k does not take --skip-bad/);
  });
});
