/**
 * A source, resolved once: a stats `.npz` (ours or pytorch-fid's) becomes a Gaussian; a folder,
 * list file or zip becomes features (through the extractor) and the Gaussian fitted to them.
 * Every command works on what this returns, never on the kind of source.
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { DiffevalError } from "../errors.js";
import type { Extractor } from "../features/extractor.js";
import { fitGaussian } from "../stats/gaussian.js";
import type { FeatureMatrix, Gaussian } from "../types.js";
import { readStatsNpz } from "./npz.js";
import type { ImageSource } from "./sources.js";

/** What a stats file written by `diffeval stats` says about how it was made. */
export interface StatsMeta {
  protocol?: string;
  weights_sha256?: string;
  n?: number;
  source?: string;
  tool_version?: string;
  date?: string;
  [key: string]: unknown;
}

export interface ResolvedSource {
  spec: string;
  kind: "stats" | "images";
  gaussian: Gaussian;
  /** Present for image sources: rows in `names` order. */
  features?: FeatureMatrix;
  logits?: FeatureMatrix;
  /** sFID's spatial features, when they were extracted. */
  spatial?: FeatureMatrix;
  names?: string[];
  skipped: { name: string; message: string }[];
  /** From the stats file's `meta`, or describing the extraction for image sources. */
  meta: StatsMeta;
}

export function isStatsFile(spec: string): boolean {
  return /\.npz$/i.test(spec) && existsSync(spec) && statSync(spec).isFile();
}

export async function loadStatsFile(spec: string): Promise<ResolvedSource> {
  const buf = await readFile(spec);
  const { gaussian, meta } = readStatsNpz(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), spec);
  return { spec, kind: "stats", gaussian, skipped: [], meta: (meta ?? {}) as StatsMeta };
}

export interface ExtractSourceOptions {
  onProgress?: (done: number, total: number) => void;
}

/** Features and their Gaussian for an opened image source (see `openImageSource`). */
export async function extractSource(
  spec: string,
  source: ImageSource,
  extractor: Extractor,
  opts: ExtractSourceOptions = {},
): Promise<ResolvedSource> {
  const out = await extractor.extract(source.items, opts.onProgress);
  if (out.pool3.n < 2) {
    throw new DiffevalError(
      "E_TOO_FEW_IMAGES",
      `${spec}: ${out.pool3.n} usable image(s)${out.skipped.length ? ` (${out.skipped.length} skipped)` : ""}; a covariance needs at least 2`,
    );
  }
  return {
    spec,
    kind: "images",
    gaussian: fitGaussian(out.pool3),
    features: out.pool3,
    logits: out.logits,
    spatial: out.spatial,
    names: out.names,
    skipped: out.skipped,
    meta: { protocol: extractor.protocol, weights_sha256: extractor.model.weightsSha256, n: out.pool3.n, source: spec },
  };
}
