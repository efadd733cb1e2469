/**
 * Seeded pseudo-random numbers, so that calibration samples, noise seeds and test inputs are
 * reproducible across runs and machines (Math.random is neither seedable nor stable).
 */

/** A seeded generator: `next()` is uniform in [0, 1), `normal()` is standard normal. */
export interface SeededRandom {
  /** Uniform in [0, 1). */
  next(): number;
  /** Standard normal N(0, 1) (Box–Muller). */
  normal(): number;
  /** Fills a new Float32Array of `n` standard normal values. */
  normalArray(n: number): Float32Array;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/**
 * Creates a mulberry32 generator from a 32-bit seed. The sequence depends only on the seed.
 * @param seed any integer; it is reduced to 32 bits.
 */
export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  let spare: number | null = null;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    // 1 - next() keeps the logarithm's argument in (0, 1].
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  return {
    next,
    normal,
    normalArray(n: number): Float32Array {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = normal();
      return out;
    },
    int(n: number): number {
      return Math.floor(next() * n);
    },
  };
}
