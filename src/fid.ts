/**
 * FID between two sources (folders, list files, zips or stats files), with the bookkeeping that
 * makes the number comparable: the protocol and weights it was computed under.
 */
import { resolveSourcePair, type SourcePairOptions } from "./source-pair.js";
import { frechetDistanceDetails, frechetDistanceFromFeaturesDetails } from "./stats/frechet.js";
import { VERSION } from "./version.js";

export type FidOptions = SourcePairOptions;

export interface FidResult {
  fid: number;
  protocol: string;
  weights_sha256: string;
  n_real: number;
  n_fake: number;
  real: string;
  fake: string;
  seconds: number;
  version: string;
  /** How the trace term was computed: from the covariances, or the n x n Gram form (n < d). */
  route: "covariance" | "gram";
  skipped: { real: number; fake: number };
  device?: string;
}

export async function computeFid(opts: FidOptions): Promise<FidResult> {
  const t0 = performance.now();
  const pair = await resolveSourcePair(opts);
  const { real, fake } = pair;
  // With per-image features on both sides the Gram form is available (and used when n < d).
  const details =
    real.features && fake.features
      ? frechetDistanceFromFeaturesDetails(real.features, fake.features)
      : frechetDistanceDetails(real.gaussian, fake.gaussian);
  return {
    fid: details.value,
    protocol: pair.protocol,
    weights_sha256: pair.weightsSha256,
    n_real: real.gaussian.n,
    n_fake: fake.gaussian.n,
    real: opts.real,
    fake: opts.fake,
    seconds: (performance.now() - t0) / 1000,
    version: VERSION,
    route: details.route,
    skipped: { real: real.skipped.length, fake: fake.skipped.length },
    device: pair.device,
  };
}
