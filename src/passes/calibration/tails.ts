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

/**
 * {@link tailPercentiles} of `x` (of |x| when `abs`), the same numbers, without copying or
 * partitioning all the values: a strided sample gives a threshold a little inside the tail,
 * one pass gathers the values beyond it, and only those are sorted. When the pass cannot
 * prove its tail is the exact one (too few or too many values gathered, a NaN, a zero in the
 * tail whose sign the quickselect could have picked differently) it falls back to the
 * quickselect.
 */
export function tailPercentilesOf(x: Float32Array, ps: readonly number[], abs: boolean): number[] {
  const n = x.length;
  const fallback = () => tailPercentiles(abs ? absolute(x) : x, ps);
  if (n < 1 << 12) return fallback();
  const { upper, positions, from, to } = tailSpan(n, ps);
  const need = to - from;
  // Sample rank of the threshold: twice the tail's share plus a margin, so the gathered
  // values hold the whole tail unless the sample is very unrepresentative (then: fallback).
  // A small sample: sorting it is most of the cost for tensors of ~10⁵ values.
  // Positions from a fixed xorshift: a regular stride would see only the channels it lands
  // on (the values are rows of channels with very different ranges).
  const m = Math.min(4096, Math.max(1024, n >> 6));
  const sample = new Float32Array(m);
  let h = 0x9e3779b9;
  for (let j = 0; j < m; j++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    const v = x[(h >>> 0) % n]!;
    sample[j] = abs ? Math.abs(v) : v;
  }
  sample.sort();
  const r = Math.min(m - 1, Math.ceil((2 * need * m) / n) + 16);
  const threshold = upper ? sample[m - 1 - r]! : sample[r]!;
  if (threshold !== threshold) return fallback();
  // Values beyond the threshold are gathered; values equal to it only counted (a tie of many
  // copies of one value, e.g. an indicator channel's 1s, would overflow the buffer).
  const cap = 4 * need + 4096;
  const buf = new Float32Array(cap);
  let count = 0;
  let ties = 0;
  for (let i = 0; i < n; i++) {
    const v = abs ? Math.abs(x[i]!) : x[i]!;
    if (upper ? v > threshold : v < threshold) {
      if (count === cap) return fallback();
      buf[count++] = v;
    } else if (v === threshold) ties++;
    else if (v !== v) return fallback();
  }
  if (count + ties < need) return fallback();
  const got = buf.subarray(0, count).sort();
  let tail: Float32Array;
  if (count >= need) tail = upper ? got.subarray(count - need) : got.subarray(0, need);
  else {
    // The copies of the threshold fill the rest of the tail, on its inner side.
    tail = new Float32Array(need).fill(threshold);
    tail.set(got, upper ? need - count : 0);
  }
  // Equal values are the same bits except 0 and -0 (the quickselect's order among ties is its own).
  for (let i = 0; i < need; i++) if (tail[i] === 0) return fallback();
  return interpolate(tail, from, n, positions);
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
