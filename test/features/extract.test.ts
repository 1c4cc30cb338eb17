import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extractFeatures } from "../../src/features/extract.js";
import { openFeatureCache } from "../../src/features/feature-cache.js";
import { inceptionRunner, LOGITS_DIM, POOL3_DIM, type InceptionRunner } from "../../src/features/inception-runner.js";
import { createImagePreparer } from "../../src/features/prepare-pool.js";
import type { ProtocolName } from "../../src/preprocess/protocols.js";
import { openSession } from "../../src/models/session.js";
import { openImageSource, type ImageItem } from "../../src/io/sources.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";
import { fixtureModelPath, fixtureSpatialModelPath } from "../helpers/model.js";

let run: InceptionRunner;
let release: () => Promise<void>;

beforeAll(async () => {
  const { session } = await openSession(await fixtureModelPath(), "cpu");
  run = inceptionRunner(session);
  release = () => session.release();
});
afterAll(async () => release?.());

async function features(items: ImageItem[], protocol: ProtocolName, extra: Partial<Parameters<typeof extractFeatures>[1]> = {}) {
  const preparer = createImagePreparer({ kind: "fid", protocol }, 0);
  try {
    return await extractFeatures(items, { run, preparer, batchSize: 8, ...extra });
  } finally {
    await preparer.close();
  }
}

async function folderItems(...parts: string[]) {
  return (await openImageSource(fixture("images", ...parts))).items;
}

describe("features of the fixture images match the reference tools", () => {
  for (const [protocol, prefix] of [
    ["legacy-pytorch", "feats_legacy_pytorch"],
    ["clean", "feats_clean"],
    ["legacy-tensorflow", "feats_legacy_tensorflow"],
  ] as const) {
    for (const side of ["real", "fake"] as const) {
      it(`${protocol} ${side}: all 32 rows within 1e-4 of ${prefix}_${side}.npy`, async () => {
        const out = await features(await folderItems(side), protocol);
        expect(out.names).toEqual(expectedJson()[`${side}_files`]);
        const ref = loadNpy(fixture("reference", `${prefix}_${side}.npy`));
        expect(ref.shape).toEqual([32, POOL3_DIM]);
        expect(out.embedding.n).toBe(32);
        expect(maxAbsDiff(out.embedding.data, ref.data)).toBeLessThan(1e-4);
        expect(out.logits.d).toBe(LOGITS_DIM);
      });
    }
  }

  it("gray, gray16-free odd files (gray, rgba, tiny, cmyk) match feats_legacy_pytorch_odd rows", async () => {
    const order: string[] = expectedJson().odd_files;
    const all = await folderItems("odd");
    const ref = loadNpy(fixture("reference", "feats_legacy_pytorch_odd.npy"));
    // gray16 is where diffeval deliberately differs from Pillow (which saturates 16-bit to 255).
    const wanted = order.filter((f) => f !== "gray16.png");
    const items = wanted.map((name) => all.find((it) => it.name === name)!);
    const out = await features(items, "legacy-pytorch");
    for (const [row, name] of wanted.entries()) {
      const refRow = ref.data.subarray(order.indexOf(name) * POOL3_DIM, (order.indexOf(name) + 1) * POOL3_DIM);
      expect(maxAbsDiff(out.embedding.data.subarray(row * POOL3_DIM, (row + 1) * POOL3_DIM), refRow), name).toBeLessThan(1e-4);
    }
  });
});

describe("bad images", () => {
  it("stop the run with E_IMAGE_DECODE naming the file", async () => {
    const items = (await folderItems("odd")).filter((it) => it.name === "truncated.jpg");
    await expect(features(items, "clean")).rejects.toMatchObject({ code: "E_IMAGE_DECODE", message: expect.stringContaining("truncated.jpg") });
  });

  it("are counted and skipped with skipBad", async () => {
    const items = (await folderItems("odd")).filter((it) => ["truncated.jpg", "not-an-image.png", "tiny.png"].includes(it.name));
    const out = await features(items, "clean", { skipBad: true });
    expect(out.skipped.map((s) => s.name).sort()).toEqual(["not-an-image.png", "truncated.jpg"]);
    expect(out.names).toEqual(["tiny.png"]);
    expect(out.embedding.n).toBe(1);
  });
});

describe("feature cache", () => {
  it("a second run over the same folder does no inference and gives the same rows", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "diffeval-cache-"));
    const cache = openFeatureCache({
      root,
      weightsSha256: "ab".repeat(32),
      protocol: "clean",
      outputs: [
        ["pool3", POOL3_DIM],
        ["logits", LOGITS_DIM],
      ],
    });
    const items = (await folderItems("real")).slice(0, 5);
    let batches = 0;
    const counting: InceptionRunner = (x, n) => {
      batches++;
      return run(x, n);
    };
    const first = await features(items, "clean", { run: counting, cache });
    expect(batches).toBeGreaterThan(0);
    expect(first.inferred).toBe(5);
    batches = 0;
    const second = await features(items, "clean", { run: counting, cache });
    expect(batches).toBe(0);
    expect(second.inferred).toBe(0);
    expect(maxAbsDiff(second.embedding.data, first.embedding.data)).toBe(0);
    expect(maxAbsDiff(second.logits.data, first.logits.data)).toBe(0);
  });
});

describe("sFID spatial features", () => {
  it("come with pool3 and logits from a spatial model, leaving pool3 unchanged", async () => {
    const { session } = await openSession(await fixtureSpatialModelPath(), "cpu");
    try {
      const items = (await folderItems("real")).slice(0, 3);
      const spatialRun = inceptionRunner(session);
      const withSpatial = await features(items, "clean", { run: spatialRun, outputs: ["pool3", "logits", "spatial"] });
      const plain = await features(items, "clean");
      expect(withSpatial.spatial?.n).toBe(3);
      expect(withSpatial.spatial?.d).toBe(2023);
      expect(maxAbsDiff(withSpatial.embedding.data, plain.embedding.data)).toBe(0);
      expect(Math.min(...withSpatial.spatial!.data)).toBeGreaterThanOrEqual(0); // after ReLU
      expect(plain.spatial).toBeUndefined();
    } finally {
      await session.release();
    }
  });
});
