/**
 * Robust statistics used by outlier detection (S2) and percentile clipping.
 *
 * Everything accumulates and returns float64: norms of long rows and medians of norms feed
 * thresholds, and float32 accumulation would make the outlier set depend on summation order.
 */

/**
 * L2 norm of every input channel (row k) of a row-major `[K, N]` weight: `‖W[k, :]‖₂`.
 * @param w row-major weight of length `K·N`
 * @returns K norms, accumulated in float64
 */
export function channelNorms(w: ArrayLike<number>, K: number, N: number): Float64Array {
  if (w.length !== K * N) throw new RangeError(`channelNorms: length ${w.length} is not K·N = ${K}·${N}`);
  const out = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let acc = 0;
    const base = k * N;
    for (let n = 0; n < N; n++) {
      const v = w[base + n];
      acc += v * v;
    }
    out[k] = Math.sqrt(acc);
  }
  return out;
}

/** Sorted float64 copy; the input is never reordered. */
function sortedCopy(values: ArrayLike<number>): Float64Array {
  const copy = Float64Array.from(values);
  copy.sort();
  return copy;
}

/**
 * Median of a copy of `values`; for an even length, the mean of the two middle values.
 * @returns NaN for an empty input
 */
export function median(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return NaN;
  const s = sortedCopy(values);
  const mid = n >> 1;
  return n % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Median absolute deviation `median(|x − center|)` (unscaled: no 1.4826 factor, because the
 * modified z-score of S2 applies its own 0.6745).
 * @param center defaults to `median(values)`
 * @returns NaN for an empty input
 */
export function mad(values: ArrayLike<number>, center: number = median(values)): number {
  const dev = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) dev[i] = Math.abs(values[i] - center);
  return median(dev);
}

/**
 * Percentile `p ∈ [0, 1]` of an ascending array, interpolating linearly between the two
 * nearest ranks at position `p·(n − 1)` (numpy's default "linear" method, what
 * `torch.quantile` does too). Use this when several percentiles share one sort.
 * @param sorted ascending values (not checked)
 * @returns NaN for an empty input
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`percentile: p must be in [0, 1], got ${p}`);
  const pos = p * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const frac = pos - lo;
  return frac === 0 ? sorted[lo] : sorted[lo] + frac * (sorted[hi] - sorted[lo]);
}

/**
 * Percentile `p ∈ [0, 1]` of a copy of `values` (see {@link percentileSorted} for the method).
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(sortedCopy(values), p);
}
