/** The one-line warning of `fid` and `metrics` when the two sets are stored differently (robustness/format-census.ts). */
import { formatMixWarning } from "../robustness/format-census.js";
import type { Provenance } from "../pipeline/source-pair.js";

export function warnFormatMix(result: Pick<Provenance, "census">, real: string, fake: string): void {
  const line = formatMixWarning(result.census, real, fake);
  if (line) process.stderr.write(`${line}\n`);
}
