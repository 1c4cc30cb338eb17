/**
 * `diffeval metrics`: many metrics over the same two sources. Features (and sFID's spatial
 * features when asked for) are extracted once per source and shared by every metric; what each
 * metric is, needs and computes lives in its registry entry (metrics/registry.ts), and a metric
 * whose needs a side cannot meet is skipped with the reason.
 */
import { decodeImage } from "../io/decode.js";
import { imageSourceOptions, openImageSource, type ImageItem, type ImageSource } from "../io/sources.js";
import { computeMetricValues, type MetricContext, type MetricSettings as RegistrySettings, type MetricSide, type MetricValue } from "../metrics/registry.js";
import { readOnnxInitializer } from "../models/onnx-metadata.js";
import type { ResolvedSource } from "./resolve-source.js";
import type { SkippedImage } from "../features/extract.js";
import { provenance, resolveSourcePair, type Provenance, type SourcePair, type SourcePairOptions } from "./source-pair.js";

export type { MetricValue };

export interface MetricsOptions extends SourcePairOptions, RegistrySettings {
  /** Registry names (metrics/registry.ts), checked by parseMetricNames. */
  metrics: string[];
  warn?: (line: string) => void;
}

export interface MetricsResult extends Provenance {
  metrics: Record<string, MetricValue>;
  /** Metrics that could not be computed, and why. */
  skipped: Record<string, string>;
  /** Undecodable images left out with `skipBad`, per side. */
  skippedImages: { real: SkippedImage[]; fake: SkippedImage[] };
}

export async function computeMetrics(opts: MetricsOptions): Promise<MetricsResult> {
  const t0 = performance.now();
  const inception = (opts.encoder ?? "inception") === "inception";
  const pair = await resolveSourcePair({ ...opts, spatial: inception && (opts.metrics.includes("sfid") || opts.spatial) });
  const { metrics, skipped } = await metricsOfPair(pair, opts);
  return { metrics, skipped, skippedImages: { real: pair.real.skipped, fake: pair.fake.skipped }, ...provenance(pair, t0) };
}

/** The settings of the metrics themselves, apart from how the two sides were resolved. */
export type MetricSettings = RegistrySettings &
  Pick<MetricsOptions, "metrics" | "warn" | "limit" | "seed" | "arrayKey" | "arrayRange"> & {
    /** The model's fc.weight (the Inception Score's logits), when the caller has already read it. */
    fcWeight?: Float32Array;
  };

/**
 * The metrics of two already-resolved sides. Split from computeMetrics so that a sweep can
 * extract its reference once and compare every cell with it.
 */
export async function metricsOfPair(
  pair: Pick<SourcePair, "real" | "fake" | "onnxPath"> & Partial<Pick<SourcePair, "encoder">>,
  opts: MetricSettings,
): Promise<Pick<MetricsResult, "metrics" | "skipped">> {
  const fakeImages = lazyImages(pair.fake, opts);
  try {
    const ctx: MetricContext = {
      real: pair.real,
      fake: fakeImages ? { ...pair.fake, images: fakeImages } : pair.fake,
      encoder: pair.encoder ?? "inception",
      settings: opts,
      // No model when both sides were precomputed (features or stats files): the registry then skips IS.
      ...(opts.fcWeight || pair.onnxPath ? { fcWeight: async () => opts.fcWeight ?? (await readOnnxInitializer(pair.onnxPath!, "fc.weight")).data } : {}),
    };
    const { metrics, skipped } = await computeMetricValues(opts.metrics, ctx);
    for (const [metric, why] of Object.entries(skipped)) opts.warn?.(`warning: ${metric} skipped: ${why}`);
    return { metrics, skipped };
  } finally {
    await fakeImages?.close();
  }
}

/**
 * An image side's images in feature-row order, decoded on demand: the source is opened again only
 * when a metric reads an image (MS-SSIM reads the pairs it draws), and closed by `close`.
 */
function lazyImages(side: ResolvedSource, opts: Pick<MetricSettings, "limit" | "seed" | "arrayKey" | "arrayRange">): (NonNullable<MetricSide["images"]> & { close(): Promise<void> }) | undefined {
  if (side.kind !== "images" || !side.names) return undefined;
  const names = side.names;
  let source: Promise<ImageSource> | undefined;
  let byName: Map<string, ImageItem> | undefined;
  return {
    count: names.length,
    async read(i) {
      source ??= openImageSource(side.spec, imageSourceOptions(opts));
      byName ??= new Map((await source).items.map((it) => [it.name, it]));
      const item = byName.get(names[i])!;
      return decodeImage(await item.read(), item.location);
    },
    async close() {
      if (source) await (await source).close();
    },
  };
}
