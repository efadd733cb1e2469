/**
 * Tail percentiles of the activation candidates (numpy's linear interpolation, as
 * `percentileSorted`): the candidates only read the top (or bottom) 0.1% of the values, so
 * only that tail is isolated and sorted.
 */

/**
 * Percentiles of values that all lie in one tail (all ≥ 0.5 or all ≤ 0.5): a quickselect
 * isolates the tail and only the tail is sorted, O(n) instead of a full sort. The definition
 * {@link tailPercentilesOf} matches.
 */
export function tailPercentiles(values: Float32Array, ps: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) return ps.map(() => NaN);
  const { upper, positions, from, to } = tailSpan(n, ps);
  const a = Float32Array.from(values);
  if (upper) select(a, from);
  else select(a, to - 1);
  return interpolate(a.subarray(from, to), from, n, positions);
}

/** The candidates' percentile ends: `upper` at each p (of |x| when symmetric), `lower` at each 1 − p (asymmetric). */
export interface TailPercentiles {
  upper: number[];
  lower?: number[];
}

/**
 * {@link tailPercentiles} of `x` at `ps` (of |x| when `sym`) and, when not `sym`, at 1 − p:
 * the same numbers, without copying or partitioning all the values. A random sample gives a
 * threshold a little inside each tail; one pass gathers the values beyond them (most values
 * fail two comparisons and cost nothing more), and only those are sorted. A side whose pass
 * cannot prove its tail is the exact one (too few or too many values gathered, a NaN, a zero
 * in the tail whose sign the quickselect could have picked differently) falls back to the
 * quickselect.
 */
export function tailPercentilesOf(x: Float32Array, ps: readonly number[], sym: boolean): TailPercentiles {
  const n = x.length;
  const lowerPs = ps.map((p) => 1 - p);
  const slowUpper = () => tailPercentiles(sym ? absolute(x) : x, ps);
  const slowLower = () => tailPercentiles(x, lowerPs);
  const slow = (): TailPercentiles => (sym ? { upper: slowUpper() } : { upper: slowUpper(), lower: slowLower() });
  if (n < 1 << 12) return slow();
  const up = tailSpan(n, ps);
  const lo = tailSpan(n, lowerPs);
  const sample = sampleSorted(x, sym);
  const m = sample.length;
  // Sample rank of a threshold: twice the tail's share plus a margin, so the gathered values
  // hold the whole tail unless the sample is very unrepresentative (then: fallback).
  const rank = (need: number) => Math.min(m - 1, Math.ceil((2 * need * m) / n) + 16);
  const tU = sample[m - 1 - rank(up.to - up.from)]!;
  const tL = sym ? -tU : sample[rank(lo.to - lo.from)]!;
  if (tU !== tU || tL !== tL) return slow();
  const gU = new Gathered(up.to - up.from);
  const gL = new Gathered(lo.to - lo.from);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v < tU && v > tL) continue;
    if (v !== v) return slow();
    if (sym) {
      const a = Math.abs(v);
      if (a > tU) gU.push(a);
      else if (a === tU) gU.ties++;
    } else {
      if (v > tU) gU.push(v);
      else if (v === tU) gU.ties++;
      if (v < tL) gL.push(v);
      else if (v === tL) gL.ties++;
    }
  }
  const upper = gU.tail(tU, true);
  const out: TailPercentiles = { upper: upper ? interpolate(upper, up.from, n, up.positions) : slowUpper() };
  if (!sym) {
    const lower = gL.tail(tL, false);
    out.lower = lower ? interpolate(lower, lo.from, n, lo.positions) : slowLower();
  }
  return out;
}

/** A sorted sample of x (of |x| when `abs`): positions from a fixed xorshift, since a regular stride would see only the channels it lands on. */
function sampleSorted(x: Float32Array, abs: boolean): Float32Array {
  // Small: sorting it is most of the cost for tensors of ~10⁵ values.
  const m = Math.min(4096, Math.max(1024, x.length >> 6));
  const sample = new Float32Array(m);
  let h = 0x9e3779b9;
  for (let j = 0; j < m; j++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    const v = x[(h >>> 0) % x.length]!;
    sample[j] = abs ? Math.abs(v) : v;
  }
  return sample.sort();
}

/**
 * The values beyond one tail's threshold, gathered; values equal to it only counted (a tie
 * of many copies of one value, e.g. an indicator channel's 1s, would overflow the buffer).
 */
class Gathered {
  ties = 0;
  count = 0;
  overflow = false;
  private readonly buf: Float32Array;
  constructor(private readonly need: number) {
    this.buf = new Float32Array(4 * need + 4096);
  }

  push(v: number): void {
    if (this.count === this.buf.length) this.overflow = true;
    else this.buf[this.count++] = v;
  }

  /** The tail's `need` values, sorted, or undefined when they are not provably the quickselect's. */
  tail(threshold: number, upper: boolean): Float32Array | undefined {
    const { need, count } = this;
    if (this.overflow || count + this.ties < need) return undefined;
    const got = this.buf.subarray(0, count).sort();
    let tail: Float32Array;
    if (count >= need) tail = upper ? got.subarray(count - need) : got.subarray(0, need);
    else {
      // The copies of the threshold fill the rest of the tail, on its inner side.
      tail = new Float32Array(need).fill(threshold);
      tail.set(got, upper ? need - count : 0);
    }
    // Equal values are the same bits except 0 and -0 (the quickselect's order among ties is its own).
    for (let i = 0; i < need; i++) if (tail[i] === 0) return undefined;
    return tail;
  }
}

/** Which tail the percentiles read: ranks [from, to) of the sorted values. */
function tailSpan(n: number, ps: readonly number[]) {
  const upper = ps.every((p) => p >= 0.5);
  if (!upper && !ps.every((p) => p <= 0.5)) throw new RangeError('tailPercentiles: percentiles must all lie on one side of the median');
  const positions = ps.map((p) => p * (n - 1));
  const from = upper ? Math.max(0, Math.floor(Math.min(...positions))) : 0;
  const to = upper ? n : Math.min(n, Math.floor(Math.max(...positions)) + 2);
  return { upper, positions, from, to };
}

/** The interpolated percentiles from the sorted ranks [from, from + tail.length). */
function interpolate(tail: Float32Array, from: number, n: number, positions: number[]): number[] {
  tail.sort();
  return positions.map((pos) => {
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, n - 1);
    const frac = pos - lo;
    const vlo = tail[lo - from]!;
    return frac === 0 ? vlo : vlo + frac * (tail[hi - from]! - vlo);
  });
}

function absolute(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]!);
  return out;
}

/** Rearranges `a` so that a[k] is the k-th smallest, smaller values before it and larger after (Hoare quickselect). */
function select(a: Float32Array, k: number): void {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}
