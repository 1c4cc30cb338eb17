import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { isUnsupportedDtype, pthFormat, readStateDict, type StateDict } from "../../src/models/pth.js";
import { fixtureStateDictPath } from "../helpers/model.js";
import { PickleWriter, floatStorage, legacyPth, longStorage, stateDictPickle, zipPth, type FakeTensor } from "./pth-builder.js";

function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return { code: isDiffevalError(e) ? e.code : undefined, message: (e as Error).message };
  }
  return { message: "no error" };
}

describe("readStateDict on the fixture weights", () => {
  let zipBytes: Uint8Array;
  let legacyBytes: Uint8Array;
  let zipSd: StateDict;
  let legacySd: StateDict;

  beforeAll(async () => {
    zipBytes = readFileSync(await fixtureStateDictPath(false));
    legacyBytes = readFileSync(await fixtureStateDictPath(true));
    zipSd = readStateDict(zipBytes, "random-fid-inception.pth");
    legacySd = readStateDict(legacyBytes, "random-fid-inception-legacy-format.pth");
  });

  it("tells the two formats apart", () => {
    expect(pthFormat(zipBytes)).toBe("zip");
    expect(pthFormat(legacyBytes)).toBe("legacy");
  });

  it("reads 472 float32 tensors, 23,885,392 values, in torchvision's key order", () => {
    expect(zipSd.size).toBe(472);
    let values = 0;
    for (const t of zipSd.values()) {
      expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      values += t.data.length;
    }
    expect(values).toBe(23_885_392);
    const keys = [...zipSd.keys()];
    expect(keys.slice(0, 3)).toEqual(["Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.weight", "Conv2d_1a_3x3.bn.bias"]);
    expect(keys.slice(-2)).toEqual(["fc.weight", "fc.bias"]);
    expect(zipSd.get("Conv2d_1a_3x3.conv.weight")!.shape).toEqual([32, 3, 3, 3]);
    expect(zipSd.get("fc.weight")!.shape).toEqual([1008, 2048]);
  });

  it("reads the zip and the legacy file to identical state dicts", () => {
    expect([...legacySd.keys()]).toEqual([...zipSd.keys()]);
    for (const [key, a] of zipSd) {
      const b = legacySd.get(key)!;
      expect(b.shape, key).toEqual(a.shape);
      // Bitwise equality of the float32 payloads.
      expect(Buffer.compare(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)), key).toBe(0);
    }
  });

  it("holds real values, not zeros (the running variances are positive, weights vary)", () => {
    const v = zipSd.get("Mixed_7c.branch_pool.bn.running_var")!.data;
    expect(Math.min(...v)).toBeGreaterThan(0);
    const w = zipSd.get("fc.weight")!.data;
    expect(new Set(w.subarray(0, 1000)).size).toBeGreaterThan(1);
  });

  it.each([false, true])("refuses the first half of the file (legacy=%s) with E_WEIGHTS_TRUNCATED", (legacy) => {
    const bytes = legacy ? legacyBytes : zipBytes;
    const err = errorOf(() => readStateDict(bytes.subarray(0, bytes.length >> 1), "half.pth"));
    expect(err.code).toBe("E_WEIGHTS_TRUNCATED");
    expect(err.message).toContain("half.pth");
    expect(err.message).toMatch(/download it again|Re-download/);
  });

  it("refuses a zip cut just before its last bytes with E_WEIGHTS_TRUNCATED", () => {
    expect(errorOf(() => readStateDict(zipBytes.subarray(0, zipBytes.length - 10), "cut.pth")).code).toBe("E_WEIGHTS_TRUNCATED");
  });
});

describe("readStateDict on hand-built files", () => {
  // storage "0": 12 floats 0..11; "1": int64 counters.
  const storages = [floatStorage("0", Array.from({ length: 12 }, (_, i) => i)), longStorage("1", [42])];
  const tensors: FakeTensor[] = [
    { key: "dense", storageType: "FloatStorage", storageKey: "0", shape: [3, 4] },
    // A transposed view at offset 1: t[i][j] = storage[1 + i + 4j].
    { key: "transposed", storageType: "FloatStorage", storageKey: "0", shape: [2, 3], stride: [1, 4], offset: 1 },
    { key: "tail", storageType: "FloatStorage", storageKey: "0", shape: [4], offset: 8 },
    { key: "bn.num_batches_tracked", storageType: "LongStorage", storageKey: "1", shape: [] },
  ];

  function check(sd: StateDict): void {
    expect([...sd.keys()]).toEqual(["dense", "transposed", "tail", "bn.num_batches_tracked"]);
    expect([...sd.get("dense")!.data]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(sd.get("transposed")!.shape).toEqual([2, 3]);
    expect([...sd.get("transposed")!.data]).toEqual([1, 5, 9, 2, 6, 10]);
    expect([...sd.get("tail")!.data]).toEqual([8, 9, 10, 11]);
    const counter = sd.get("bn.num_batches_tracked")!;
    expect(isUnsupportedDtype(counter)).toBe(true);
    expect(counter.shape).toEqual([]);
    const err = errorOf(() => counter.data);
    expect(err.code).toBe("E_WEIGHTS_DTYPE");
    expect(err.message).toContain("bn.num_batches_tracked");
    expect(err.message).toContain("int64");
  }

  it("reads views, strides, offsets and a LongStorage placeholder from a zip file", () => {
    check(readStateDict(zipPth(stateDictPickle(tensors, storages, false), storages), "hand.pth"));
  });

  it("finds data.pkl whatever the archive folder is called", () => {
    const bytes = zipPth(stateDictPickle(tensors, storages, false), storages, { archive: "my weights-v2", byteorder: "little" });
    check(readStateDict(bytes, "renamed.pth"));
  });

  it("reads the same from a legacy file", () => {
    check(readStateDict(legacyPth(stateDictPickle(tensors, storages, true), storages), "hand-legacy.pth"));
  });

  it("resolves legacy storage views (view_metadata) into their root storage", () => {
    const viewTensors: FakeTensor[] = [
      { key: "v", storageType: "FloatStorage", storageKey: "0", shape: [2, 2], view: ["0v", 6, 4] },
      { key: "w", storageType: "FloatStorage", storageKey: "0", shape: [3], offset: 1, view: ["0w", 2, 5] },
    ];
    const root = [floatStorage("0", Array.from({ length: 12 }, (_, i) => i * 10))];
    const sd = readStateDict(legacyPth(stateDictPickle(viewTensors, root, true), root), "views.pth");
    expect([...sd.get("v")!.data]).toEqual([60, 70, 80, 90]);
    expect([...sd.get("w")!.data]).toEqual([30, 40, 50]);
  });

  it("refuses a tensor that reaches past its storage with E_WEIGHTS_FORMAT", () => {
    const bad: FakeTensor[] = [{ key: "over", storageType: "FloatStorage", storageKey: "0", shape: [4, 4] }];
    const err = errorOf(() => readStateDict(zipPth(stateDictPickle(bad, storages, false), storages), "over.pth"));
    expect(err.code).toBe("E_WEIGHTS_FORMAT");
    expect(err.message).toContain("over");
  });

  it("refuses a big-endian archive", () => {
    const bytes = zipPth(stateDictPickle(tensors, storages, false), storages, { byteorder: "big" });
    expect(errorOf(() => readStateDict(bytes, "be.pth")).code).toBe("E_WEIGHTS_FORMAT");
  });

  it("refuses a zip whose pickle calls a forbidden global with E_UNSAFE_PICKLE naming file and global", () => {
    const w = new PickleWriter().proto().global("os", "system");
    w.tuple(() => w.str("echo pwned"));
    const evil = zipPth(w.op(0x52).stop().bytes(), []);
    const err = errorOf(() => readStateDict(evil, "evil.pth"));
    expect(err.code).toBe("E_UNSAFE_PICKLE");
    expect(err.message).toContain("evil.pth");
    expect(err.message).toContain("os.system");
  });

  it("refuses a training checkpoint (a dict holding non-tensors) with E_WEIGHTS_FORMAT", () => {
    const w = new PickleWriter().proto().op(0x7d).mark().str("epoch").int(3).op(0x75).stop();
    const err = errorOf(() => readStateDict(zipPth(w.bytes(), []), "ckpt.pth"));
    expect(err.code).toBe("E_WEIGHTS_FORMAT");
    expect(err.message).toContain("'epoch'");
  });

  it.each([
    ["empty", new Uint8Array(0)],
    ["text", new TextEncoder().encode("<html>404 Not Found</html>")],
    ["a zip without data.pkl", renameDataPkl(zipPth(new Uint8Array(0), []))],
  ])("refuses %s with E_WEIGHTS_FORMAT", (_label, bytes) => {
    const err = errorOf(() => readStateDict(bytes, "junk.pth"));
    expect(err.code).toBe("E_WEIGHTS_FORMAT");
    expect(err.message).toContain("junk.pth");
  });

  it("refuses a pickle that is not a torch.save file (wrong magic number)", () => {
    const notTorch = new PickleWriter().proto().int(7).stop().bytes();
    expect(errorOf(() => readStateDict(notTorch, "plain.pkl")).code).toBe("E_WEIGHTS_FORMAT");
  });
});

/** Same bytes with the entry name "archive/data.pkl" changed to "archive/data.pkx". */
function renameDataPkl(zip: Uint8Array): Uint8Array {
  const out = zip.slice();
  const needle = new TextEncoder().encode("data.pkl");
  for (let i = 0; i + needle.length <= out.length; i++) {
    if (needle.every((b, j) => out[i + j] === b)) out[i + 7] = 0x78; // 'x'
  }
  return out;
}
