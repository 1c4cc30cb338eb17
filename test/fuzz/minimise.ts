/**
 * Shrinks a failing input to a small one that fails the same way: delta debugging on bytes
 * (Zeller & Hildebrandt, "Simplifying and Isolating Failure-Inducing Input", 2002), in its simple
 * complement-removal form: remove chunks of decreasing size while the failure persists.
 */
export async function minimiseBytes(
  input: Uint8Array,
  stillFails: (bytes: Uint8Array) => Promise<boolean>,
  maxTrials: number,
): Promise<Uint8Array> {
  let best = input;
  let trials = 0;
  let chunk = Math.max(1, Math.floor(best.length / 2));
  while (chunk >= 1 && trials < maxTrials) {
    let removedAny = false;
    for (let start = 0; start < best.length && trials < maxTrials; ) {
      const candidate = new Uint8Array(best.length - Math.min(chunk, best.length - start));
      candidate.set(best.subarray(0, start), 0);
      candidate.set(best.subarray(start + chunk), start);
      trials++;
      if (await stillFails(candidate)) {
        best = candidate;
        removedAny = true;
      } else {
        start += chunk;
      }
    }
    if (!removedAny) chunk = Math.floor(chunk / 2);
  }
  return best;
}
