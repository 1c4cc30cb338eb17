/**
 * Child of bench/arrays.ts: opens the array file given as argument as an image source and reads
 * every row (32 reads in flight, as the extractor reads ahead), then prints its own peak RSS as
 * JSON. With no argument it opens nothing: the baseline.
 */
import { readFileSync } from "node:fs";
import { openImageSource } from "../src/io/sources.js";

const WINDOW = 32;

async function main(): Promise<void> {
  const file = process.argv[2];
  const t0 = performance.now();
  let rows = 0;
  if (file) {
    const source = await openImageSource(file);
    const { items } = source;
    for (let i = 0; i < items.length; i += WINDOW) {
      const bytes = await Promise.all(items.slice(i, i + WINDOW).map((it) => it.read()));
      rows += bytes.length;
    }
    await source.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const peak = peakRssKb() / 1024;
  process.stdout.write(JSON.stringify({ rows, seconds, peak_rss_mb: Number(peak.toFixed(1)) }));
}

/**
 * This process's own peak RSS: Linux's VmHWM (the high-water mark of the address space exec made).
 * Not getrusage's ru_maxrss, which Linux carries across exec from the parent's forked copy, so a
 * child of a parent that just built a 100 MB array would report the parent's peak.
 */
function peakRssKb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]);
  } catch {
    // not Linux: fall back to getrusage
  }
  return process.resourceUsage().maxRSS;
}

void main();
