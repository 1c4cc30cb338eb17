/**
 * Runs once before all test files: builds dist/ so that tests of the real bins run current code,
 * and .bench-build/ so that the fuzz tests' child workers (test/fuzz/worker.ts) run current code.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { projectRoot } from "./fixtures.js";

export default function setup(): void {
  if (process.env.DIFFEVAL_SKIP_BUILD) return; // iterating on one test file with both builds already fresh
  for (const config of ["tsconfig.build.json", "tsconfig.bench.json"]) {
    execFileSync(process.execPath, [path.join(projectRoot, "node_modules/typescript/bin/tsc"), "-p", config], {
      cwd: projectRoot,
      stdio: "inherit",
    });
  }
}
