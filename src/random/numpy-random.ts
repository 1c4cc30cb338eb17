/**
 * numpy's legacy `np.random.RandomState(seed)`, as far as the reference tools use it: to pick
 * samples (`permutation(n)`, `choice(n, size, replace=False)`) and to draw Gaussian noise
 * (`randn(...)`).
 *
 * Why: torch-fidelity shuffles the Inception-Score logits with `RandomState(2020).permutation(N)`
 * (metric_isc.py) and draws KID subsets with `RandomState(2020).choice(n, m, replace=False)`
 * (metric_kid.py); clean-fid draws its KID subsets from the global `np.random` state. Reproducing
 * the exact index stream makes those numbers reproducible here.
 *
 * The generator is MT19937 (Matsumoto & Nishimura 1998). The legacy integer seed fills the state
 * with Knuth's multiplier recurrence (the reference `init_genrand`; numpy's `mt19937_seed`), and
 * the legacy shuffle walks i = n-1 .. 1 swapping x[i] with x[j], j uniform in [0, i] drawn by
 * masked rejection (numpy's `random_interval`: the smallest all-ones mask >= i, then 32-bit draws
 * ANDed with it until one is <= i). The state is kept as plain numbers; the stream is the same as
 * numpy's for every seed in [0, 2^32).
 *
 * diffusers' `OnnxStableDiffusionPipeline` draws its initial latents with `generator.randn(...)`:
 * the legacy Gaussian is Marsaglia's polar method on 53-bit doubles (two 32-bit draws each,
 * `(a >> 5) * 2^26 + (b >> 6)` over 2^53), with pairs rejected until 0 < r^2 < 1; each accepted
 * pair gives f * x2 first and caches f * x1 for the next call.
 */
import { DiffevalError } from "../errors.js";

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class NumpyRandomState {
  private readonly mt = new Uint32Array(N);
  private index = N;
  /** The second value of the last polar pair, handed out by the next `gauss()` call. */
  private cachedGauss: number | undefined;

  /** `np.random.RandomState(seed)` for an integer seed in [0, 2^32). */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new DiffevalError("E_USAGE", `random seed ${seed} is not an integer in [0, 2^32): numpy's RandomState accepts only those`);
    }
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      // 1812433253 * prev + i mod 2^32 (Math.imul keeps the low 32 bits exactly).
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** The next 32-bit output (genrand_int32). */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Uniform double in [0, 1) with 53 random bits (numpy's `random_sample`). */
  nextDouble(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** One standard normal value, as numpy's legacy `standard_normal` draws it (polar method). */
  gauss(): number {
    if (this.cachedGauss !== undefined) {
      const g = this.cachedGauss;
      this.cachedGauss = undefined;
      return g;
    }
    for (;;) {
      const x1 = 2 * this.nextDouble() - 1;
      const x2 = 2 * this.nextDouble() - 1;
      const r2 = x1 * x1 + x2 * x2;
      if (r2 >= 1 || r2 === 0) continue;
      const f = Math.sqrt((-2 * Math.log(r2)) / r2);
      this.cachedGauss = f * x1;
      return f * x2;
    }
  }

  /** `RandomState.randn(count)`: `count` standard normal values in C order, as float64. */
  randn(count: number): Float64Array {
    if (!Number.isInteger(count) || count < 0) throw new DiffevalError("E_USAGE", `randn size ${count} is not a usable array length`);
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = this.gauss();
    return out;
  }

  /** Uniform integer in [0, max], max < 2^32, by masked rejection (numpy's `random_interval`). */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const v = (this.nextUint32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }

  /** `RandomState.permutation(n)`: arange(n) shuffled in place by the legacy Fisher-Yates walk. */
  permutation(n: number): Int32Array {
    if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new DiffevalError("E_USAGE", `permutation size ${n} is not a usable array length`);
    const x = new Int32Array(n);
    for (let i = 0; i < n; i++) x[i] = i;
    for (let i = n - 1; i >= 1; i--) {
      const j = this.interval(i);
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
    return x;
  }

  /** `RandomState.choice(n, size, replace=False)`: numpy takes the first `size` of a permutation. */
  choiceWithoutReplacement(n: number, size: number): Int32Array {
    if (size > n) throw new DiffevalError("E_USAGE", `cannot draw ${size} of ${n} items without replacement`);
    return this.permutation(n).subarray(0, size);
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i] & UPPER_MASK) | (mt[(i + 1) % N] & LOWER_MASK);
      mt[i] = mt[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }
}
