#!/usr/bin/env node
/**
 * Prints (one per line, relative to the project root) the node_modules package folders that the
 * GPU bundle needs at run time: the project's production dependencies minus those named in
 * $PACK_DROP_DEPS (space/comma separated), and everything they require, resolved the way Node
 * does (node_modules folders walking up from the dependent). Optional dependencies that are not
 * installed (sharp's other platforms) are skipped; a missing required one is an error.
 *
 * Used by scripts/device/pack.sh; plain JavaScript so it runs before anything is built.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? ".");
const drop = new Set((process.env.PACK_DROP_DEPS ?? "").split(/[\s,]+/).filter(Boolean));
const readPkg = (dir) => JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));

/** The folder Node would load `name` from when required inside `fromDir`. */
function resolvePackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (existsSync(path.join(candidate, "package.json"))) return candidate;
    if (dir === root || path.dirname(dir) === dir) return undefined;
  }
}

const seen = new Set();
const queue = [];
const want = (name, fromDir, optional, from) => {
  const dir = resolvePackage(name, fromDir);
  if (!dir) {
    if (optional) return;
    throw new Error(`${from} needs ${name}, which is not installed (run npm ci)`);
  }
  if (!seen.has(dir)) {
    seen.add(dir);
    queue.push(dir);
  }
};

const top = readPkg(root);
for (const name of Object.keys(top.dependencies ?? {})) if (!drop.has(name)) want(name, root, false, "package.json");
while (queue.length > 0) {
  const dir = queue.shift();
  const pkg = readPkg(dir);
  const optional = new Set(Object.keys(pkg.optionalDependencies ?? {}));
  for (const name of Object.keys(pkg.dependencies ?? {})) want(name, dir, optional.has(name), pkg.name);
  for (const name of optional) want(name, dir, true, pkg.name);
}
for (const dir of [...seen].sort()) process.stdout.write(`${path.relative(root, dir)}\n`);
