/**
 * `npm run fuzz`: every parser of untrusted bytes, 10,000 cases each by default, in child workers
 * with a heap cap, an RSS watchdog and a per-case timeout (test/fuzz/campaign.ts). Writes a JSON
 * report (bench-results/fuzz-report.json) and saves a shrunk reproducer of every bad case under
 * test/fuzz/reproducers/<target>/, where the suite replays it from then on. Exits 1 when any case
 * ended in a generic exception, an abort, a hang or a memory blowup.
 *
 *   npm run fuzz -- [--cases N] [--targets npy,zip-source] [--seed S] [--jobs J]
 *                   [--report FILE] [--reproducers DIR] [--case-timeout-ms MS] [--max-rss-mb MB]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { VERSION } from "../src/version.js";
import { projectRoot } from "../test/helpers/fixtures.js";
import { BAD_OUTCOMES, DEFAULT_CAPS, runCampaign, type TargetReport } from "../test/fuzz/campaign.js";
import { FUZZ_TARGETS } from "../test/fuzz/targets.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cases: { type: "string", default: "10000" },
      targets: { type: "string" },
      seed: { type: "string", default: "17" },
      jobs: { type: "string", default: String(Math.max(1, Math.min(2, os.availableParallelism()))) },
      report: { type: "string", default: path.join(projectRoot, "bench-results", "fuzz-report.json") },
      reproducers: { type: "string", default: path.join(projectRoot, "test", "fuzz", "reproducers") },
      "case-timeout-ms": { type: "string", default: String(DEFAULT_CAPS.caseTimeoutMs) },
      "max-rss-mb": { type: "string", default: String(DEFAULT_CAPS.maxRssMb) },
      "slow-ms": { type: "string", default: "1000" },
    },
  });
  const names = values.targets?.split(",").map((s) => s.trim()) ?? FUZZ_TARGETS.map((t) => t.name);
  const cases = Number(values.cases);
  const scratchRoot = mkdtempSync(path.join(os.tmpdir(), "diffeval-fuzz-"));
  const queue = [...names];
  const reports: TargetReport[] = [];
  const started = Date.now();
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      let last = 0;
      const report = await runCampaign({
        target: name,
        cases,
        seed: Number(values.seed),
        slowMs: Number(values["slow-ms"]),
        caseTimeoutMs: Number(values["case-timeout-ms"]),
        maxRssMb: Number(values["max-rss-mb"]),
        maxOldSpaceMb: DEFAULT_CAPS.maxOldSpaceMb,
        scratch: path.join(scratchRoot, name),
        reproducerDir: values.reproducers,
        minimise: true,
        onProgress: (done) => {
          if (done - last >= 1000 || done === cases) process.stderr.write(`fuzz ${name}: ${(last = done)}/${cases}\n`);
        },
      });
      reports.push(report);
      const bad = BAD_OUTCOMES.map((o) => `${o} ${report.outcomes[o]}`).join(", ");
      process.stderr.write(`fuzz ${name}: done in ${report.seconds.toFixed(1)} s: ok ${report.outcomes.ok}, handled ${report.outcomes.handled}, ${bad}\n`);
    }
  };
  await Promise.all(Array.from({ length: Number(values.jobs) }, worker));
  reports.sort((a, b) => names.indexOf(a.target) - names.indexOf(b.target));
  const totals = Object.fromEntries(BAD_OUTCOMES.map((o) => [o, reports.reduce((s, r) => s + r.outcomes[o], 0)]));
  const summary = {
    version: VERSION,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    cases_per_target: cases,
    seed: Number(values.seed),
    seconds: (Date.now() - started) / 1000,
    totals,
    targets: reports,
  };
  mkdirSync(path.dirname(values.report), { recursive: true });
  writeFileSync(values.report, `${JSON.stringify(summary, null, 1)}\n`);
  process.stderr.write(`fuzz: ${JSON.stringify(totals)}; report ${values.report}\n`);
  return Object.values(totals).some((n) => n > 0) ? 1 : 0;
}

process.exitCode = await main();
