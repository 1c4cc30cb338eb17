/** The seeded subset draw of `--limit N --seed S` (and the COCO-30k caption pick). */

/**
 * mulberry32 (Tommy Ettinger's 32-bit PRNG, public domain): small, fast and fully specified,
 * so a subset drawn with a seed is the same on every machine and in every version.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Indices of a uniform random `k`-subset of 0..n-1 (partial Fisher-Yates), ascending. */
export function seededSubsetIndices(n: number, k: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}
