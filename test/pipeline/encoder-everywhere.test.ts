/**
 * `--encoder` on every extracting command: fid, stats (whole and sharded), jpeg and the metrics
 * agree on one FD-DINOv2, and stats files carry their encoder so that mixing spaces is refused.
 */
import path from "node:path";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { readStatsFile } from "../../src/io/npz-file.js";
import { runCli, setUpCliTest } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { fixtureStateDictPath } from "../helpers/model.js";

let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");
const dinoDir = fixture("encoders", "dinov2-tiny");
const dinoExpected = () => JSON.parse(readFileSync(fixture("encoders", "reference", "dinov2_expected.json"), "utf8"));
const cpu = (weights: string) => ["--weights", weights, "--device", "cpu", "--threads", "0"];
const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

beforeAll(async () => {
  ({ tmp } = await setUpCliTest("diffeval-encoder-everywhere-"));
});

describe("--encoder dinov2 on fid, stats and metrics", () => {
  let fd: number;

  it("fid --json prints fd (not fid) and the encoder, equal to metrics' fd and the fixture's FD-DINOv2", async () => {
    const r = await runCli(["fid", "--real", real, "--fake", fake, "--encoder", "dinov2", "--json", ...cpu(dinoDir)]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.fid).toBeUndefined();
    expect(json).toMatchObject({ encoder: "dinov2", protocol: "dinov2", n_real: 32, n_fake: 32 });
    fd = json.fd;
    expect(Math.abs(fd - dinoExpected().fd_dinov2)).toBeLessThan(1e-5);
    const m = await runCli(["metrics", "--real", real, "--fake", fake, "--encoder", "dinov2", "--metrics", "fd", "--json", ...cpu(dinoDir)]);
    expect(m.code, m.stderr).toBe(0);
    expect(relative(JSON.parse(m.stdout).fd, fd)).toBeLessThan(1e-12);
    const human = await runCli(["fid", "--real", real, "--fake", fake, "--encoder", "dinov2", ...cpu(dinoDir)]);
    expect(human.stdout).toMatch(/^FD \(dinov2\)\s+\d/);
  });

  it("a stats --encoder dinov2 file records the encoder and weights, and gives the same fd on one side", async () => {
    const stats = path.join(tmp, "dino_real.npz");
    const made = await runCli(["stats", real, "--encoder", "dinov2", "--out", stats, ...cpu(dinoDir)]);
    expect(made.code, made.stderr).toBe(0);
    const { meta } = await readStatsFile(stats);
    expect(meta).toMatchObject({ encoder: "dinov2", protocol: "dinov2", n: 32 });
    expect(String((meta as Record<string, unknown>).weights_sha256)).toMatch(/^[0-9a-f]{64}$/);
    const r = await runCli(["fid", "--real", stats, "--fake", fake, "--encoder", "dinov2", "--json", ...cpu(dinoDir)]);
    expect(r.code, r.stderr).toBe(0);
    expect(relative(JSON.parse(r.stdout).fd, fd)).toBeLessThan(1e-9);
  });

  it("sharded stats with --encoder dinov2 merge to the whole-source statistics' fd", async () => {
    const parts = [0, 1].map((i) => path.join(tmp, `dino-part-${i}.npz`));
    for (const [i, out] of parts.entries()) {
      const r = await runCli(["stats", real, "--shard", `${i}/2`, "--encoder", "dinov2", "--out", out, ...cpu(dinoDir)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const merged = path.join(tmp, "dino-merged.npz");
    const m = await runCli(["stats", "merge", ...parts, "--out", merged]);
    expect(m.code, m.stderr).toBe(0);
    expect((await readStatsFile(merged)).meta).toMatchObject({ encoder: "dinov2", protocol: "dinov2" });
    const r = await runCli(["fid", "--real", merged, "--fake", fake, "--encoder", "dinov2", "--json", ...cpu(dinoDir)]);
    expect(r.code, r.stderr).toBe(0);
    expect(relative(JSON.parse(r.stdout).fd, fd)).toBeLessThan(1e-9);
  });

  it("two dinov2 files compared without --encoder are a dinov2 distance (fd), not an Inception FID", async () => {
    const whole = path.join(tmp, "dino_real.npz");
    const merged = path.join(tmp, "dino-merged.npz");
    const r = await runCli(["fid", "--real", whole, "--fake", merged, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json).toMatchObject({ encoder: "dinov2" });
    expect(json.fid).toBeUndefined();
    expect(Math.abs(json.fd)).toBeLessThan(1e-6); // the same images, summed in two shards
    // Asked for another space, the files are refused by name.
    const asked = await runCli(["fid", "--real", whole, "--fake", merged, "--encoder", "clip", "--json"]);
    expect(asked.code).toBe(2);
    expect(asked.stderr).toMatch(/^error\[E_PROTOCOL_MISMATCH\].*dinov2/);
  });

  it("the dinov2 stats file against Inception features exits 2 naming both encoders", async () => {
    const stats = path.join(tmp, "dino_real.npz");
    const r = await runCli(["fid", "--real", stats, "--fake", fake, "--json", ...cpu(await fixtureStateDictPath(false))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error\[E_PROTOCOL_MISMATCH\]/);
    expect(r.stderr).toMatch(/dinov2/);
    expect(r.stderr).toMatch(/inception/);
  });

  it("jpeg --encoder dinov2 measures the JPEG copies in DINOv2 space and says so", async () => {
    const r = await runCli(["jpeg", "--real", real, "--qualities", "90", "--encoder", "dinov2", "--json", ...cpu(dinoDir)]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json).toMatchObject({ feature_encoder: "dinov2", protocol: "dinov2" });
    expect(json.results[0].fid_real_vs_jpeg).toBeGreaterThan(0);
  });
});
