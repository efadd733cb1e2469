/**
 * Outlier input-channel detection of METHOD.md S2, steps 1–4, on precomputed channel norms
 * (see `channelNorms` in `./statistics.ts` for step 1).
 */
import { mad as madOf, median as medianOf } from './statistics.ts';

/** Options of {@link detectOutliers}; defaults are the paper's. */
export interface OutlierOptions {
  /** Modified z-score threshold τ (default 3.5). */
  tau?: number;
  /** Guard γ: an outlier's norm must also exceed γ·median (default 1.2). */
  gamma?: number;
  /** Round the outlier count up to a multiple of this (default 32; 1 disables). */
  align?: number;
}

/** Result of {@link detectOutliers}. */
export interface OutlierResult {
  /** Outlier channel indices, ascending. */
  indices: Int32Array;
  /** The remaining (normal) channel indices, ascending. */
  normal: Int32Array;
  /** Effective threshold `max(m + τ·MAD/0.6745, γ·m)` (reported even when MAD < 1e-8). */
  threshold: number;
  /** Median of the norms. */
  median: number;
  /** Median absolute deviation of the norms. */
  mad: number;
  /** Channels passing both tests, before alignment and capping. */
  rawCount: number;
}

/** Below this MAD the layer is treated as flat: the z-score would only amplify noise. */
const MAD_EPSILON = 1e-8;
/** Φ⁻¹(0.75): makes the MAD a consistent estimate of σ for normal data (Iglewicz–Hoaglin). */
const Z_SCALE = 0.6745;

/**
 * Flags outlier input channels from their norms:
 * 1. `m = median(n)`, `MAD = median(|n − m|)`, `z_k = 0.6745·(n_k − m)/MAD`;
 * 2. channel k is a raw outlier iff `z_k > τ` and `n_k > γ·m`; none if `MAD < 1e-8`;
 * 3. the count is rounded up to a multiple of `align` and capped at `floor(K/2)`;
 * 4. the outliers are the top-count channels by norm, ties going to the lower index, so the
 *    padding channels added by the rounding are the next-largest ones.
 * @param norms one norm per input channel (K values)
 */
export function detectOutliers(norms: ArrayLike<number>, options: OutlierOptions = {}): OutlierResult {
  const { tau = 3.5, gamma = 1.2, align = 32 } = options;
  if (!Number.isInteger(align) || align < 1) throw new RangeError(`detectOutliers: align must be an integer ≥ 1, got ${align}`);
  const K = norms.length;
  const m = medianOf(norms);
  const d = madOf(norms, m);
  const threshold = Math.max(m + (tau * d) / Z_SCALE, gamma * m);

  let rawCount = 0;
  if (K > 0 && d >= MAD_EPSILON) {
    for (let k = 0; k < K; k++) {
      const n = norms[k];
      if ((Z_SCALE * (n - m)) / d > tau && n > gamma * m) rawCount++;
    }
  }

  const count = rawCount === 0 ? 0 : Math.min(Math.ceil(rawCount / align) * align, Math.floor(K / 2));
  const order = Array.from({ length: K }, (_, k) => k);
  // Descending norm, then ascending index: a total order, so the selection is deterministic.
  order.sort((a, b) => norms[b] - norms[a] || a - b);
  const indices = Int32Array.from(order.slice(0, count)).sort();

  const normal = new Int32Array(K - count);
  for (let k = 0, i = 0, j = 0; k < K; k++) {
    if (i < count && indices[i] === k) i++;
    else normal[j++] = k;
  }
  return { indices, normal, threshold, median: m, mad: d, rawCount };
}
