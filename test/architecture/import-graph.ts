/**
 * The import graph of the project as the TypeScript compiler resolves it, for the architecture
 * tests (imports.test.ts).
 *
 * Where the edges come from: `tsc --explainFiles --listFilesOnly` prints every file of the
 * program followed by each reason it is in it, one of which is
 *   Imported via "../errors.js" from file 'src/index.ts'
 * for every static import, `import type`, `export ... from` and dynamic `import()` that resolved
 * to it, resolved by the same module resolution as the build (NodeNext, `.js` -> `.ts`,
 * `/index.js`). --listFilesOnly stops before type checking (about 1 s for the whole program), and
 * the graph does not depend on the tree type-checking. `--locale en` pins the wording parsed below
 * (tsc translates it when asked to).
 *
 * Why not dependency-cruiser or madge: both parse TypeScript through the JavaScript compiler API
 * (`ts.createSourceFile`), which the `typescript` 7 package no longer exports (its main entry
 * holds only the version; the compiler is a native binary). dependency-cruiser 17.4 accepts
 * typescript ">=2.0.0 <7.0.0" (src/meta.cjs) and 18 needs Node 22; madge's TypeScript detective,
 * @typescript-eslint/typescript-estree, peers on typescript ">=4.8.4 <6.1.0". The compiler we
 * already depend on lists the edges itself.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../helpers/fixtures.js";

/** Importing file -> imported file -> 1-based line of the import in the importing file. Paths are
 * relative to the project root with "/" separators ("src/io/decode.ts"). */
export type ImportGraph = Map<string, Map<string, number>>;

/** Every import between two files of the program (src/, test/, bench/, scripts/ of tsconfig.json). */
export function readImportGraph(): ImportGraph {
  const tsc = path.join(projectRoot, "node_modules/typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json", "--explainFiles", "--listFilesOnly", "--locale", "en"], {
    cwd: projectRoot,
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (run.status !== 0) throw new Error(`tsc --explainFiles failed (exit ${run.status}): ${run.stderr || run.stdout}`);
  const graph = importsOf(run.stdout);
  if (graph.size === 0) {
    throw new Error(`no "Imported via ... from file ..." line in the output of tsc --explainFiles: has its format changed?`);
  }
  return graph;
}

/** The imports from a file under `folder` (e.g. "src") to another file under it. */
export function importsWithin(graph: ImportGraph, folder: string): ImportGraph {
  const inside = (file: string) => file.startsWith(`${folder}/`);
  const within: ImportGraph = new Map();
  for (const [from, targets] of graph) {
    if (!inside(from)) continue;
    const kept = [...targets].filter(([to]) => inside(to));
    if (kept.length > 0) within.set(from, new Map(kept));
  }
  return within;
}

/** Parses tsc's --explainFiles text: an unindented line names a file, the indented lines under it
 * say why it is in the program. Files in node_modules/ are left out. */
function importsOf(explanation: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const ours = (file: string) => !file.startsWith("node_modules/") && !file.startsWith("../");
  let imported: string | undefined;
  for (const line of explanation.split(/\r?\n/)) {
    if (/^\S/.test(line)) {
      imported = projectPath(line.trim());
      continue;
    }
    const m = /^\s+Imported via (["'])(.*?)\1 from file '(.+?)'/.exec(line);
    if (!m || imported === undefined) continue;
    const importer = projectPath(m[3]);
    if (!ours(importer) || !ours(imported)) continue;
    let targets = graph.get(importer);
    if (!targets) graph.set(importer, (targets = new Map()));
    if (!targets.has(imported)) targets.set(imported, lineOfSpecifier(importer, m[2]));
  }
  return graph;
}

function projectPath(file: string): string {
  return path.relative(projectRoot, path.resolve(projectRoot, file)).split(path.sep).join("/");
}

const linesOfFile = new Map<string, string[]>();

/** The first line of `file` that quotes `specifier` (0 when none does, which tsc's output rules out). */
function lineOfSpecifier(file: string, specifier: string): number {
  let lines = linesOfFile.get(file);
  if (!lines) linesOfFile.set(file, (lines = readFileSync(path.join(projectRoot, file), "utf8").split("\n")));
  const i = lines.findIndex((l) => l.includes(`"${specifier}"`) || l.includes(`'${specifier}'`));
  return i + 1;
}

/** "src/a.ts:12 -> src/b.ts": an edge as a failure message names it. */
export function edgeText(graph: ImportGraph, from: string, to: string): string {
  return `${from}:${graph.get(from)?.get(to) ?? 0} -> ${to}`;
}

/**
 * One circle per strongly connected component of the graph (Tarjan 1972), each as the chain of
 * edges that closes it, e.g. ["src/a.ts:3 -> src/b.ts", "src/b.ts:7 -> src/a.ts"]. A file that
 * imports itself is a circle of one edge.
 */
export function importCircles(graph: ImportGraph): string[][] {
  return stronglyConnected(graph)
    .filter((c) => c.length > 1 || graph.get(c[0])?.has(c[0]))
    .map((c) => circleThrough(graph, new Set(c), c[0]));
}

function stronglyConnected(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    components.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return components;
}

/** The shortest chain of edges from `start` back to itself inside `component` (breadth first). */
function circleThrough(graph: ImportGraph, component: Set<string>, start: string): string[] {
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head];
    for (const w of [...(graph.get(v)?.keys() ?? [])].sort()) {
      if (!component.has(w)) continue;
      if (w === start) {
        const chain = [edgeText(graph, v, start)];
        for (let u = v; u !== start; u = cameFrom.get(u)!) chain.unshift(edgeText(graph, cameFrom.get(u)!, u));
        return chain;
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  throw new Error(`no circle through ${start} in its component`);
}
