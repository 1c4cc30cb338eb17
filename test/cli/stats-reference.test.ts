import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeNpy, type NpyArray } from "../../src/io/npy.js";
import { writeStatsNpz } from "../../src/io/npz.js";
import { frechetDistance } from "../../src/stats/frechet.js";
import { runCli } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { startServer, type LocalServer } from "../helpers/local-server.js";
import { fixtureStateDictPath } from "../helpers/model.js";
import { buildZip } from "../helpers/zip-writer.js";

let weights: string;
let tmp: string;
let server: LocalServer;
let realStats: string;
let statsSha: string;
const files = new Map<string, Uint8Array>();
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const savedEnv = { cache: process.env.DIFFEVAL_CACHE, manifest: process.env.DIFFEVAL_REFERENCE_MANIFEST };

const common = () => ["--weights", weights, "--device", "cpu", "--threads", "0"];
const referenceDir = () => path.join(tmp, "cache", "reference-stats");

/** A d = 4 Gaussian with an identity-plus covariance (guided-diffusion-style fixture statistics). */
function gaussian4(shift: number): { mu: Float64Array; sigma: Float64Array } {
  const sigma = new Float64Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) sigma[i * 4 + j] = (i === j ? 2 : 0.25) + shift / 10;
  return { mu: Float64Array.from([1, 2, 3, 4].map((v) => v + shift)), sigma };
}

function admBatch(): Uint8Array {
  const g = gaussian4(0);
  const arr = (shape: number[], data: Float64Array): NpyArray => ({ dtype: "<f8", shape, data });
  return buildZip([
    // arr_0 claims 10,000 256x256 images and holds garbage: reading it would fail.
    { name: "arr_0.npy", data: new Uint8Array(64), deflate: true, corrupt: true, claimedSize: 10_000 * 256 * 256 * 3 },
    { name: "mu.npy", data: writeNpy(arr([4], g.mu)) },
    { name: "sigma.npy", data: writeNpy(arr([4, 4], g.sigma)) },
    { name: "mu_s.npy", data: writeNpy(arr([4], g.mu)) },
    { name: "sigma_s.npy", data: writeNpy(arr([4, 4], g.sigma)) },
  ]);
}

function manifestEntry(name: string, url: string, over: Record<string, unknown> = {}) {
  return {
    name,
    dataset: "fixture-real",
    split: "all",
    resolution: 128,
    protocol: "clean",
    n: null,
    publisher: "the test",
    url,
    sha256: statsSha,
    format: "mu-sigma",
    keys: { mu: "mu", sigma: "sigma" },
    confirmed: "computed by the test with 'diffeval stats'",
    ...over,
  };
}

beforeAll(async () => {
  weights = await fixtureStateDictPath(false);
  tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-refstats-"));
  process.env.DIFFEVAL_CACHE = path.join(tmp, "cache");
  realStats = path.join(tmp, "real-clean.npz");
  const made = await runCli(["stats", real, "--out", realStats, "--protocol", "clean", ...common()]);
  expect(made.code).toBe(0);
  const bytes = new Uint8Array(readFileSync(realStats));
  statsSha = createHash("sha256").update(bytes).digest("hex");
  files.set("/stats/real.npz", bytes);
  files.set("/adm/VIRTUAL_test.npz", admBatch());
  server = await startServer((req, res) => {
    const body = files.get(req.url ?? "");
    if (!body) res.writeHead(404).end();
    else res.writeHead(200, { "content-length": body.length }).end(Buffer.from(body));
  });
  const manifest = path.join(tmp, "manifest.json");
  const url = server.url("/stats/real.npz");
  writeFileSync(
    manifest,
    JSON.stringify({
      entries: [
        manifestEntry("test-real", url, { aliases: ["fixture"] }),
        manifestEntry("test-bad-hash", url, { sha256: "0".repeat(64) }),
        manifestEntry("test-unverified", url, { sha256: null, unverified: true }),
        manifestEntry("test-adm", server.url("/adm/VIRTUAL_test.npz"), {
          sha256: null,
          unverified: true,
          protocol: "legacy-tensorflow",
          format: "adm-reference-batch",
          keys: { mu: "mu", sigma: "sigma", mu_s: "mu_s", sigma_s: "sigma_s", images: "arr_0" },
        }),
      ],
    }),
  );
  process.env.DIFFEVAL_REFERENCE_MANIFEST = manifest;
});

afterAll(async () => {
  await server?.close();
  for (const [key, value] of [["DIFFEVAL_CACHE", savedEnv.cache], ["DIFFEVAL_REFERENCE_MANIFEST", savedEnv.manifest]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  rmSync(tmp, { recursive: true, force: true });
});

describe("diffeval stats list / fetch", () => {
  it("lists the entries of the manifest named by $DIFFEVAL_REFERENCE_MANIFEST", async () => {
    const r = await runCli(["stats", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ test-real \(fixture\) +fixture-real +all +128 +clean/m);
    expect(r.stdout).toMatch(/test-unverified .* unverified$/m);
    const json = JSON.parse((await runCli(["stats", "list", "--json"])).stdout);
    expect(json.entries.map((e: { name: string }) => e.name)).toEqual(["test-real", "test-bad-hash", "test-unverified", "test-adm"]);
  });

  it("downloads from the server, verifies the sha256 and caches; a second fetch uses the cache", async () => {
    const before = server.requests.length;
    const r = await runCli(["stats", "fetch", "test-real"]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const cached = path.join(referenceDir(), "test-real.npz");
    expect(r.stdout).toContain(`test-real: downloaded ${cached} (sha256 ${statsSha}, verified)`);
    expect(readFileSync(cached).equals(Buffer.from(files.get("/stats/real.npz")!))).toBe(true);
    expect(server.requests.length).toBe(before + 1);
    const again = await runCli(["stats", "fetch", "fixture"]); // the alias
    expect(again.stdout).toContain(`test-real: cached ${cached}`);
    expect(server.requests.length).toBe(before + 1);
  });

  it("refuses a file whose sha256 does not match and caches nothing", async () => {
    const r = await runCli(["stats", "fetch", "test-bad-hash"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_REFERENCE_SHA256\]: .*has sha256 [0-9a-f]{64}, expected 0{64}; it was not saved/);
    expect(existsSync(path.join(referenceDir(), "test-bad-hash.npz"))).toBe(false);
    expect(readdirSync(referenceDir()).filter((f) => f.includes("test-bad-hash"))).toEqual([]);
  });

  it("says 'unverified' for an entry without a published hash, with the hash of the copy it got", async () => {
    const r = await runCli(["stats", "fetch", "test-unverified"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/test-unverified: downloaded .*unverified: no published sha256 to check against; this copy's sha256 is ([0-9a-f]{64})/);
    expect(r.stdout).toContain(statsSha);
  });

  it("refuses an unknown name before downloading anything", async () => {
    const before = server.requests.length;
    const r = await runCli(["stats", "fetch", "test-real", "no-such-stats"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_REFERENCE_UNKNOWN\]: no reference statistics called 'no-such-stats'/);
    expect(server.requests.length).toBe(before);
  });
});

describe("diffeval fid --real NAME", () => {
  it("gives the same FID as the stats file itself, fetching on demand into an empty cache", async () => {
    rmSync(referenceDir(), { recursive: true, force: true });
    const before = server.requests.length;
    const byName = await runCli(["fid", "--real", "test-real", "--fake", fake, "--json", ...common()]);
    expect(byName.stderr).not.toMatch(/error/);
    expect(byName.code).toBe(0);
    expect(server.requests.length).toBe(before + 1);
    expect(byName.stderr).toContain("reference test-real: the test, fixture-real all, protocol clean");
    const byPath = await runCli(["fid", "--real", realStats, "--fake", fake, "--json", ...common()]);
    const a = JSON.parse(byName.stdout);
    const b = JSON.parse(byPath.stdout);
    expect(a.fid).toBe(b.fid);
    expect(a).toMatchObject({ real: "test-real", protocol: "clean", n_real: 32, weights_sha256: b.weights_sha256 });
    expect(existsSync(path.join(referenceDir(), "test-real.npz"))).toBe(true);
  });

  it("refuses images under another protocol than the reference's, before extracting anything", async () => {
    const r = await runCli(["fid", "--real", "test-real", "--fake", fake, "--protocol", "legacy-pytorch", ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_PROTOCOL_MISMATCH\]: test-real was computed with protocol clean, .* with legacy-pytorch/);
    expect(r.stderr).not.toMatch(/device:/);
  });

  it("says a missing source is not a reference name either (a mistyped name)", async () => {
    const r = await runCli(["fid", "--real", "test-reel", "--fake", fake, ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_SOURCE\]: test-reel: no such file or folder, nor a reference statistics name/);
  });

  it("does not cache a reference whose hash is wrong when fetched on demand", async () => {
    const r = await runCli(["fid", "--real", "test-bad-hash", "--fake", fake, ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_REFERENCE_SHA256\]/);
    expect(existsSync(path.join(referenceDir(), "test-bad-hash.npz"))).toBe(false);
  });

  it("reads a guided-diffusion reference batch's mu/sigma without its arr_0 images", async () => {
    const other = path.join(tmp, "other-d4.npz");
    const g = gaussian4(1);
    writeFileSync(other, writeStatsNpz({ n: 100, ...g }, { protocol: "legacy-tensorflow" }));
    const r = await runCli(["fid", "--real", "test-adm", "--fake", other, "--json"]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const expected = frechetDistance({ n: 0, ...gaussian4(0) }, { n: 100, ...g });
    expect(Math.abs(JSON.parse(r.stdout).fid - expected)).toBeLessThan(1e-9);
    expect(r.stderr).toMatch(/test-adm: downloaded .*unverified/);
  });
});
