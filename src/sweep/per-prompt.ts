/**
 * A cell's metrics prompt by prompt (issue 19: averages over prompts hide the prompts that fail):
 * for each prompt with images in the cell, its image count and files, the precision of its
 * images against the reference (the mean of prdc's per-image "inside the real manifold"
 * indicator over the prompt's rows, so the counts weighted by n give back the cell's precision),
 * the per-prompt diversity the cell's metrics already computed with the prompt as group
 * (`mean_pairwise_distance_by_group`, `vendi_by_group`), and, with CLIP, the CLIP score of the
 * prompt's images against it (torchmetrics' definition over those pairs, as `diffeval clipscore`).
 */
import path from "node:path";
import { clipScore } from "../metrics/clip-score.js";
import { selectRows, type GroupedMetric } from "../metrics/diversity.js";
import type { PromptResult } from "../report/sweep-results.js";
import type { FeatureMatrix } from "../types.js";
import type { ManifestDone } from "./manifest.js";

/** The per-group diversity keys of the registry, and the per-prompt field each fills. */
const DIVERSITY_BY_GROUP = [
  ["mean_pairwise_distance_by_group", "mean_pairwise_distance"],
  ["vendi_by_group", "vendi"],
] as const;

/**
 * The cell's prompts in prompt order. `inside` (one flag per entry, in entry order) gives the
 * precision; `metrics` the cell's metrics, whose `*_by_group` values are keyed by prompt index.
 */
export function promptBreakdown(
  entries: readonly ManifestDone[],
  outputDir: string,
  opts: { inside?: Uint8Array; metrics: Record<string, unknown> },
): PromptResult[] {
  const rows = new Map<number, { entry: ManifestDone; row: number }[]>();
  entries.forEach((entry, row) => {
    const list = rows.get(entry.prompt_index) ?? [];
    list.push({ entry, row });
    rows.set(entry.prompt_index, list);
  });
  return [...rows.keys()].sort((a, b) => a - b).map((index) => {
    const members = rows.get(index)!;
    const out: PromptResult = {
      prompt_index: index,
      prompt: members[0].entry.prompt,
      n: members.length,
      files: members.map(({ entry }) => path.join(outputDir, entry.file)),
    };
    if (opts.inside) out.precision = members.reduce((sum, { row }) => sum + opts.inside![row], 0) / members.length;
    for (const [key, field] of DIVERSITY_BY_GROUP) {
      const value = (opts.metrics[key] as GroupedMetric | undefined)?.perGroup?.[String(index)];
      if (typeof value === "number") out[field] = value;
    }
    return out;
  });
}

/**
 * Adds each prompt's CLIP score: `images` and `texts` hold one row per entry (in entry order),
 * the image's embedding and its own prompt's.
 */
export function withPromptClipScores(perPrompt: readonly PromptResult[], entries: readonly ManifestDone[], images: FeatureMatrix, texts: FeatureMatrix): PromptResult[] {
  return perPrompt.map((p) => {
    const rows = entries.flatMap((e, i) => (e.prompt_index === p.prompt_index ? [i] : []));
    return { ...p, clip_score: clipScore(selectRows(images, rows), selectRows(texts, rows)).score };
  });
}
