import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { startServer } from "../helpers/local-server.js";
import { runClipScore } from "../../src/pipeline/clip-score.js";
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

describe("encoder weights from the registry (no --weights)", () => {
  const CLIP_ID = "openai/clip-vit-base-patch32";
  const CLIP_FILES = ["config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt", "tokenizer_config.json"];

  /** Runs `fn` with a fresh DIFFEVAL_CACHE and DIFFEVAL_ENCODER_BASE_URL pointing at `base`. */
  async function withCacheAndBase<T>(name: string, base: string, fn: (cache: string) => Promise<T>): Promise<T> {
    const saved = { cache: process.env.DIFFEVAL_CACHE, base: process.env.DIFFEVAL_ENCODER_BASE_URL };
    const cache = path.join(tmp, name);
    process.env.DIFFEVAL_CACHE = cache;
    process.env.DIFFEVAL_ENCODER_BASE_URL = base;
    try {
      return await fn(cache);
    } finally {
      process.env.DIFFEVAL_CACHE = saved.cache;
      if (saved.base === undefined) delete process.env.DIFFEVAL_ENCODER_BASE_URL;
      else process.env.DIFFEVAL_ENCODER_BASE_URL = saved.base;
    }
  }

  it("clip: downloads the registry folder into the cache (unverified, with its sha256) and gives the reference embeddings", async () => {
    const server = await startServer((req, res) => {
      const prefix = `/${CLIP_ID}/`;
      const name = (req.url ?? "").startsWith(prefix) ? (req.url ?? "").slice(prefix.length) : "";
      if (!CLIP_FILES.includes(name)) {
        res.writeHead(404).end();
        return;
      }
      const body = readFileSync(path.join(clipDir, name));
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    try {
      await withCacheAndBase("cache-clip-download", server.url(""), async (cache) => {
        const out = path.join(tmp, "clip_dl.npy");
        const args = ["features", real, "--encoder", "clip", "--encoder-weights", CLIP_ID, "--out", out, "--device", "cpu", "--threads", "0"];
        const r = await runCli(args);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/model\.safetensors: unverified .*sha256 is [0-9a-f]{64}/);
        const folder = path.join(cache, "weights", "openai--clip-vit-base-patch32");
        expect(readdirSync(folder).sort()).toEqual([...CLIP_FILES].sort());
        expect(readdirSync(path.join(cache, "weights"))).toEqual(["openai--clip-vit-base-patch32"]);
        const got = loadNpy(out);
        expect(got.shape).toEqual([32, 16]);
        expect(maxAbsDiff(got.data, loadNpy(fixture("encoders", "reference", "clip_image_embeds_real.npy")).data)).toBeLessThan(1e-4);
        // A second run uses the cached folder: no new requests.
        const before = server.requests.length;
        const again = await runCli(args);
        expect(again.code, again.stderr).toBe(0);
        expect(server.requests.length).toBe(before);
        // clipscore without --weights uses the same registry folder (no new requests either).
        const pairs = path.join(tmp, "pairs_dl.csv");
        writeFileSync(pairs, `image,prompt\n${path.join(real, "real_0000.png")},a photo\n${path.join(real, "real_0001.png")},a dog\n`);
        const score = await runClipScore({ pairs, weightsId: CLIP_ID, device: "cpu" });
        expect(score.weights).toBe(folder);
        expect(score.n).toBe(2);
        expect(Number.isFinite(score.clip_score)).toBe(true);
        expect(server.requests.length).toBe(before);
      });
    } finally {
      await server.close();
    }
  });

  it("clip: a server dying in the middle of a file leaves nothing in the cache", async () => {
    const server = await startServer((req, res) => {
      const name = path.basename(req.url ?? "");
      if (!CLIP_FILES.includes(name)) {
        res.writeHead(404).end();
        return;
      }
      const body = readFileSync(path.join(clipDir, name));
      if (name !== "model.safetensors") {
        res.writeHead(200, { "content-length": body.length }).end(body);
        return;
      }
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
    });
    try {
      await withCacheAndBase("cache-clip-dies", server.url(""), async (cache) => {
        const r = await runCli(["features", real, "--encoder", "clip", "--encoder-weights", CLIP_ID, "--out", path.join(tmp, "d.npy"), "--device", "cpu", "--threads", "0"]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/E_[A-Z_]+/);
        const weights = path.join(cache, "weights");
        expect(existsSync(weights) ? readdirSync(weights) : []).toEqual([]);
      });
    } finally {
      await server.close();
    }
  });

  it("refuses --encoder-weights naming another encoder's weights", async () => {
    const r = await runCli(["features", real, "--encoder", "clip", "--encoder-weights", "dinov2_vitl14", "--out", path.join(tmp, "u.npy"), "--device", "cpu", "--threads", "0"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_USAGE/);
  });
});

describe("dinov2 layout checks", () => {
  it("refuses a .pth whose config.json asks for a block it lacks (E_WEIGHTS_LAYOUT)", async () => {
    const dir = path.join(tmp, "dino-deeper");
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(dinoDir, "dinov2-tiny.pth"), path.join(dir, "dinov2-tiny.pth"));
    const config = JSON.parse(readFileSync(path.join(dinoDir, "config.json"), "utf8"));
    writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, depth: config.depth + 1 }));
    // A cache of its own: the converted graph is keyed by the .pth's sha256 alone, so the one
    // converted by the tests above (same .pth, right config) would otherwise be reused unchecked.
    const saved = process.env.DIFFEVAL_CACHE;
    process.env.DIFFEVAL_CACHE = path.join(tmp, "cache-dino-layout");
    let r;
    try {
      r = await runCli(["features", real, "--encoder", "dinov2", "--out", path.join(tmp, "dl.npy"), ...cpu(dir)]);
    } finally {
      process.env.DIFFEVAL_CACHE = saved;
    }
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_WEIGHTS_LAYOUT/);
    expect(r.stderr).toMatch(new RegExp(`blocks\\.${config.depth}\\.`));
  });
});
