import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package version, recorded in every result so numbers can be traced to the code that made them. */
export const VERSION: string = readOwnPackageJson().version;

/** Walks up from this file to diffeval's package.json (src/, dist/ and bench builds sit at different depths). */
function readOwnPackageJson(): { version: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version: string };
      if (pkg.name === "diffeval") return pkg;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return { version: "unknown" };
    dir = parent;
  }
}
