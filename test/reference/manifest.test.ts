import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getWeightsEntry } from "../../src/models/registry.js";
import { findReference, getReference, loadManifest, manifestPath, parseManifest } from "../../src/reference/manifest.js";
import { referenceMeta } from "../../src/reference/load.js";
import { codeOf } from "../helpers/errors.js";
import { projectRoot } from "../helpers/fixtures.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const entry = (over: Record<string, unknown> = {}) => ({
  name: "x-train",
  dataset: "x",
  split: "train",
  resolution: 32,
  protocol: "clean",
  n: 10,
  publisher: "test",
  url: "https://example.org/x.npz",
  sha256: null,
  unverified: true,
  format: "mu-sigma",
  keys: { mu: "mu", sigma: "sigma" },
  confirmed: "made up by the test",
  ...over,
});

describe("the shipped reference-stats/manifest.json", () => {
  const manifest = loadManifest();

  it("is found at the package root and validates", () => {
    expect(manifest.file).toBe(path.join(projectRoot, "reference-stats", "manifest.json"));
    expect(manifest.entries.length).toBeGreaterThanOrEqual(20);
  });

  it("claims no hash it could not confirm: every entry without a sha256 is marked unverified", () => {
    for (const e of manifest.entries) expect(e.unverified).toBe(e.sha256 === null);
  });

  it("has the TTUR CIFAR-10 train statistics under legacy-tensorflow, reachable as 'cifar10'", () => {
    const e = getReference(manifest, "cifar10");
    expect(e).toMatchObject({
      name: "ttur-cifar10-train",
      protocol: "legacy-tensorflow",
      n: 50000,
      url: "http://bioinf.jku.at/research/ttur/ttur_stats/fid_stats_cifar10_train.npz",
    });
  });

  it("describes guided-diffusion reference batches with their sFID keys and the images they carry", () => {
    const e = getReference(manifest, "imagenet256");
    expect(e.format).toBe("adm-reference-batch");
    expect(e.keys).toEqual({ mu: "mu", sigma: "sigma", mu_s: "mu_s", sigma_s: "sigma_s", images: "arr_0" });
    expect(e.url).toMatch(/\/ref_batches\/imagenet\/256\/VIRTUAL_imagenet256_labeled\.npz$/);
  });

  it("names clean-fid files as clean-fid builds them ({name}_{mode}_{split}_{res}.npz)", () => {
    const e = getReference(manifest, "cleanfid-cifar10-train-32-legacy-pytorch");
    expect(path.basename(e.url)).toBe("cifar10_legacy_pytorch_train_32.npz");
  });

  it("records the standard weights' sha256 as the weights of published statistics", () => {
    const e = getReference(manifest, "cifar10");
    const meta = referenceMeta(e, { sha256: "ab".repeat(32), verified: false, path: "/cache/x.npz" });
    expect(meta).toMatchObject({
      protocol: "legacy-tensorflow",
      weights_sha256: getWeightsEntry("pt_inception-2015-12-05").sha256,
      n: 50000,
      source: "reference:ttur-cifar10-train",
      reference: { verified: false },
    });
  });
});

describe("manifest validation", () => {
  const parse = (entries: unknown[]) => () => parseManifest({ entries }, "m.json");

  it("accepts a well-formed entry and finds it by name or alias", () => {
    const m = parseManifest({ entries: [entry({ aliases: ["x"] })] }, "m.json");
    expect(findReference(m, "x")?.name).toBe("x-train");
    expect(findReference(m, "y")).toBeUndefined();
    expect(codeOf(() => getReference(m, "x-tra"))).toBe("E_REFERENCE_UNKNOWN");
  });

  it("refuses a null sha256 not marked unverified, a malformed hash, and a hash marked unverified", () => {
    expect(codeOf(parse([entry({ unverified: undefined })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ sha256: "abc", unverified: undefined })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ sha256: "a".repeat(64), unverified: true })]))).toBe("E_MANIFEST");
    expect(parseManifest({ entries: [entry({ sha256: "A".repeat(64), unverified: undefined })] }, "m").entries[0].sha256).toBe("a".repeat(64));
  });

  it("refuses unknown protocols, weights and formats, duplicate names, and missing fields", () => {
    expect(codeOf(parse([entry({ protocol: "tf" })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ weights: "nope" })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ format: "hdf5" })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry(), entry({ name: "other", aliases: ["x-train"] })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ n: undefined })]))).toBe("E_MANIFEST");
    expect(codeOf(parse([entry({ keys: { mu: "mu" } })]))).toBe("E_MANIFEST");
  });

  it("is read from $DIFFEVAL_REFERENCE_MANIFEST when set", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-manifest-"));
    dirs.push(dir);
    const file = path.join(dir, "m.json");
    writeFileSync(file, JSON.stringify({ entries: [entry()] }));
    expect(manifestPath({ DIFFEVAL_REFERENCE_MANIFEST: file })).toBe(file);
    expect(loadManifest(manifestPath({ DIFFEVAL_REFERENCE_MANIFEST: file })).entries.map((e) => e.name)).toEqual(["x-train"]);
    writeFileSync(file, "{ not json");
    expect(codeOf(() => loadManifest(file))).toBe("E_MANIFEST");
  });

  it("refuses a file whose own meta contradicts its entry", () => {
    const m = parseManifest({ entries: [entry()] }, "m.json");
    expect(codeOf(() => referenceMeta(m.entries[0], { sha256: "0", verified: true, path: "f.npz" }, { protocol: "legacy-pytorch" }))).toBe(
      "E_REFERENCE_MISMATCH",
    );
  });
});
