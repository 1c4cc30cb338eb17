/** `diffeval metrics --real A --fake B --metrics fid,kid,...`: many metrics, features extracted once. */
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { DiffevalError } from "../errors.js";
import { isPlainObject, parseJsonText } from "../io/read-json.js";
import { defaultMetrics, METRICS, parseMetricNames } from "../metrics/registry.js";
import { computeMetrics, type MetricsResult } from "../pipeline/metrics.js";
import { provenanceJson } from "../pipeline/source-pair.js";
import { addExtractionOptions, extractorOptions, nonNegativeInt, positiveInt, provenanceLine, reportSkipped, subsetOptions, type ExtractionFlags } from "./common-options.js";
import { warnFormatMix } from "./format-warning.js";
import { imageProgress } from "./image-progress.js";

interface MetricsFlags extends ExtractionFlags {
  real: string;
  fake: string;
  metrics?: string;
  bootstrap?: string;
  metricSeed: string;
  json?: boolean;
  force?: boolean;
  groups?: string;
  kidSubsets?: string;
  kidSubsetSize?: string;
  prK?: string;
  dcK?: string;
  msssimPairs?: string;
  isShuffleSeed: string;
}

export function metricsCommand(): Command {
  const cmd = new Command("metrics")
    .description("FID, KID, IS, precision/recall, density/coverage, sFID, diversity and Gaussianity over the same features")
    .requiredOption("--real <source>", "reference images, features file, stats .npz or reference name")
    .requiredOption("--fake <source>", "generated images, features file, stats .npz or reference name")
    .option(
      "--metrics <list>",
      `comma-separated: ${METRICS.filter((m) => !m.needs.some((need) => need === "prompts" || need === "negative-prompts" || need === "generation" || need === "controls")).map((m) => m.name).join(",")} ` +
        `(default ${defaultMetrics("inception").join(",")}; with --encoder clip or dinov2 ${defaultMetrics("dinov2").join(",")})`,
    )
    .option("--bootstrap <B>", "bootstrap replicates for 95% intervals of fid, kid, precision, recall")
    .option("--metric-seed <n>", "seed of KID subsets, bootstrap, MS-SSIM pairs, projections", "0")
    .option("--groups <file>", "JSON {image name: group} or TSV 'name<TAB>group': diversity per group (e.g. prompt)")
    .option("--kid-subsets <n>", "KID subsets (default 100)")
    .option("--kid-subset-size <n>", "KID subset size (default 1000)")
    .option("--pr-k <n>", "k of precision/recall (default 3)")
    .option("--dc-k <n>", "k of density/coverage (default 5)")
    .option("--msssim-pairs <n>", "MS-SSIM random pairs (default 100)")
    .option("--is-shuffle-seed <n|none>", "Inception Score: shuffle rows with numpy's RandomState(n) before the 10 splits, as torch-fidelity; none keeps the source order", "2020")
    .option("--json", "print one JSON object")
    .option("--force", "compare even when the sides disagree on encoder, protocol or weights");
  return addExtractionOptions(cmd).action(async (flags: MetricsFlags) => {
    const int = (v: string | undefined, flag: string) => (v === undefined ? undefined : positiveInt(v, flag));
    const options = extractorOptions(flags);
    const progress = imageProgress();
    const result = await computeMetrics({
      ...options,
      ...subsetOptions(flags),
      real: flags.real,
      fake: flags.fake,
      force: flags.force,
      metrics: flags.metrics === undefined ? defaultMetrics(options.encoder ?? "inception") : parseMetricNames(flags.metrics.split(",")),
      bootstrap: int(flags.bootstrap, "--bootstrap"),
      metricSeed: Number(flags.metricSeed),
      groups: flags.groups ? await readGroups(flags.groups) : undefined,
      kidSubsets: int(flags.kidSubsets, "--kid-subsets"),
      kidSubsetSize: int(flags.kidSubsetSize, "--kid-subset-size"),
      prK: int(flags.prK, "--pr-k"),
      dcK: int(flags.dcK, "--dc-k"),
      msssimPairs: int(flags.msssimPairs, "--msssim-pairs"),
      isShuffleSeed: flags.isShuffleSeed === "none" ? null : nonNegativeInt(flags.isShuffleSeed, "--is-shuffle-seed"),
      onProgress: (side, done, total) => progress.update(side, done, total),
      warn: (line) => process.stderr.write(`${line}\n`),
    });
    progress.finish();
    reportSkipped(flags.real, result.skippedImages.real);
    reportSkipped(flags.fake, result.skippedImages.fake);
    warnFormatMix(result, flags.real, flags.fake);
    process.stdout.write(flags.json ? `${JSON.stringify(jsonResult(result))}\n` : humanTable(result));
  });
}

function jsonResult(r: MetricsResult): Record<string, unknown> {
  const { metrics, skipped, skippedImages: _images, ...rest } = r;
  return { ...metrics, encoder: rest.encoder ?? "inception", ...provenanceJson(rest), ...(Object.keys(skipped).length ? { skipped } : {}) };
}

/** One aligned row per number: metric, value, ± std, 95% interval. */
export function humanTable(r: MetricsResult): string {
  const rows: string[][] = [["metric", "value", "std", "95% CI"]];
  const fmt = (v: number) => (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(3));
  for (const [key, value] of Object.entries(r.metrics)) {
    if (typeof value === "number") rows.push([key, fmt(value), "", ""]);
    else if ("mean" in value && typeof value.mean === "number") {
      const v = value as { mean: number; std: number; ci95?: [number, number] };
      rows.push([key, fmt(v.mean), fmt(v.std), v.ci95 ? `[${fmt(v.ci95[0])}, ${fmt(v.ci95[1])}]` : ""]);
    } else if (key === "gauss") {
      for (const [side, g] of Object.entries(value as Record<string, { medianKs: number; yardstick: { medianKs: number } }>)) {
        rows.push([`gauss_${side} (median KS)`, fmt(g.medianKs), "", `yardstick ${fmt(g.yardstick.medianKs)}`]);
      }
    } else if (key === "fid_infinity") {
      rows.push([key, fmt((value as { value: number }).value), "", ""]);
    } else if ("meanOverGroups" in value) {
      rows.push([key, fmt((value as { meanOverGroups: number }).meanOverGroups), "", "mean over groups"]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd());
  return `${lines.join("\n")}\n${provenanceLine(r)}`;
}

async function readGroups(file: string): Promise<Map<string, string>> {
  const text = await readFile(file, "utf8").catch(() => {
    throw new DiffevalError("E_GROUPS", `${file}: cannot read the groups file`);
  });
  if (/^\s*\{/.test(text)) {
    const json = parseJsonText(text, file, "E_GROUPS", "a JSON object {image name: group}");
    if (!isPlainObject(json)) throw new DiffevalError("E_GROUPS", `${file}: expected a JSON object {image name: group}`);
    return new Map(Object.entries(json).map(([k, v]) => [k, String(v)]));
  }
  const map = new Map<string, string>();
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (!line.trim() || line.startsWith("#")) continue;
    const tab = line.indexOf("\t");
    if (tab < 0) throw new DiffevalError("E_GROUPS", `${file}:${i + 1}: expected 'image name<TAB>group'`);
    map.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return map;
}
