/**
 * Faults: two processes share one cache folder at once. Both convert the same .pth weights to
 * ONNX, write the same weights hash memo and the same feature entries at the same time (each
 * through a temp file of its own and a rename: models/resolve-model.ts, models/ensure-weights.ts,
 * features/feature-cache.ts). Both must finish with the result of a run that uses no cache, and
 * leave a cache whose every entry is whole.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fixtureModelPath, fixtureStateDictPath } from "../helpers/model.js";
import { cacheEntries, cpu, entryVerdict, fakeImages, realImages, runCliChild, SUBSET, strayTemps } from "./child.js";

describe("two processes sharing one cache folder", () => {
  it("both converting the weights and filling the feature cache at once finish with the uncached FID", async () => {
    const pth = await fixtureStateDictPath(false);
    const tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-faults-shared-"));
    const cache = path.join(tmp, "cache");
    const args = ["fid", "--real", realImages, "--fake", fakeImages, "--json", ...cpu(pth)];

    const both = await Promise.all([runCliChild(args, { DIFFEVAL_CACHE: cache }), runCliChild(args, { DIFFEVAL_CACHE: cache })]);
    for (const r of both) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/corrupt|error/);
      expect(r.stderr).toMatch(/^converting .* to ONNX/m); // both found no graph: they converted at the same time
    }
    // No cache at all: the same weights converted by the test helper (the same graph, so the same
    // bits), in a cache folder of its own, reading and writing no entry.
    const onnx = ["fid", "--real", realImages, "--fake", fakeImages, "--json", ...cpu(await fixtureModelPath()), "--no-cache"];
    const uncached = await runCliChild(onnx, { DIFFEVAL_CACHE: path.join(tmp, "other") });
    expect(uncached.code, uncached.stderr).toBe(0);
    const fid = JSON.parse(uncached.stdout).fid as number;
    expect(both.map((r) => JSON.parse(r.stdout).fid)).toEqual([fid, fid]);

    const onnxDir = path.join(cache, "onnx");
    expect(readdirSync(onnxDir).filter((f) => f.endsWith(".onnx"))).toHaveLength(1);
    expect(strayTemps(onnxDir)).toEqual([]);
    const entries = cacheEntries(cache);
    expect(entries).toHaveLength(2 * SUBSET);
    for (const e of entries) expect(entryVerdict(e), e).toBe("ok");
    rmSync(tmp, { recursive: true, force: true }); // two converted graphs of 91 MB
  });
});
