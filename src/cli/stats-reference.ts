/** `diffeval stats list` and `diffeval stats fetch NAME`: the published reference statistics. */
import { existsSync } from "node:fs";
import { Command } from "commander";
import { describeFetched, fetchReference, referenceCachePath } from "../reference/fetch.js";
import { getReference, loadManifest, type ReferenceEntry } from "../reference/manifest.js";
import { createProgress } from "./progress.js";

export function statsListCommand(): Command {
  return new Command("list")
    .description("list the reference statistics diffeval knows by name (use a name as 'fid --real NAME')")
    .option("--json", "print the manifest entries as JSON, with their cache paths")
    .action((flags: { json?: boolean }) => {
      const manifest = loadManifest();
      if (flags.json) {
        const entries = manifest.entries.map((e) => ({ ...e, cache_path: referenceCachePath(e), cached: existsSync(referenceCachePath(e)) }));
        process.stdout.write(`${JSON.stringify({ manifest: manifest.file, entries }, null, 2)}\n`);
        return;
      }
      process.stdout.write(listTable(manifest.entries));
      process.stdout.write(`\n${manifest.entries.length} entries from ${manifest.file}; * = cached; "unverified": no published sha256\n`);
    });
}

export function statsFetchCommand(): Command {
  return new Command("fetch")
    .description("download reference statistics into the cache (sha256-verified when the manifest has a hash)")
    .argument("<names...>", "manifest names or aliases (see 'stats list')")
    .action(async (names: string[]) => {
      const manifest = loadManifest();
      const entries = names.map((name) => getReference(manifest, name)); // all names checked before any download
      for (const entry of entries) {
        const bar = createProgress({ label: entry.name, unit: "B" });
        const fetched = await fetchReference(entry, { onProgress: (received, total) => bar.update(received, total) });
        bar.finish();
        process.stdout.write(`${describeFetched(fetched)}\n`);
      }
    });
}

function listTable(entries: readonly ReferenceEntry[]): string {
  const header = ["name", "dataset", "split", "res", "protocol", "n", "publisher", "sha256"];
  const rows = entries.map((e) => [
    `${existsSync(referenceCachePath(e)) ? "*" : " "}${e.name}${e.aliases.length ? ` (${e.aliases.join(", ")})` : ""}`,
    e.dataset,
    e.split,
    e.resolution === null ? "?" : String(e.resolution),
    e.protocol,
    e.n === null ? "?" : String(e.n),
    e.publisher,
    e.sha256 === null ? "unverified" : e.sha256.slice(0, 12),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `${cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()}\n`;
  return [line(header.map((h, i) => (i === 0 ? ` ${h}` : h))), ...rows.map(line)].join("");
}
