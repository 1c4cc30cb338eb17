/**
 * `npm run demo`: the analytic generator swept over s in {1, 2, 3, 5, 9} (w = 0, 1, 2, 4, 8) x
 * two negative prompts (none, and one class), every cell evaluated against exact samples of the
 * data distribution (`analytic:real`), the report written to reports/demo/. The FID weights come
 * from the cache or DIFFEVAL_WEIGHTS; the demo never downloads, and without weights it stops with
 * the weights error before generating anything (runSweep resolves the model first).
 *
 * DEMO_SEEDS (images per prompt and cell) and DEMO_REFERENCE (reference images) shrink or grow it.
 */
import path from "node:path";
import { analyticClasses } from "../src/generators/analytic/index.js";
import { isDiffevalError } from "../src/errors.js";
import { runSweep } from "../src/sweep/run-sweep.js";
import { parseSweepSpec } from "../src/sweep/spec.js";

async function main(): Promise<number> {
  const classes = analyticClasses();
  const root = process.cwd();
  const spec = parseSweepSpec(
    {
      name: "demo",
      generator: { type: "analytic" },
      prompts: classes,
      negative_prompts: ["", classes[1]],
      guidance_scales: [1, 2, 3, 5, 9],
      seeds_per_prompt: intFromEnv("DEMO_SEEDS", 20),
      size: 32,
      steps: 20,
      reference: { source: "analytic:real", count: intFromEnv("DEMO_REFERENCE", 400) },
      bootstrap: 10,
      output: path.join("runs", "demo"),
      report: path.join("reports", "demo"),
    },
    { baseDir: root },
  );
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let lastCell = -1;
  const outcome = await runSweep({
    spec,
    allowDownload: false,
    log,
    onImages: (p) => {
      if (p.cellsDone !== lastCell) log(`cells ${(lastCell = p.cellsDone)}/${p.cellsTotal}, images ${p.skipped + p.generated}/${p.total}`);
    },
  });
  const seconds = ((performance.now() - t0) / 1000).toFixed(0);
  process.stdout.write(`demo: ${outcome.summary.images} images in ${outcome.summary.cells} cells, ${seconds} s\n`);
  process.stdout.write(`report: ${path.relative(root, outcome.report!.html)}\n`);
  return 0;
}

function intFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined ? fallback : Number.parseInt(v, 10);
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(isDiffevalError(e) ? `error[${e.code}]: ${e.message}\n` : `${(e as Error).stack ?? e}\n`);
    process.exit(2);
  },
);
