import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { METRIC_DIRECTIONS } from "../../src/gate/metric-directions.js";
import { parseRule } from "../../src/gate/rules.js";
import { computeMetricValues, defaultMetrics, getMetric, METRIC_KEYS, METRIC_NAMES, METRICS, type MetricContext } from "../../src/metrics/registry.js";
import { fitGaussian } from "../../src/stats/gaussian.js";
import type { FeatureMatrix, RgbImage } from "../../src/types.js";
import { gate, metricsResult, tempDir, writeInput } from "../gate/build-results.js";
import { xorshift32 } from "../helpers/xorshift.js";

const xorshift = (seed: number) => {
  const next = xorshift32(seed);
  return () => next() / 2 ** 32;
};

const repoRoot = path.resolve(import.meta.dirname, "../..");

function normalRows(n: number, d: number, seed: number, shift = 0): FeatureMatrix {
  const next = xorshift(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < data.length; i++) data[i] = shift + Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
  return { n, d, data };
}

function noiseImage(seed: number, size = 64): RgbImage {
  const next = xorshift(seed);
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(next() * 256);
  return { width: size, height: size, data } as RgbImage;
}

/** Two sides with everything a metric can ask for: features, spatial features, images, groups, prompts. */
function fullContext(): MetricContext {
  const n = 24;
  const d = 8;
  const side = (seed: number, shift: number, spec: string) => {
    const features = normalRows(n, d, seed, shift);
    return {
      spec,
      gaussian: fitGaussian(features),
      features,
      spatial: normalRows(n, 5, seed + 100, shift),
      names: Array.from({ length: n }, (_, i) => `${i}.png`),
    };
  };
  const real = side(1, 0, "real");
  const fake = { ...side(2, 0.3, "fake"), images: { count: 4, read: async (i: number) => noiseImage(10 + i) } };
  const fc = normalRows(1008, d, 7);
  return {
    real,
    fake,
    encoder: "inception",
    settings: { bootstrap: 4, groups: new Map(fake.names.map((name, i) => [name, String(i % 2)])), msssimPairs: 3 },
    fcWeight: async () => fc.data,
    prompts: { images: normalRows(n, d, 3), texts: normalRows(n, d, 4) },
    negativePrompts: { cell: { images: normalRows(n, d, 5), texts: normalRows(n, d, 6) }, withoutNegative: { images: normalRows(n, d, 8), texts: normalRows(n, d, 6) } },
    generation: [{ seconds: 0.5, modelEvaluations: 12 }, { seconds: 1.5, modelEvaluations: 24 }],
    controls: { count: 4, read: async (i: number) => noiseImage(20 + i), low: 100, high: 200 },
  };
}

describe("the metric registry", () => {
  it("names each metric and each JSON key once", () => {
    expect(new Set(METRIC_NAMES).size).toBe(METRICS.length);
    const keys = METRIC_KEYS.map((k) => k.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(() => getMetric("nope")).toThrow(/unknown metric 'nope'/);
  });

  it("keeps the documented defaults: fid,kid,is,pr,dc for inception; kid,pr,dc,fd for the other encoders", () => {
    expect(defaultMetrics("inception")).toEqual(["fid", "kid", "is", "pr", "dc"]);
    expect(defaultMetrics("dinov2")).toEqual(["kid", "pr", "dc", "fd"]);
  });

  it("computes every metric when the sides have what it needs, writing exactly the registry's keys", async () => {
    const { metrics, skipped } = await computeMetricValues(METRIC_NAMES, fullContext());
    // `subject` exists in the clip and dinov2 spaces only: its key names the space (clip_i, dinov2_i).
    expect(skipped).toEqual({ subject: "exists only for the clip and dinov2 encoders, not inception" });
    for (const encoder of ["clip", "dinov2"]) Object.assign(metrics, (await computeMetricValues(["subject"], { ...fullContext(), encoder })).metrics);
    expect(Object.keys(metrics).sort()).toEqual(METRIC_KEYS.map((k) => k.key).sort());
    expect((metrics.fd as { mean: number }).mean).toBe((metrics.fid as { mean: number }).mean);
  });

  it("skips with the reason: another encoder's space, stats-file sides, too few images", async () => {
    const ctx = fullContext();
    const other = await computeMetricValues(["fid", "is", "fd"], { ...ctx, encoder: "dinov2" });
    expect(Object.keys(other.skipped)).toEqual(["fid", "is"]);
    expect(other.skipped.fid).toMatch(/only for the inception encoder, not dinov2; fd is/);
    const stats = { spec: "ref.npz", gaussian: ctx.real.gaussian };
    const s = await computeMetricValues(["fid", "kid", "gauss"], { ...ctx, real: stats });
    expect(s.skipped.kid).toMatch(/ref\.npz is a stats file/);
    expect(typeof s.metrics.fid).toBe("number");
    expect(Object.keys(s.metrics.gauss as object)).toEqual(["fake"]);
    const few = await computeMetricValues(["is", "pr"], { ...ctx, settings: { prK: 30 } });
    expect(few.skipped.pr).toMatch(/needs at least 31 images per side, got 24/);
    expect(few.metrics.is).toBeDefined();
  });
});

describe("every key `metrics --json` can print is gate-able", () => {
  it("has a direction, parses as a rule in its bad direction, and is compared by the gate", async () => {
    const { metrics } = await computeMetricValues(METRIC_NAMES, fullContext());
    const rules = Object.keys(metrics).map((key) => {
      const direction = METRIC_DIRECTIONS.get(key);
      expect(direction, key).toBeDefined();
      const rule = `${key}:${direction === "up" ? "+" : "-"}1%`;
      expect(parseRule(rule).metric).toBe(key);
      return rule;
    });
    const dir = tempDir();
    const file = writeInput(dir, "m.json", metricsResult(metrics));
    const r = await gate({ current: file, baseline: file, rules });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const key of Object.keys(metrics)) expect(r.stdout).toContain(key);
  });

  it("fails on a CMMD or FD regression (cmmd:+0.1, fd:+1)", async () => {
    const dir = tempDir();
    const baseline = writeInput(dir, "b.json", metricsResult({ cmmd: 0.5, fd: 10 }));
    const worse = writeInput(dir, "c.json", metricsResult({ cmmd: 0.7, fd: 10.5 }));
    expect((await gate({ current: worse, baseline, rules: ["cmmd:+0.1", "fd:+1"] })).code).toBe(1);
    expect((await gate({ current: worse, baseline, rules: ["cmmd:+0.3", "fd:+1"] })).code).toBe(0);
  });
});

describe("README's metric table", () => {
  it("lists exactly the registry's metrics and keys", () => {
    const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Metrics"), readme.indexOf("\n## ", readme.indexOf("\n## Metrics") + 5));
    const rows = section.split("\n").filter((l) => /^\| `[a-z]+` \|/.test(l));
    const table = new Map(rows.map((l) => {
      const [, name, keys] = l.split("|").map((c) => c.trim());
      return [name.replace(/`/g, ""), [...keys.matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1])];
    }));
    expect([...table.keys()]).toEqual([...METRIC_NAMES]);
    for (const m of METRICS) expect(table.get(m.name), m.name).toEqual(m.keys.map((k) => k.key));
  });
});
