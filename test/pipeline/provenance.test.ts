/**
 * `--json` names each source with its kind and a fingerprint (issue 18, item 4): the same images
 * under the same names give the same fingerprint whatever holds them (a folder, a zip, a tar); a
 * file-based side's fingerprint is the file's sha256. Checked against hashes computed here.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { compareCodePoints } from "../../src/io/sources.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { buildTar } from "../helpers/tar-writer.js";
import { buildZip } from "../helpers/zip-writer.js";

let weights: string;
let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-provenance-"));
});

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

/** The fingerprint as the README defines it, computed from the files themselves. */
function folderFingerprint(dir: string): string {
  const names = readdirSync(dir).sort(compareCodePoints);
  return sha256(names.map((n) => `${sha256(readFileSync(path.join(dir, n)))} ${n}\n`).join(""));
}

function folderEntries(dir: string) {
  return readdirSync(dir).map((name) => ({ name, data: new Uint8Array(readFileSync(path.join(dir, name))) }));
}

async function fidJson(realSpec: string, fakeSpec: string): Promise<Record<string, any>> {
  const r = await runCli(["fid", "--real", realSpec, "--fake", fakeSpec, "--json", ...cpuFlags(weights)]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe("source provenance in --json", () => {
  it("names each image source's kind; the fingerprint hashes the images' bytes and names in row order", async () => {
    const json = await fidJson(real, fake);
    expect(json.sources).toEqual({
      real: { kind: "folder", fingerprint: folderFingerprint(real) },
      fake: { kind: "folder", fingerprint: folderFingerprint(fake) },
    });
  });

  it("gives the same images under the same names the same fingerprint in a zip and a tar", async () => {
    const zip = path.join(tmp, "real.zip");
    const tar = path.join(tmp, "real.tar");
    writeFileSync(zip, buildZip(folderEntries(real)));
    writeFileSync(tar, buildTar(folderEntries(real).reverse()));
    const fromZip = await fidJson(zip, fake);
    const fromTar = await fidJson(tar, fake);
    expect(fromZip.sources.real).toEqual({ kind: "zip", fingerprint: folderFingerprint(real) });
    expect(fromTar.sources.real).toEqual({ kind: "tar", fingerprint: folderFingerprint(real) });
    expect(fromTar.fid).toBe(fromZip.fid);
  });

  it("fingerprints a stats or features file by its sha256", async () => {
    const stats = path.join(tmp, "real-stats.npz");
    const feats = path.join(tmp, "fake-features.npz");
    expect((await runCli(["stats", real, "--out", stats, ...cpuFlags(weights)])).code).toBe(0);
    expect((await runCli(["features", fake, "--out", feats, ...cpuFlags(weights)])).code).toBe(0);
    const json = await fidJson(stats, feats);
    expect(json.sources).toEqual({
      real: { kind: "stats", fingerprint: sha256(readFileSync(stats)) },
      fake: { kind: "features", fingerprint: sha256(readFileSync(feats)) },
    });
  });
});
