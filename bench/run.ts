/**
 * `npm run bench`: every benchmark, one JSON file (bench-results/bench.json, or $BENCH_OUT).
 * Select some with BENCH_ONLY=convert,stats,preprocess,features,metrics,encoders,sd,arrays.
 */
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { VERSION } from "../src/version.js";
import { benchArrays } from "./arrays.js";
import { benchConvert } from "./convert.js";
import { benchEncoders } from "./encoders.js";
import { benchFeatures } from "./features.js";
import { benchMetrics } from "./metrics.js";
import { benchPreprocess } from "./preprocess.js";
import { benchSd } from "./sd.js";
import { benchStats } from "./stats.js";

const BENCHES: Record<string, () => Promise<Record<string, unknown>>> = {
  convert: benchConvert,
  preprocess: benchPreprocess,
  stats: benchStats,
  features: benchFeatures,
  metrics: benchMetrics,
  encoders: benchEncoders,
  sd: benchSd,
  arrays: benchArrays,
};

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(",").map((s) => s.trim());
  const results: Record<string, unknown> = {
    version: VERSION,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  };
  for (const [name, bench] of Object.entries(BENCHES)) {
    if (only && !only.includes(name)) continue;
    process.stderr.write(`bench ${name} ...\n`);
    results[name] = await bench();
    process.stderr.write(`${JSON.stringify(results[name], null, 1)}\n`);
  }
  const out = process.env.BENCH_OUT ?? path.join("bench-results", "bench.json");
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stderr.write(`wrote ${out}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
