/**
 * Issue 18, item 2: saved features as a source. `features --out x.npz` (and the older `.npy` +
 * `.json` pair) read back by fid and metrics give the numbers of the run from the images; what a
 * features file cannot give is skipped with the reason; mixed encoders, protocols or weights are
 * refused by name, against features, images or statistics alike.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { FEATURES_FILE_KIND, readFeaturesFile, writeFeaturesNpz } from "../../src/io/features-file.js";
import { readNpy } from "../../src/io/npy.js";
import { readNpz } from "../../src/io/npz.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const at = (name: string) => path.join(tmp, name);
const METRICS = ["--metrics", "fid,kid,pr,dc"];
/** The keys `--metrics fid,kid,pr,dc` writes (registry entries fid, kid, pr, dc). */
const KEYS = ["fid", "precision", "recall", "density", "coverage"] as const;

async function ok(args: string[]): Promise<Record<string, any>> {
  const r = await runCli([...args, ...cpuFlags(weights)]);
  expect(r.code, r.stderr).toBe(0);
  return args.includes("--json") ? JSON.parse(r.stdout) : {};
}

async function refused(args: string[], code: string): Promise<string> {
  const r = await runCli([...args, ...cpuFlags(weights)]);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(new RegExp(`^error\\[${code}\\]`));
  return r.stderr;
}

/** Every number of `--metrics fid,kid,pr,dc` within 1e-12 of the run from the images. */
function expectSameMetrics(got: Record<string, any>, want: Record<string, any>): void {
  for (const key of KEYS) expect(Math.abs(got[key] - want[key]), key).toBeLessThanOrEqual(1e-12);
  expect(Math.abs(got.kid.mean - want.kid.mean)).toBeLessThanOrEqual(1e-12);
  expect(Math.abs(got.kid.std - want.kid.std)).toBeLessThanOrEqual(1e-12);
  expect(got).toMatchObject({ n_real: 32, n_fake: 32, protocol: want.protocol, weights_sha256: want.weights_sha256 });
}

/** r.npz with its meta changed (and nothing else): a file made under other settings. */
async function variant(name: string, change: Record<string, unknown>): Promise<string> {
  const { features, names, meta } = await readFeaturesFile(at("r.npz"));
  writeFileSync(at(name), writeFeaturesNpz(features, names, { ...meta, ...change }));
  return at(name);
}

let fromImages: Record<string, any>;

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-features-source-"));
  await ok(["features", real, "--out", at("r.npz")]);
  await ok(["features", fake, "--out", at("f.npz")]);
  await ok(["features", fake, "--out", at("f.npy")]);
  fromImages = await ok(["metrics", "--real", real, "--fake", fake, ...METRICS, "--json"]);
}, 120_000);

describe("features --out x.npz", () => {
  it("writes float32 features, the file names in row order and meta, as np.load reads without pickle", async () => {
    const arrays = readNpz(new Uint8Array(readFileSync(at("f.npz"))), "f.npz");
    expect([...arrays.keys()].sort()).toEqual(["features", "files", "meta"]);
    expect(arrays.get("features")).toMatchObject({ dtype: "<f4", shape: [32, 2048] });
    const json = (key: string) => JSON.parse(new TextDecoder().decode(arrays.get(key)!.data as Uint8Array));
    expect(arrays.get("files")!.dtype).toBe("|u1");
    expect(json("files")).toEqual(expectedJson().fake_files);
    const meta = json("meta");
    expect(meta).toMatchObject({ kind: FEATURES_FILE_KIND, encoder: "inception", protocol: "clean", n: 32, d: 2048, source: fake, tool: "diffeval" });
    expect(meta.weights_sha256).toBe(fromImages.weights_sha256);
    expect(typeof meta.tool_version).toBe("string");
    expect(Number.isNaN(Date.parse(meta.date))).toBe(false);
  });

  it("holds the same rows as the .npy form", async () => {
    const npz = await readFeaturesFile(at("f.npz"));
    const npy = readNpy(new Uint8Array(readFileSync(at("f.npy"))));
    expect(npy.shape).toEqual([32, 2048]);
    expect(npz.features.data).toEqual(npy.data);
    expect(JSON.parse(readFileSync(at("f.json"), "utf8"))).toMatchObject({ kind: FEATURES_FILE_KIND, files: npz.names });
  });
});

describe("a features file as a source", () => {
  it("metrics fid,kid,pr,dc of r.npz against f.npz equal the run from the images within 1e-12", async () => {
    expectSameMetrics(await ok(["metrics", "--real", at("r.npz"), "--fake", at("f.npz"), ...METRICS, "--json"]), fromImages);
  });

  it("mixed forms give the same numbers: features against images, and against the .npy + .json pair", async () => {
    expectSameMetrics(await ok(["metrics", "--real", at("r.npz"), "--fake", fake, ...METRICS, "--json"]), fromImages);
    expectSameMetrics(await ok(["metrics", "--real", real, "--fake", at("f.npy"), ...METRICS, "--json"]), fromImages);
    expectSameMetrics(await ok(["metrics", "--real", at("r.npz"), "--fake", at("f.npy"), ...METRICS, "--json"]), fromImages);
  });

  it("--limit/--seed take the same subset of a features file's rows as of the images", async () => {
    const limit = ["--limit", "12", "--seed", "3", "--metrics", "fid,kid", "--json"];
    const images = await ok(["metrics", "--real", real, "--fake", fake, ...limit]);
    const features = await ok(["metrics", "--real", at("r.npz"), "--fake", at("f.npz"), ...limit]);
    expect(features).toMatchObject({ n_real: 12, n_fake: 12 });
    expect(Math.abs(features.fid - images.fid)).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(features.kid.mean - images.kid.mean)).toBeLessThanOrEqual(1e-12);
  });

  it("fid reads them too, equal to metrics' fid", async () => {
    const json = await ok(["fid", "--real", at("r.npz"), "--fake", at("f.npz"), "--json"]);
    expect(Math.abs(json.fid - fromImages.fid)).toBeLessThanOrEqual(1e-12);
  });

  it("against a stats file of the same settings: the same fid", async () => {
    await ok(["stats", real, "--out", at("r-stats.npz")]);
    const json = await ok(["fid", "--real", at("r-stats.npz"), "--fake", at("f.npz"), "--json"]);
    expect(Math.abs(json.fid - fromImages.fid)).toBeLessThan(1e-9);
  });

  it("skips with the reason what a features file cannot give: images, spatial features, and IS without a model", async () => {
    const r = await runCli(["metrics", "--real", at("r.npz"), "--fake", at("f.npz"), "--metrics", "is,sfid,msssim,vendi", "--json", ...cpuFlags(weights)]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.skipped.msssim).toMatch(/needs images; .*f\.npz is a features file/);
    expect(json.skipped.sfid).toMatch(/spatial features; .*r\.npz and .*f\.npz are features files, which hold none/);
    expect(json.skipped.is).toMatch(/fc layer.*loaded only when a side is images/);
    expect(json.vendi).toBeGreaterThan(1);
    expect(r.stderr).toMatch(/warning: is skipped/);
  });

  it("computes IS from a fake features file when the other side's images load the model", async () => {
    const args = ["--metrics", "is", "--json"];
    const want = (await ok(["metrics", "--real", real, "--fake", fake, ...args])).is;
    const got = (await ok(["metrics", "--real", real, "--fake", at("f.npz"), ...args])).is;
    expect(Math.abs(got.mean - want.mean)).toBeLessThanOrEqual(1e-12);
  });
});

describe("mismatched settings are refused by name", () => {
  it("another protocol: features against features, images (before extracting) and statistics", async () => {
    const legacy = await variant("r-legacy.npz", { protocol: "legacy-pytorch" });
    const a = await refused(["metrics", "--real", legacy, "--fake", at("f.npz")], "E_PROTOCOL_MISMATCH");
    expect(a).toMatch(/legacy-pytorch/);
    expect(a).toMatch(/clean/);
    await refused(["fid", "--real", legacy, "--fake", fake, "--protocol", "clean"], "E_PROTOCOL_MISMATCH");
    await refused(["fid", "--real", at("r-stats.npz"), "--fake", legacy], "E_PROTOCOL_MISMATCH");
  });

  it("other weights: against features and against images", async () => {
    const other = await variant("r-weights.npz", { weights_sha256: "0".repeat(64) });
    expect(await refused(["fid", "--real", other, "--fake", at("f.npy")], "E_PROTOCOL_MISMATCH")).toMatch(/weights_sha256 0{64}/);
    await refused(["fid", "--real", other, "--fake", fake], "E_PROTOCOL_MISMATCH");
  });

  it("another encoder, named with ours", async () => {
    const dino = await variant("r-dino.npz", { encoder: "dinov2", protocol: "dinov2" });
    const msg = await refused(["metrics", "--real", dino, "--fake", at("f.npz"), ...METRICS], "E_PROTOCOL_MISMATCH");
    expect(msg).toMatch(/dinov2/);
    expect(msg).toMatch(/inception/);
    await refused(["fid", "--real", dino, "--fake", fake], "E_PROTOCOL_MISMATCH");
  });

  it("--force compares anyway", async () => {
    const legacy = at("r-legacy.npz");
    const json = await ok(["fid", "--real", legacy, "--fake", at("f.npz"), "--force", "--json"]);
    expect(Math.abs(json.fid - fromImages.fid)).toBeLessThanOrEqual(1e-12);
  });
});
