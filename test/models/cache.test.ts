import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isDiffevalError } from "../../src/errors.js";
import { cacheDir, convertedModelCachePath, hashMemoPath, weightsCachePath } from "../../src/models/cache.js";
import { DEFAULT_WEIGHTS_ID, getWeightsEntry, hashMatches, knownWeightsIds } from "../../src/models/registry.js";

describe("cacheDir", () => {
  it("prefers $DIFFEVAL_CACHE over $XDG_CACHE_HOME", () => {
    expect(cacheDir({ DIFFEVAL_CACHE: "/d/c", XDG_CACHE_HOME: "/x" })).toBe("/d/c");
  });

  it("uses $XDG_CACHE_HOME/diffeval when $DIFFEVAL_CACHE is unset or empty", () => {
    expect(cacheDir({ XDG_CACHE_HOME: "/x" })).toBe("/x/diffeval");
    expect(cacheDir({ DIFFEVAL_CACHE: "", XDG_CACHE_HOME: "/x" })).toBe("/x/diffeval");
  });

  it("falls back to ~/.cache/diffeval (also for a relative XDG_CACHE_HOME, per the XDG spec)", () => {
    const home = path.join(os.homedir(), ".cache", "diffeval");
    expect(cacheDir({})).toBe(home);
    expect(cacheDir({ XDG_CACHE_HOME: "" })).toBe(home);
    expect(cacheDir({ XDG_CACHE_HOME: "rel/cache" })).toBe(home);
  });

  it("resolves a relative $DIFFEVAL_CACHE against the working directory", () => {
    expect(cacheDir({ DIFFEVAL_CACHE: "rel" })).toBe(path.resolve("rel"));
  });
});

describe("cache paths", () => {
  const env = { DIFFEVAL_CACHE: "/c" };

  it("puts weights under weights/ with their upstream name", () => {
    expect(weightsCachePath(getWeightsEntry(DEFAULT_WEIGHTS_ID), env)).toBe(
      "/c/weights/pt_inception-2015-12-05-6726825d.pth",
    );
  });

  it("keys converted models by weights hash and converter version", () => {
    const sha = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";
    expect(convertedModelCachePath(sha, "3", env)).toBe("/c/onnx/inception-6726825d0af5-v3.onnx");
    expect(convertedModelCachePath(sha.toUpperCase(), "1.2", env)).toBe("/c/onnx/inception-6726825d0af5-v1.2.onnx");
    expect(() => convertedModelCachePath("../../etc", "3", env)).toThrow(/not a hex sha256/);
    expect(() => convertedModelCachePath(sha, "../x", env)).toThrow(/converter version/);
  });

  it("keeps hash memos of user files inside the cache, one per absolute path", () => {
    const a = hashMemoPath("/data/a.pth", env);
    expect(path.dirname(a)).toBe("/c/hashes");
    expect(a).not.toBe(hashMemoPath("/data/b.pth", env));
  });
});

describe("weights registry", () => {
  it("describes the pytorch-fid FID Inception file consistently", () => {
    const e = getWeightsEntry(DEFAULT_WEIGHTS_ID);
    expect(e.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(e.sha256!.startsWith(e.sha256Prefix)).toBe(true);
    // torch hub convention: the name ends with the first 8 hex digits of the sha256
    expect(e.fileName).toBe(`pt_inception-2015-12-05-${e.sha256Prefix}.pth`);
    expect(e.url.endsWith(`/${e.fileName}`)).toBe(true);
    expect(e.protocols).toEqual(["clean", "legacy-pytorch", "legacy-tensorflow"]);
  });

  it("rejects unknown ids with E_WEIGHTS_UNKNOWN listing the known ones", () => {
    let err: unknown;
    try {
      getWeightsEntry("nope");
    } catch (e) {
      err = e;
    }
    expect(isDiffevalError(err, "E_WEIGHTS_UNKNOWN")).toBe(true);
    expect((err as Error).message).toContain(knownWeightsIds()[0]);
  });

  it("matches hashes by full value and by prefix", () => {
    const sha = "ab".repeat(32);
    expect(hashMatches(sha, sha)).toBe(true);
    expect(hashMatches(sha, undefined, "abab")).toBe(true);
    expect(hashMatches(sha.toUpperCase(), sha)).toBe(true);
    expect(hashMatches(sha, "cd".repeat(32))).toBe(false);
    expect(hashMatches(sha, undefined, "abcd")).toBe(false);
    expect(hashMatches(sha)).toBe(false); // nothing expected: never "verified"
  });
});
