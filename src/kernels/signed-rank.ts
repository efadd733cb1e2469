/**
 * Wilcoxon's signed-rank test of paired differences: is their distribution centred on zero?
 *
 * The split check (src/passes/quant/split-check.ts) compares two quantized models on the same
 * calibration rollouts. Their final results are chaotic — a model whose float parameters moved
 * by one ulp scored 0.32–1.77× its own error on tiny-arvd-l (docs/split-check.md) — so a plain
 * comparison of two means picks a side even between models that compute the same function.
 * A rank test over the per-sample differences says whether the samples favour one model beyond
 * that spread; ranks keep one runaway rollout from deciding alone.
 *
 * Zero differences are dropped (Wilcoxon's rule); tied magnitudes share their average rank.
 * For at most {@link EXACT_MAX} non-zero differences the p-value is exact: the null
 * distribution of the rank sum given these ranks, ties included, by counting every assignment
 * of signs (what SciPy's `wilcoxon(d, zero_method='wilcox', method=PermutationMethod(n_resamples=inf))`
 * enumerates). Beyond, it is the normal approximation with the tie correction of the variance
 * and a continuity correction (SciPy's `method='approx', correction=True`). The tests compare
 * with SciPy's values for both.
 */

/** At most this many non-zero differences get the exact p-value: the counts stay integers below 2^53. */
export const EXACT_MAX = 50;

/** The test's statistics and two-sided p-value. */
export interface SignedRank {
  /** Non-zero differences ranked. */
  n: number;
  /** Sum of the ranks of the positive differences. */
  wPlus: number;
  /** Sum of the ranks of the negative differences. */
  wMinus: number;
  /** Two-sided p-value (1 when nothing was ranked). */
  p: number;
  /** Whether `p` is exact (n ≤ {@link EXACT_MAX}) or the normal approximation. */
  exact: boolean;
}

/**
 * Wilcoxon's signed-rank test of `differences` (infinite values rank above every finite one).
 * @throws on a NaN difference: it has no sign.
 */
export function signedRankTest(differences: ArrayLike<number>): SignedRank {
  const nonZero: number[] = [];
  for (let i = 0; i < differences.length; i++) {
    const d = differences[i]!;
    if (Number.isNaN(d)) throw new Error(`signed-rank test: difference ${i} is NaN`);
    if (d !== 0) nonZero.push(d);
  }
  const n = nonZero.length;
  if (n === 0) return { n, wPlus: 0, wMinus: 0, p: 1, exact: true };
  const order = nonZero.map((_, i) => i).sort((a, b) => Math.abs(nonZero[a]!) - Math.abs(nonZero[b]!) || 0);
  // Average ranks over runs of equal magnitudes; the run lengths feed the variance's tie correction.
  const rank = new Float64Array(n);
  let tieTerm = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && Math.abs(nonZero[order[end]!]!) === Math.abs(nonZero[order[start]!]!)) end++;
    const average = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) rank[order[k]!] = average;
    const t = end - start;
    tieTerm += t * t * t - t;
    start = end;
  }
  let wPlus = 0;
  for (let i = 0; i < n; i++) if (nonZero[i]! > 0) wPlus += rank[i]!;
  const total = (n * (n + 1)) / 2;
  const wMinus = total - wPlus;
  const exact = n <= EXACT_MAX;
  const p = exact ? exactTwoSided(rank, Math.min(wPlus, wMinus)) : normalTwoSided(n, wPlus, tieTerm);
  return { n, wPlus, wMinus, p, exact };
}

/**
 * 2·P(W ≤ w) under the null (each sign equally likely, the ranks as given), counted: the
 * number of subsets of the ranks summing to each total, on doubled ranks (average ranks are
 * multiples of ½, so doubled they are integers).
 */
function exactTwoSided(rank: Float64Array, w: number): number {
  const n = rank.length;
  const total = n * (n + 1);
  const ways = new Float64Array(total + 1);
  ways[0] = 1;
  let reach = 0;
  for (let i = 0; i < n; i++) {
    const r = Math.round(2 * rank[i]!);
    reach += r;
    for (let s = reach; s >= r; s--) ways[s]! += ways[s - r]!;
  }
  const limit = Math.round(2 * w);
  let below = 0;
  for (let s = 0; s <= limit; s++) below += ways[s]!;
  return Math.min(1, (2 * below) / 2 ** n);
}

/** The normal approximation: mean n(n+1)/4, variance n(n+1)(2n+1)/24 less the ties' Σ(t³−t)/48, continuity-corrected. */
function normalTwoSided(n: number, wPlus: number, tieTerm: number): number {
  const mean = (n * (n + 1)) / 4;
  const variance = (n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48;
  if (variance <= 0) return 1;
  const z = Math.max(0, Math.abs(wPlus - mean) - 0.5) / Math.sqrt(variance);
  return Math.min(1, erfc(z / Math.SQRT2));
}

/**
 * The complementary error function, to about 1.2e-7 relative (the Chebyshev fit in Numerical
 * Recipes, 2nd ed., §6.2): ample for a p-value compared with 0.05.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + z / 2);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
