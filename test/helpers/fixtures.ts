/** The one place that knows where the shared fixtures live. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

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
