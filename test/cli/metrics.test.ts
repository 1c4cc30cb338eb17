import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { unbiasedLogits } from "../../src/metrics/inception-score.js";
import { inceptionScore } from "../../src/metrics/inception-score.js";
import { readStateDict } from "../../src/models/pth.js";
import { loadNpy, maxAbsDiff } from "../helpers/arrays.js";
import { cpuFlags, runCli, setUpCliTest } from "../helpers/cli.js";
import { expectedJson, fixture } from "../helpers/fixtures.js";

let weights: string;
let tmp: string;
const real = fixture("images", "real");
const fake = fixture("images", "fake");

beforeAll(async () => {
  ({ weights, tmp } = await setUpCliTest("diffeval-metrics-"));
});

const common = () => cpuFlags(weights);

describe("diffeval metrics", () => {
  it("gives the reference tools' FID, KID, precision/recall and density/coverage end to end", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--protocol", "legacy-pytorch", "--json", ...common()]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    const exp = expectedJson();
    expect(Math.abs(json.fid - exp.fid_legacy_pytorch_pytorch_fid_formula)).toBeLessThan(1e-4);
    // End to end the features differ from the reference by ~1e-6, so KID agrees to ~1e-8, not 1e-9.
    expect(Math.abs(json.kid.mean - exp.kid_legacy_pytorch_cleanfid_subsets100_size1000)).toBeLessThan(1e-7);
    expect(json.precision).toBe(exp.prdc_legacy_pytorch_k3_real_vs_fake.precision);
    expect(json.recall).toBe(exp.prdc_legacy_pytorch_k3_real_vs_fake.recall);
    expect(json.density).toBeCloseTo(exp.prdc_legacy_pytorch_k5_real_vs_fake.density, 9);
    expect(json.coverage).toBe(exp.prdc_legacy_pytorch_k5_real_vs_fake.coverage);
    expect(json.is.mean).toBeGreaterThanOrEqual(1);
    expect(json).toMatchObject({ protocol: "legacy-pytorch", n_real: 32, n_fake: 32 });
  });

  it("gives torch-fidelity's Inception Score: rows shuffled with RandomState(2020) by default, unshuffled with none", async () => {
    const want = expectedJson().isc_legacy_tensorflow_real_torch_fidelity_splits10_seed2020;
    const args = ["metrics", "--real", real, "--fake", real, "--protocol", "legacy-tensorflow", "--metrics", "is", "--json", ...common()];
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(0);
    const is = JSON.parse(r.stdout).is;
    expect(Math.abs(is.mean - want.inception_score_mean)).toBeLessThan(1e-9);
    expect(Math.abs(is.std - want.inception_score_std)).toBeLessThan(1e-9);
    const unshuffled = JSON.parse((await runCli([...args, "--is-shuffle-seed", "none"])).stdout).is;
    expect(Math.abs(unshuffled.std - want.inception_score_std)).toBeGreaterThan(1e-7);
  });

  it("prints an aligned table, with bootstrap intervals when asked", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--metrics", "fid,pr", "--bootstrap", "5", ...common()]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^metric\s+value\s+std\s+95% CI$/);
    expect(lines.find((l) => l.startsWith("fid "))).toMatch(/^fid\s+0\.40\d\d\s+\d\.\d{4}\s+\[\d\.\d{4}, \d\.\d{4}\]$/);
    expect(lines.find((l) => l.startsWith("precision"))).toBeDefined();
  });

  it("skips, with a warning, metrics a stats-file side cannot give", async () => {
    const stats = path.join(tmp, "real.npz");
    expect((await runCli(["stats", real, "--out", stats, ...common()])).code).toBe(0);
    const r = await runCli(["metrics", "--real", stats, "--fake", fake, "--metrics", "fid,kid,vendi", "--json", ...common()]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(Math.abs(json.fid - expectedJson().fid_clean_pytorch_fid_formula)).toBeLessThan(1e-4);
    expect(json.kid).toBeUndefined();
    expect(json.skipped.kid).toMatch(/stats file/);
    expect(json.vendi).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toMatch(/warning: kid skipped/);
  });

  it("reports diversity per group from a groups file", async () => {
    const groups = path.join(tmp, "groups.tsv");
    const names: string[] = expectedJson().fake_files;
    writeFileSync(groups, names.map((n, i) => `${n}\tprompt${i % 4}`).join("\n"));
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--metrics", "vendi", "--groups", groups, "--json", ...common()]);
    expect(r.code).toBe(0);
    const byGroup = JSON.parse(r.stdout).vendi_by_group;
    expect(Object.keys(byGroup.perGroup).sort()).toEqual(["prompt0", "prompt1", "prompt2", "prompt3"]);
    expect(byGroup.meanOverGroups).toBeGreaterThanOrEqual(1);
  });

  it("rejects unknown metric names", async () => {
    const r = await runCli(["metrics", "--real", real, "--fake", fake, "--metrics", "fid,fvd", ...common()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error\[E_USAGE\]: unknown metric 'fvd'/);
  });
});

describe("Inception Score input", () => {
  it("pool3 @ fc.weight^T reproduces torch-fidelity's logits_unbiased, and its IS", async () => {
    const sd = readStateDict(new Uint8Array(readFileSync(weights)), weights);
    const pool3 = loadNpy(fixture("reference", "feats_legacy_tensorflow_real.npy"));
    const ref = loadNpy(fixture("reference", "logits_unbiased_legacy_tensorflow_real.npy"));
    const logits = unbiasedLogits({ n: 32, d: 2048, data: pool3.data as Float32Array }, sd.get("fc.weight")!.data);
    expect(maxAbsDiff(logits.data, ref.data)).toBeLessThan(1e-4);
    const is = inceptionScore(logits, { splits: 10, shuffleSeed: 2020 });
    const exp = expectedJson().isc_legacy_tensorflow_real_torch_fidelity_splits10_seed2020;
    expect(is.mean).toBeCloseTo(exp.inception_score_mean, 9);
  });
});
