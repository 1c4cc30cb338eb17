/** The one place that knows where the shared fixtures live. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: the nearest folder above this file with diffeval's package.json (tests run from
 * test/helpers, benchmarks from the compiled .bench-build/test/helpers). */
const projectRoot = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)));

function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "diffeval") return dir;
    if (path.dirname(dir) === dir) throw new Error(`no diffeval package.json above ${start}`);
  }
}

/** Root of ../shared/fixtures (relative to the project root), overridable for odd checkouts. */
export const fixturesRoot = process.env.DIFFEVAL_FIXTURES ?? path.resolve(projectRoot, "../shared/fixtures");

export function fixture(...parts: string[]): string {
  const p = path.join(fixturesRoot, ...parts);
  if (!existsSync(p)) throw new Error(`fixture missing: ${p} (is ../shared/fixtures next to the project?)`);
  return p;
}

export function expectedJson(): Record<string, any> {
  return JSON.parse(readFileSync(fixture("reference", "expected.json"), "utf8"));
}

export { projectRoot };
