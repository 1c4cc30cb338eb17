import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const clipDir = fixture("encoders", "clip-tiny");
const dinoDir = fixture("encoders", "dinov2-tiny");
const clipExpected = () => JSON.parse(readFileSync(fixture("encoders", "reference", "clip_expected.json"), "utf8"));
const dinoExpected = () => JSON.parse(readFileSync(fixture("encoders", "reference", "dinov2_expected.json"), "utf8"));
const cpu = (weights: string) => ["--weights", weights, "--device", "cpu", "--threads", "0"];

beforeAll(async () => {
  ({ tmp } = await setUpCliTest("diffeval-encoders-"));
});

/** A copy of the clip-tiny folder whose model.safetensors is `bytes`. */
function clipFolderWith(name: string, bytes: Uint8Array): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["config.json", "preprocessor_config.json"]) copyFileSync(path.join(clipDir, f), path.join(dir, f));
  writeFileSync(path.join(dir, "model.safetensors"), bytes);
  return dir;
}

/** The fixture's safetensors file rewritten without one tensor. */
function safetensorsWithout(drop: string): Uint8Array {
  const buf = readFileSync(path.join(clipDir, "model.safetensors"));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  expect(header[drop]).toBeDefined();
  const data = buf.subarray(8 + n);
  const out: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [key, t] of Object.entries(header)) {
    if (key === drop) continue;
    if (key === "__metadata__") {
      out[key] = t;
      continue;
    }
    const bytes = data.subarray(t.data_offsets[0], t.data_offsets[1]);
    out[key] = { ...t, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(out), "utf8");
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([len, json, ...chunks]));
}

describe("diffeval features --encoder", () => {
  it("clip: the raw projected image embeddings of the reference", async () => {
    const out = path.join(tmp, "clip_real.npy");
    const r = await runCli(["features", real, "--encoder", "clip", "--out", out, ...cpu(clipDir)]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const got = loadNpy(out);
    const want = loadNpy(fixture("encoders", "reference", "clip_image_embeds_real.npy"));
    expect(got.shape).toEqual([32, 16]);
    expect(maxAbsDiff(got.data, want.data)).toBeLessThan(1e-4);
    const sidecar = JSON.parse(readFileSync(out.replace(/\.npy$/, ".json"), "utf8"));
    expect(sidecar).toMatchObject({ encoder: "clip", protocol: "clip", n: 32, d: 16 });
    expect(sidecar.files).toEqual(clipExpected().real_files);
  });

  it("dinov2: the normalised class tokens of the reference (folder or .pth)", async () => {
    for (const weights of [dinoDir, path.join(dinoDir, "dinov2-tiny.pth")]) {
      const out = path.join(tmp, "dino_real.npy");
      const r = await runCli(["features", real, "--encoder", "dinov2", "--out", out, ...cpu(weights)]);
      expect(r.code, r.stderr).toBe(0);
      const got = loadNpy(out);
      expect(got.shape).toEqual([32, 64]);
      expect(maxAbsDiff(got.data, loadNpy(fixture("encoders", "reference", "dinov2_feats_real.npy")).data)).toBeLessThan(1e-4);
    }
  });

  it("refuses --logits with another encoder", async () => {
    const r = await runCli(["features", real, "--encoder", "clip", "--out", path.join(tmp, "x.npy"), "--logits", path.join(tmp, "l.npy"), ...cpu(clipDir)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_USAGE|inception/);
  });
});

describe("diffeval metrics --encoder", () => {
  it("clip: fd and cmmd of the reference", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--encoder", "clip", "--metrics", "fd,cmmd", "--json", ...cpu(clipDir)]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    const exp = clipExpected();
    expect(Math.abs(json.fd - exp.fd_clip_raw_real_vs_fake)).toBeLessThan(1e-5);
    expect(Math.abs(json.cmmd - exp.cmmd_real_vs_fake)).toBeLessThan(1e-5);
    expect(json).toMatchObject({ encoder: "clip", protocol: "clip", n_real: 32, n_fake: 32 });
    expect(json.weights_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(json.fid).toBeUndefined();
  });

  it("dinov2: FD-DINOv2 of the reference; fid and is are skipped with a reason", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--encoder", "dinov2", "--metrics", "fd,fid,is,kid", "--json", ...cpu(dinoDir)]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(Math.abs(json.fd - dinoExpected().fd_dinov2)).toBeLessThan(1e-5);
    expect(json).toMatchObject({ encoder: "dinov2", protocol: "dinov2" });
    expect(json.skipped.fid).toMatch(/inception/);
    expect(json.skipped.is).toMatch(/inception/);
    expect(json.kid.mean).toEqual(expect.any(Number));
  });

  it("refuses stats made with another encoder (E_PROTOCOL_MISMATCH)", async () => {
    const inc = path.join(tmp, "inception_real.npz");
    const made = await runCli(["stats", real, "--out", inc, ...cpu(await fixtureStateDictPath(false))]);
    expect(made.code, made.stderr).toBe(0);
    const r = await runCli(["metrics", "--real", inc, "--fake", fake, "--encoder", "clip", "--metrics", "fd", "--json", ...cpu(clipDir)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_PROTOCOL_MISMATCH/);
    expect(r.stderr).toMatch(/encoder/);
  });

  it("inception: fd equals fid, and the JSON names the encoder", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--metrics", "fid,fd", "--json", ...cpu(await fixtureStateDictPath(false))]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.fd).toBe(json.fid);
    expect(json.encoder).toBe("inception");
  });

  it("refuses a truncated model.safetensors (E_WEIGHTS_TRUNCATED)", async () => {
    const full = readFileSync(path.join(clipDir, "model.safetensors"));
    const dir = clipFolderWith("clip-truncated", new Uint8Array(full.subarray(0, Math.floor(full.length / 2))));
    const r = await runCli(["features", real, "--encoder", "clip", "--out", path.join(tmp, "t.npy"), ...cpu(dir)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_WEIGHTS_TRUNCATED/);
  });

  it("refuses a checkpoint with a key missing (E_WEIGHTS_LAYOUT)", async () => {
    const dir = clipFolderWith("clip-missing", safetensorsWithout("vision_model.post_layernorm.weight"));
    const r = await runCli(["features", real, "--encoder", "clip", "--out", path.join(tmp, "m.npy"), ...cpu(dir)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_WEIGHTS_LAYOUT/);
    expect(r.stderr).toMatch(/post_layernorm/);
  });
});
