/**
 * The sequence every extracting command runs: open the image sources (first, so that a typo in a
 * path fails before the model loads), check what can be checked before the slow part, open one
 * extractor for all of them, extract, and close the extractor and the sources whatever happens.
 */
import { openExtractor, type Extractor, type ExtractorOptions } from "../features/extractor.js";
import { imageSourceOptions, type ImageSource, type ImageSourceOptions } from "../io/sources.js";
import { extractSource, openImageSide, type ResolvedSource } from "./resolve-source.js";

export interface WithExtractionOptions extends ExtractorOptions, ImageSourceOptions {
  /** Runs once the sources are open and before the model loads (refuse a mismatch early). */
  beforeModel?: () => void;
}

/**
 * Opens the image sources named in `specs` (undefined entries stay undefined: sides that are not
 * images), then one extractor, and hands both to `use`.
 */
export async function withExtraction<T>(
  specs: readonly (string | undefined)[],
  opts: WithExtractionOptions,
  use: (sources: (ImageSource | undefined)[], extractor: Extractor) => Promise<T>,
): Promise<T> {
  const sources: (ImageSource | undefined)[] = [];
  let extractor: Extractor | undefined;
  try {
    for (const spec of specs) sources.push(spec === undefined ? undefined : await openImageSide(spec, imageSourceOptions(opts)));
    opts.beforeModel?.();
    extractor = await openExtractor(opts);
    return await use(sources, extractor);
  } finally {
    await extractor?.close();
    for (const source of sources) await source?.close();
  }
}

/** One image source's features and Gaussian (`diffeval stats`); its meta says how they were made. */
export async function extractImageSource(
  spec: string,
  opts: WithExtractionOptions & { onProgress?: (done: number, total: number) => void },
): Promise<ResolvedSource> {
  return withExtraction([spec], opts, ([source], extractor) => extractSource(spec, source!, extractor, { onProgress: opts.onProgress }));
}
