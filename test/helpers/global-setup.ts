/** Runs once before all test files: builds dist/ so that tests of the real bins run current code. */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { projectRoot } from "./fixtures.js";

export default function setup(): void {
  if (process.env.DIFFEVAL_SKIP_BUILD) return; // iterating on one test file with dist/ already fresh
  execFileSync(process.execPath, [path.join(projectRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: projectRoot,
    stdio: "inherit",
  });
}
