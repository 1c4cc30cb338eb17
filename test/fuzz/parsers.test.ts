/**
 * Property: for every parser of untrusted bytes, any mutation of a valid file ends in a result or
 * a DiffevalError: never another exception, a native abort, a hang or a memory blowup. Each target
 * runs a bounded number of cases here (FUZZ_CASES, default 150) in a capped child worker; `npm run
 * fuzz` runs the same targets 10,000+ times. Every reproducer ever saved under
 * test/fuzz/reproducers/ is replayed too.
 */
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { BAD_OUTCOMES, replayOutcomes, runCampaign, type Caps, type TargetReport } from "./campaign.js";
import { FUZZ_TARGETS } from "./targets.js";

const CASES = Number(process.env.FUZZ_CASES ?? 150);
const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
/** A loaded 2-core CI machine: generous per case, still far below the audit's 10 s hangs. */
const CAPS: Caps = { caseTimeoutMs: 5_000, maxRssMb: 1024, maxOldSpaceMb: 512 };
const REPRODUCERS = path.join(import.meta.dirname, "reproducers");
const tmp = mkdtempSync(path.join(os.tmpdir(), "diffeval-fuzz-test-"));

function badCases(report: TargetReport): string {
  return report.failures.map((f) => `case ${f.case}: ${f.outcome}: ${f.detail}${f.reproducer ? ` (saved: ${f.reproducer})` : ""}`).join("\n");
}

describe.each(FUZZ_TARGETS.map((t) => [t.name, t] as const))("fuzz target %s", (name, target) => {
  it("parses every seed (so the mutations start from valid files)", async () => {
    const outcomes = await replayOutcomes(name, target.seeds(), CAPS, path.join(tmp, name, "seeds"));
    expect(outcomes.map((o) => (o.outcome === "ok" ? "ok" : `${o.outcome}: ${o.detail}`))).toEqual(outcomes.map(() => "ok"));
  });

  it(`ends ${CASES} mutated files in a result or a named error, within time and memory`, async () => {
    const report = await runCampaign({
      ...CAPS,
      target: name,
      cases: CASES,
      seed: SEED,
      slowMs: 2_000,
      scratch: path.join(tmp, name, "run"),
      reproducerDir: path.join(tmp, "reproducers"),
    });
    expect(badCases(report)).toBe("");
    expect(BAD_OUTCOMES.map((o) => report.outcomes[o])).toEqual(BAD_OUTCOMES.map(() => 0));
    expect(report.outcomes.ok + report.outcomes.handled).toBe(CASES);
    // Both kinds of ending occur: the mutations reach past the first check, and the checks refuse.
    if (!target.tolerant) expect(report.outcomes.handled).toBeGreaterThan(0);
    expect(report.outcomes.ok).toBeGreaterThan(0);
  });

  const saved = path.join(REPRODUCERS, name);
  const files = existsSync(saved) ? readdirSync(saved).filter((f) => f.endsWith(".bin")) : [];
  it.skipIf(files.length === 0)(`replays its ${files.length} saved reproducer(s) to a result or a named error`, async () => {
    const outcomes = await replayOutcomes(name, files.map((f) => path.join(saved, f)), CAPS, path.join(tmp, name, "replay"));
    const bad = outcomes.map((o, i) => `${files[i]}: ${o.outcome} ${o.detail}`).filter((_, i) => !["ok", "handled"].includes(outcomes[i].outcome));
    expect(bad).toEqual([]);
  });
});
