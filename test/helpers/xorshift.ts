/**
 * Marsaglia's xorshift32 (13, 17, 5), the tests' and benchmarks' tiny seeded generator: `next()`
 * returns the next 32-bit state as an unsigned integer. A zero seed is replaced by 1.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
