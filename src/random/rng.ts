/**
 * Seeded random numbers for the metrics that sample (random projections, random image pairs,
 * reference Gaussian samples). Everything is reproducible from one integer seed, on every
 * platform, because it is plain 32-bit integer arithmetic.
 *
 * - Generator: xoshiro128** (D. Blackman and S. Vigna, "Scrambled linear pseudorandom number
 *   generators", ACM TOMS 47(4), 2021; the 32-bit member of the family, period 2^128 - 1): the
 *   state update is xor/shift/rotate, the output scrambler rotl(s1 * 5, 7) * 9.
 * - Seeding: the four state words are successive outputs of a Weyl sequence (step 0x9e3779b9,
 *   the golden-ratio constant) passed through MurmurHash3's 32-bit finaliser (fmix32), so nearby
 *   seeds give unrelated states and the state is never all zero in practice.
 * - Uniform doubles use 53 random bits (two outputs), like numpy's `random_sample`.
 * - Normals: the Box-Muller transform (Box and Muller, Ann. Math. Statist. 29, 1958), both
 *   values of each pair used.
 *
 * This is not numpy's Mersenne Twister: where a metric must reproduce a reference tool's random
 * draws (KID subsets), numpy-random.ts is the one to use.
 */

export interface Rng {
  /** A uniform 32-bit unsigned integer. */
  uint32(): number;
  /** A uniform double in [0, 1) with 53 random bits. */
  uniform(): number;
  /** A standard normal N(0, 1) value. */
  normal(): number;
}

const TWO_POW_32 = 4294967296;

/** A xoshiro128** generator seeded from `seed` (any safe integer; default 0). */
export function createRng(seed = 0): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`random seed must be a safe integer, got ${seed}`);
  return rngFromState(seedState(seed));
}

/** A generator started from four raw xoshiro128** state words (not all zero); for tests against published outputs. */
export function rngFromState(state: ArrayLike<number>): Rng {
  const s = Int32Array.from(state);
  if (s.length !== 4 || (s[0] | s[1] | s[2] | s[3]) === 0) throw new RangeError("xoshiro128** needs four state words, not all zero");
  let spare = Number.NaN; // the second Box-Muller value, used by the next normal() call

  const uint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };

  const uniform = (): number => {
    const hi = uint32() >>> 5; // 27 bits
    const lo = uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992; // (hi * 2^26 + lo) / 2^53
  };

  const normal = (): number => {
    if (!Number.isNaN(spare)) {
      const v = spare;
      spare = Number.NaN;
      return v;
    }
    const u1 = 1 - uniform(); // (0, 1]: log(u1) is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };

  return { uint32, uniform, normal };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** fmix32 of a Weyl sequence started at the seed (low and high 32-bit halves mixed in). */
function seedState(seed: number): Int32Array {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  let z = (lo ^ fmix32(hi)) >>> 0;
  const s = new Int32Array(4);
  for (let i = 0; i < 4; i++) {
    z = (z + 0x9e3779b9) >>> 0;
    s[i] = fmix32(z);
  }
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // the one state xoshiro cannot leave
  return s;
}

/** MurmurHash3's 32-bit finaliser (Austin Appleby): a bijection that avalanches every bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform integer in [0, n), n <= 2^32, without modulo bias (rejection of the short last bucket). */
export function randomInt(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`randomInt: n must be an integer in [1, 2^32], got ${n}`);
  if (n > 2 ** 26) return Math.floor(rng.uniform() * n); // 53-bit uniform: bias below 2^-26 per value
  const limit = TWO_POW_32 - (TWO_POW_32 % n);
  for (;;) {
    const x = rng.uint32();
    if (x < limit) return x % n;
  }
}

/** `out` filled with independent N(0, 1) values (returned for chaining). */
export function fillNormal<T extends Float64Array | Float32Array>(rng: Rng, out: T): T {
  for (let i = 0; i < out.length; i++) out[i] = rng.normal();
  return out;
}

/**
 * k distinct integers from [0, n), in the order drawn. Floyd's algorithm (J. Bentley, "Programming
 * Pearls: a sample of brilliance", CACM 30(9), 1987): O(k) time and memory however large n is,
 * then a Fisher-Yates shuffle so the order is random too.
 */
export function sampleWithoutReplacement(rng: Rng, n: number, k: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`sampleWithoutReplacement: bad population size ${n}`);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`sampleWithoutReplacement: cannot draw ${k} of ${n}`);
  const chosen = new Set<number>();
  const out: number[] = [];
  for (let j = n - k; j < n; j++) {
    const t = randomIndex(rng, j + 1);
    const v = chosen.has(t) ? j : t;
    chosen.add(v);
    out.push(v);
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}

/** randomInt for populations beyond 2^32 (pair indices of > 92k items), via the 53-bit uniform. */
function randomIndex(rng: Rng, n: number): number {
  return n <= TWO_POW_32 ? randomInt(rng, n) : Math.floor(rng.uniform() * n);
}

/**
 * `count` distinct unordered pairs (i, j), i < j < n, drawn uniformly without replacement from
 * the n(n-1)/2 possible ones; all of them (in random order) when count exceeds that number.
 */
export function randomPairs(rng: Rng, n: number, count: number): Array<[number, number]> {
  const total = (n * (n - 1)) / 2;
  const k = Math.min(count, total);
  return sampleWithoutReplacement(rng, total, k).map(pairFromIndex);
}

/** Pair number t in the order (0,1), (0,2), (1,2), (0,3), ...: t = j(j-1)/2 + i. */
export function pairFromIndex(t: number): [number, number] {
  let j = Math.floor((1 + Math.sqrt(1 + 8 * t)) / 2);
  // the square root can land one off for large t; step to the exact triangle
  while ((j * (j - 1)) / 2 > t) j--;
  while (((j + 1) * j) / 2 <= t) j++;
  return [t - (j * (j - 1)) / 2, j];
}
