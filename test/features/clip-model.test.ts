/**
 * The one CLIP module: `--encoder clip`, `diffeval clipscore` and a sweep's CLIP score read a
 * checkpoint by the same rules and share its converted graphs.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipOnnxCachePath, openClipModel } from "../../src/features/clip-model.js";
import { resolveEncoder } from "../../src/features/encoders.js";
import { openExtractor } from "../../src/features/extractor.js";
import { parseClipConfig } from "../../src/models/clip-onnx.js";
import { runClipScore } from "../../src/pipeline/clip-score.js";
import { fixture } from "../helpers/fixtures.js";

const clipDir = fixture("encoders", "clip-tiny");
const CLIP_FILES = readdirSync(clipDir);
let tmp: string;
let savedCache: string | undefined;

beforeAll(() => {
  savedCache = process.env.DIFFEVAL_CACHE;
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-clip-model-"));
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.DIFFEVAL_CACHE;
  else process.env.DIFFEVAL_CACHE = savedCache;
});

/** A fresh cache for what follows (conversions must not be reused across the cases). */
function freshCache(name: string): string {
  const cache = path.join(tmp, name);
  process.env.DIFFEVAL_CACHE = cache;
  return path.join(cache, "onnx");
}

/** A copy of clip-tiny without some of its files. */
function clipFolderWithout(name: string, drop: string[]): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of CLIP_FILES.filter((f) => !drop.includes(f))) copyFileSync(path.join(clipDir, f), path.join(dir, f));
  return dir;
}

/** A pairs CSV of two fixture images. */
function pairsCsv(name: string): string {
  const csv = path.join(tmp, name);
  const real = fixture("images", "real");
  writeFileSync(csv, `image,prompt\n${path.join(real, "real_0000.png")},a photo\n${path.join(real, "real_0001.png")},a dog\n`);
  return csv;
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message?: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
  return {};
}

describe("a CLIP folder without preprocessor_config.json", () => {
  it("is refused alike by --encoder clip, clipscore and the sweep's model, naming the file", async () => {
    freshCache("cache-no-preprocessor");
    const dir = clipFolderWithout("clip-no-preprocessor", ["preprocessor_config.json"]);
    const file = path.join(dir, "preprocessor_config.json");
    const errors = [
      await rejection(resolveEncoder("clip", { weights: dir })),
      await rejection(openExtractor({ encoder: "clip", weights: dir, device: "cpu", threads: 0 })),
      await rejection(runClipScore({ pairs: pairsCsv("pairs-np.csv"), weights: dir, device: "cpu" })),
      await rejection(openClipModel(dir, { device: "cpu" })),
    ];
    for (const e of errors) {
      expect(e.code).toBe("E_WEIGHTS_MISSING");
      expect(e.message).toContain(file);
      expect(e.message).toMatch(/preprocessor_config\.json of the checkpoint/);
    }
    expect(new Set(errors.map((e) => e.message)).size).toBe(1);
  });

  it("is accepted once the file is put back (the refusal was about that file)", async () => {
    freshCache("cache-preprocessor-back");
    const dir = clipFolderWithout("clip-put-back", ["preprocessor_config.json"]);
    copyFileSync(path.join(clipDir, "preprocessor_config.json"), path.join(dir, "preprocessor_config.json"));
    await expect(resolveEncoder("clip", { weights: dir })).resolves.toMatchObject({ protocol: "clip", dim: 16 });
    const r = await runClipScore({ pairs: pairsCsv("pairs-back.csv"), weights: dir, device: "cpu" });
    expect(r.n).toBe(2);
  });

  it("an unsupported preprocessor_config.json is E_WEIGHTS_LAYOUT in both", async () => {
    freshCache("cache-bad-preprocessor");
    const dir = clipFolderWithout("clip-bad-preprocessor", ["preprocessor_config.json"]);
    const json = JSON.parse(readFileSync(path.join(clipDir, "preprocessor_config.json"), "utf8"));
    writeFileSync(path.join(dir, "preprocessor_config.json"), JSON.stringify({ ...json, resample: 2 }));
    const a = await rejection(resolveEncoder("clip", { weights: dir }));
    const b = await rejection(runClipScore({ pairs: pairsCsv("pairs-bad.csv"), weights: dir, device: "cpu" }));
    expect(a).toMatchObject({ code: "E_WEIGHTS_LAYOUT", message: expect.stringContaining("CLIPImageProcessor") });
    expect(b).toEqual(a);
  });
});

describe("one converted vision graph for the encoder and clipscore", () => {
  const config = () => parseClipConfig(JSON.parse(readFileSync(path.join(clipDir, "config.json"), "utf8")));

  it("encoder first: clipscore reuses its vision graph and converts only the text tower", async () => {
    const onnx = freshCache("cache-encoder-first");
    const encLog: string[] = [];
    const enc = await resolveEncoder("clip", { weights: clipDir, log: (l) => encLog.push(l) });
    expect(readdirSync(onnx)).toEqual([path.basename(enc.onnxPath)]);
    expect(enc.onnxPath).toBe(clipOnnxCachePath(enc.weightsSha256, "vision", config()));
    expect(encLog.filter((l) => l.startsWith("converting"))).toEqual([expect.stringContaining("(vision tower)")]);
    const visionMtime = statSync(enc.onnxPath).mtimeMs;

    const scoreLog: string[] = [];
    await runClipScore({ pairs: pairsCsv("pairs-1.csv"), weights: clipDir, device: "cpu", log: (l) => scoreLog.push(l) });
    expect(scoreLog.filter((l) => l.startsWith("converting"))).toEqual([expect.stringContaining("(text tower)")]);
    const text = clipOnnxCachePath(enc.weightsSha256, "text", config());
    expect(readdirSync(onnx).sort()).toEqual([path.basename(enc.onnxPath), path.basename(text)].sort());
    expect(statSync(enc.onnxPath).mtimeMs).toBe(visionMtime);

    // Both towers cached now: a second score and a second resolve convert nothing.
    const again: string[] = [];
    await runClipScore({ pairs: pairsCsv("pairs-2.csv"), weights: clipDir, device: "cpu", log: (l) => again.push(l) });
    expect(await resolveEncoder("clip", { weights: clipDir, log: (l) => again.push(l) })).toEqual(enc);
    expect(again.filter((l) => l.startsWith("converting"))).toEqual([]);
    expect(readdirSync(onnx)).toHaveLength(2);
  });

  it("clipscore first: the encoder finds its vision graph already converted", async () => {
    const onnx = freshCache("cache-clipscore-first");
    const scoreLog: string[] = [];
    const r = await runClipScore({ pairs: pairsCsv("pairs-3.csv"), weights: clipDir, device: "cpu", log: (l) => scoreLog.push(l) });
    expect(scoreLog.filter((l) => l.startsWith("converting"))).toEqual([expect.stringContaining("(vision and text towers)")]);
    const before = readdirSync(onnx).sort();
    expect(before).toHaveLength(2);
    const encLog: string[] = [];
    const enc = await resolveEncoder("clip", { weights: clipDir, log: (l) => encLog.push(l) });
    expect(enc.weightsSha256).toBe(r.weights_sha256);
    expect(encLog).toEqual([]);
    expect(readdirSync(onnx).sort()).toEqual(before);
    expect(before).toContain(path.basename(enc.onnxPath));
  });
});
