/**
 * The child process of a fuzz campaign: runs cases of one target and reports each on stdout as
 * one JSON line, so the parent (campaign.ts) can watch time and memory from outside and recover
 * from a crash: `{"start": i}` before case i, `{"case": i, "outcome", "ms", ...}` after it.
 *
 *   worker.js run TARGET SEED FROM TO SCRATCH      cases FROM..TO-1 of the campaign SEED
 *   worker.js replay TARGET SCRATCH FILE...         each file as one case (case = its position)
 *   worker.js minimise TARGET SCRATCH IN OUT SIG    shrinks IN while its signature stays SIG
 *
 * Outcomes decided here: "ok" (a result), "handled" (a DiffevalError other than E_INTERNAL) and
 * "generic" (anything else). Aborts, hangs and memory blowups end the process: the parent names those.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { applyCase, drawCase } from "./mutate.js";
import { minimiseBytes } from "./minimise.js";
import { describeError, runCase, signatureOf } from "./case.js";
import { fuzzTarget } from "./targets.js";

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [mode, targetName, ...rest] = argv;
  const target = fuzzTarget(targetName);
  let current = -1;
  // A parser that leaves a rejected promise behind is as much a bug as one that throws.
  process.on("unhandledRejection", (e) => emit({ case: current, outcome: "generic", ms: 0, error: `unhandled rejection: ${describeError(e)}` }));
  if (mode === "run") {
    const [seed, from, to, scratch] = [Number(rest[0]), Number(rest[1]), Number(rest[2]), rest[3]];
    mkdirSync(scratch, { recursive: true });
    const seeds = target.seeds();
    for (let i = from; i < to; i++) {
      current = i;
      const bytes = applyCase(seeds, drawCase(target.format, seeds.length, seed, i));
      emit({ start: i });
      emit({ case: i, ...(await runCase(target, bytes, scratch)) });
    }
  } else if (mode === "replay") {
    const [scratch, ...files] = rest;
    mkdirSync(scratch, { recursive: true });
    for (const [i, file] of files.entries()) {
      current = i;
      emit({ start: i });
      emit({ case: i, ...(await runCase(target, new Uint8Array(readFileSync(file)), scratch)) });
    }
  } else if (mode === "minimise") {
    const [scratch, input, output, signature] = rest;
    mkdirSync(scratch, { recursive: true });
    const still = async (b: Uint8Array) => signatureOf(await runCase(target, b, scratch)) === signature;
    writeFileSync(output, await minimiseBytes(new Uint8Array(readFileSync(input)), still, 400));
  } else {
    throw new Error(`worker: unknown mode ${mode}`);
  }
}

await main(process.argv.slice(2));
