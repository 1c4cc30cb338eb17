import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readNpy } from "../../src/io/npy.js";
import { expectedJson, fixture, projectRoot } from "../helpers/fixtures.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";

let weights: string;
let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-cli-"));
});

const common = () => cpuFlags(weights);

describe("diffeval fid", () => {
  for (const protocol of ["legacy-pytorch", "clean"] as const) {
    it(`end to end from the fixture images matches pytorch-fid's value for ${protocol} within 1e-4`, async () => {
      const r = await runCli(["fid", "--real", real, "--fake", fake, "--protocol", protocol, "--json", ...common()]);
      expect(r.stderr).not.toMatch(/error/);
      expect(r.code).toBe(0);
      const json = JSON.parse(r.stdout);
      expect(Math.abs(json.fid - expectedJson()[`fid_${protocol.replace("-", "_")}_pytorch_fid_formula`])).toBeLessThan(1e-4);
      expect(json).toMatchObject({ protocol, n_real: 32, n_fake: 32, real, fake });
      expect(json.weights_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.keys(json)).toEqual(expect.arrayContaining(["fid", "protocol", "weights_sha256", "n_real", "n_fake", "real", "fake", "seconds", "version"]));
    });
  }

  it("prints a human summary by default", async () => {
    const r = await runCli(["fid", "--real", real, "--fake", fake, ...common()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^FID {2}0\.40\d\d\n/);
    expect(r.stdout).toMatch(/protocol clean, weights [0-9a-f]{12}, n_real 32, n_fake 32/);
  });

  it("fails clearly on an empty folder and on too few images", async () => {
    const empty = path.join(tmp, "empty");
    mkdirSync(empty, { recursive: true });
    const r = await runCli(["fid", "--real", empty, "--fake", fake, ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_EMPTY_SOURCE\]: .*empty/);
    const one = path.join(tmp, "one");
    mkdirSync(one, { recursive: true });
    writeFileSync(path.join(one, "a.png"), readFileSync(path.join(real, "real_0000.png")));
    const r2 = await runCli(["fid", "--real", one, "--fake", fake, ...common()]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/error\[E_TOO_FEW_SAMPLES\]/);
  });
});

describe("diffeval stats and stats files as FID sources", () => {
  it("writes a stats npz that reproduces the FID and records its protocol", async () => {
    const out = path.join(tmp, "real-legacy.npz");
    const r = await runCli(["stats", real, "--out", out, "--protocol", "legacy-pytorch", ...common()]);
    expect(r.code).toBe(0);
    expect(existsSync(out)).toBe(true);
    const f = await runCli(["fid", "--real", out, "--fake", fake, "--json", ...common()]);
    expect(f.code).toBe(0);
    const json = JSON.parse(f.stdout);
    // No --protocol: the stats file's protocol is used for the image side.
    expect(json.protocol).toBe("legacy-pytorch");
    expect(Math.abs(json.fid - expectedJson().fid_legacy_pytorch_pytorch_fid_formula)).toBeLessThan(1e-4);
  });

  it("refuses to compare stats made under different protocols unless --force", async () => {
    const a = path.join(tmp, "a-legacy.npz");
    const b = path.join(tmp, "b-clean.npz");
    expect((await runCli(["stats", real, "--out", a, "--protocol", "legacy-pytorch", ...common()])).code).toBe(0);
    expect((await runCli(["stats", fake, "--out", b, "--protocol", "clean", ...common()])).code).toBe(0);
    const r = await runCli(["fid", "--real", a, "--fake", b]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_PROTOCOL_MISMATCH\]/);
    const forced = await runCli(["fid", "--real", a, "--fake", b, "--force", "--json"]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout).fid).toBeGreaterThan(0);
  });

  it("refuses a stats file against images under another protocol, before extracting anything", async () => {
    const stats = path.join(tmp, "real-legacy.npz");
    const r = await runCli(["fid", "--real", stats, "--fake", fake, "--protocol", "clean", ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_PROTOCOL_MISMATCH\].*legacy-pytorch.*clean/);
    expect(r.stderr).not.toMatch(/device:/); // the network was never loaded
  });

  it("reads pytorch-fid's own stats files (no meta) and refuses a dimension mismatch", async () => {
    const d64 = fixture("reference", "stats_d64_real_savez.npz");
    const ok = await runCli(["fid", "--real", d64, "--fake", fixture("reference", "stats_d64_real_savez_compressed.npz"), "--json"]);
    expect(ok.code).toBe(0);
    expect(Math.abs(JSON.parse(ok.stdout).fid)).toBeLessThan(1e-9);
    const bad = await runCli(["fid", "--real", d64, "--fake", path.join(tmp, "a-legacy.npz"), "--force"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error\[E_FEATURE_DIM\].*64.*2048/);
  });
});

describe("diffeval features", () => {
  it("writes N x 2048 float32 in source order with a sidecar listing the files", async () => {
    const out = path.join(tmp, "feats.npy");
    const logits = path.join(tmp, "logits.npy");
    const r = await runCli(["features", fake, "--out", out, "--logits", logits, ...common()]);
    expect(r.code).toBe(0);
    const arr = readNpy(new Uint8Array(readFileSync(out)));
    expect(arr.shape).toEqual([32, 2048]);
    expect(readNpy(new Uint8Array(readFileSync(logits))).shape).toEqual([32, 1008]);
    const sidecar = JSON.parse(readFileSync(path.join(tmp, "feats.json"), "utf8"));
    expect(sidecar.files).toEqual(expectedJson().fake_files);
    expect(sidecar.protocol).toBe("clean");
  });

  it("--skip-bad reports the 2 undecodable odd files and finishes", async () => {
    const out = path.join(tmp, "odd.npy");
    const r = await runCli(["features", fixture("images", "odd"), "--out", out, "--skip-bad", ...common()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/skipped 2 undecodable image/);
    expect(readNpy(new Uint8Array(readFileSync(out))).shape).toEqual([5, 2048]);
    const noSkip = await runCli(["features", fixture("images", "odd"), "--out", out, ...common()]);
    expect(noSkip.code).toBe(2);
    expect(noSkip.stderr).toMatch(/error\[E_IMAGE_DECODE\]: .*(not-an-image\.png|truncated\.jpg)/);
  });
});

describe("the eval / fid bins", () => {
  it("`eval fid --real A --fake B` in a POSIX shell reaches the fid bin", async () => {
    const bin = path.join(tmp, "bin");
    mkdirSync(bin, { recursive: true });
    const script = path.join(bin, "fid");
    writeFileSync(script, `#!/bin/sh\nexec node ${JSON.stringify(path.join(projectRoot, "dist/cli/fid-bin.js"))} "$@"\n`);
    chmodSync(script, 0o755);
    const stdout = execFileSync("sh", ["-c", `eval fid --real "$R" --fake "$F" --json --weights "$W" --device cpu`], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, R: real, F: fake, W: weights },
      encoding: "utf8",
    });
    expect(Math.abs(JSON.parse(stdout).fid - expectedJson().fid_clean_pytorch_fid_formula)).toBeLessThan(1e-4);
  });
});

describe("usage errors", () => {
  it("exit 2 with commander's message, in subcommands too", async () => {
    const r = await runCli(["fid", "--real", real]);
    expect(r.code).toBe(2);
    const m = await runCli(["model", "convert", "--weights", "x.pth"]);
    expect(m.code).toBe(2);
  });
});
