/**
 * `npm run demo`: the analytic generator swept over s in {1, 2, 3, 5, 9} (w = 0, 1, 2, 4, 8) x
 * two negative prompts (none, and one class) x guidance rule (CFG, and classifier guidance with the
 * model's exact classifier: README "Sweeps"), every cell evaluated against exact samples of the
 * data distribution (`analytic:real`), the report written to reports/demo/. The FID weights come
 * from the cache or DIFFEVAL_WEIGHTS; the demo never downloads, and without weights it stops with
 * the weights error before generating anything (runSweep resolves the model first).
 *
 * DEMO_SEEDS (images per prompt and cell) and DEMO_REFERENCE (reference images) shrink or grow it.
 * DEMO_CLIP=DIR (a Hugging Face CLIP folder, e.g. ../shared/fixtures/encoders/clip-tiny) adds CLIP
 * scores and negative-prompt adherence (neg_clip, neg_clip_delta) to every cell.
 *
 * With DEMO_SD=DIR (a Stable Diffusion ONNX export folder) the built-in `onnx-sd` generator runs
 * instead: s in {1, 3, 7.5} x negative prompt {none, "blurry, low quality"} over a few prompts,
 * against DEMO_REAL (any reference source: an image folder, a stats file or a reference name),
 * at DEMO_SIZE pixels (512) and DEMO_STEPS steps (25), on DEMO_DEVICE (auto); report in
 * reports/demo-sd/.
 */
import path from "node:path";
import { analyticClasses } from "../src/generators/analytic/index.js";
import { DiffevalError, isDiffevalError } from "../src/errors.js";
import { parseDevice } from "../src/models/session.js";
import { runSweep } from "../src/sweep/run-sweep.js";
import { parseSweepSpec, type SweepSpec } from "../src/sweep/spec.js";

async function main(): Promise<number> {
  const root = process.cwd();
  const spec = process.env.DEMO_SD ? sdSpec(process.env.DEMO_SD, root) : analyticSpec(root);
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let lastCell = -1;
  const outcome = await runSweep({
    spec,
    allowDownload: false,
    ...(process.env.DEMO_DEVICE ? { device: parseDevice(process.env.DEMO_DEVICE) } : {}),
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

function analyticSpec(root: string): SweepSpec {
  const classes = analyticClasses();
  return parseSweepSpec(
    {
      name: "demo",
      generator: { type: "analytic" },
      prompts: classes,
      negative_prompts: ["", classes[1]],
      guidance_scales: [1, 2, 3, 5, 9],
      // with the default (broad) unconditional model the two rules differ; the report plots each metric against this axis
      axes: { guidance: ["cfg", "classifier"] },
      seeds_per_prompt: intFromEnv("DEMO_SEEDS", 20),
      size: 32,
      steps: 20,
      reference: { source: "analytic:real", count: intFromEnv("DEMO_REFERENCE", 400) },
      bootstrap: 10,
      // With a CLIP checkpoint, each cell also gets clip_score and, with a negative prompt, neg_clip
      // and neg_clip_delta: how far the negative prompt pushed its class away (README "Sweeps").
      ...(process.env.DEMO_CLIP ? { clip: path.resolve(root, process.env.DEMO_CLIP) } : {}),
      output: path.join("runs", "demo"),
      report: path.join("reports", "demo"),
    },
    { baseDir: root },
  );
}

/** The same sweep with the built-in Stable Diffusion on an ONNX export folder. */
function sdSpec(model: string, root: string): SweepSpec {
  const real = process.env.DEMO_REAL;
  if (!real) {
    throw new DiffevalError("E_USAGE", "DEMO_SD needs DEMO_REAL: the reference to compare with (an image folder, a stats .npz, or a reference name such as coco2014-val-30k-clean)");
  }
  const size = intFromEnv("DEMO_SIZE", 512);
  return parseSweepSpec(
    {
      name: "demo-sd",
      generator: { type: "onnx-sd", model: path.resolve(root, model) },
      prompts: ["a photo of a cat", "a red circle on a blue background", "an astronaut riding a horse", "a bowl of fruit on a table"],
      negative_prompts: ["", "blurry, low quality"],
      guidance_scales: [1, 3, 7.5],
      seeds_per_prompt: intFromEnv("DEMO_SEEDS", 5),
      size,
      steps: intFromEnv("DEMO_STEPS", 25),
      reference: real,
      bootstrap: 10,
      output: path.join("runs", "demo-sd"),
      report: path.join("reports", "demo-sd"),
    },
    { baseDir: root },
  );
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
