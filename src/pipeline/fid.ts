/**
 * FID between two sources (folders, list files, zips or stats files), with the bookkeeping that
 * makes the number comparable: the encoder, protocol and weights it was computed under. With an
 * encoder other than inception the same Frechet distance is FD in that encoder's space.
 */
import { provenance, resolveSourcePair, type Provenance, type SourcePairOptions } from "./source-pair.js";
import { frechetDistanceOfSides } from "../stats/frechet.js";
import type { SkippedImage } from "../features/extract.js";

export type FidOptions = SourcePairOptions;

export interface FidResult extends Provenance {
  fid: number;
  /** How the trace term was computed: from the covariances, or the n x n Gram form (n < d). */
  route: "covariance" | "gram";
  /** Undecodable images left out with `skipBad`, per side. */
  skipped: { real: SkippedImage[]; fake: SkippedImage[] };
}

export async function computeFid(opts: FidOptions): Promise<FidResult> {
  const t0 = performance.now();
  const pair = await resolveSourcePair(opts);
  const { real, fake } = pair;
  // With per-image features on both sides the Gram form is available (and used when n < d);
  // otherwise each side's Gaussian, fitted once when the side was resolved.
  const details = frechetDistanceOfSides(real, fake);
  return {
    fid: details.value,
    route: details.route,
    skipped: { real: real.skipped, fake: fake.skipped },
    ...provenance(pair, t0),
  };
}
