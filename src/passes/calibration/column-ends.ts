/**
 * Partial sorting for the weight candidates: a column's percentiles 0.999–1 (and 0–0.001)
 * read only its few largest (smallest) values, so those are found by insertion instead of
 * sorting every column of every layer.
 */

/** The sorted positions `percentileSorted(sorted, p)` reads for each p, over n values: the lowest and the highest. */
export function ranksRead(n: number, ps: readonly number[]): { lowest: number; highest: number } {
  let lowest = n;
  let highest = -1;
  for (const p of ps) {
    const lo = Math.floor(p * (n - 1));
    const hi = Math.min(lo + 1, n - 1);
    lowest = Math.min(lowest, lo);
    highest = Math.max(highest, hi);
  }
  return { lowest, highest };
}

/**
 * Rearranges `col` so that its first `low` and last `high` positions hold what `col.sort()`
 * would put there (the positions between are left unspecified). Falls back to the full sort
 * when the ends would cover most of the column, or for a zero (0 and -0 sort apart but
 * compare equal), a NaN or an infinity: equal values found by comparison are then the same
 * bits, so the ends are exactly the sort's.
 */
export function sortEnds(col: Float32Array, low: number, high: number): void {
  const n = col.length;
  if (low + high >= n || low > 8 || high > 8) {
    col.sort();
    return;
  }
  const top = new Float64Array(high).fill(-Infinity);
  const bottom = new Float64Array(low).fill(Infinity);
  for (let k = 0; k < n; k++) {
    const v = col[k]!;
    if (v === 0 || !Number.isFinite(v)) {
      col.sort();
      return;
    }
    if (high > 0 && v > top[0]!) {
      let j = 0;
      for (; j + 1 < high && v > top[j + 1]!; j++) top[j] = top[j + 1]!;
      top[j] = v;
    }
    if (low > 0 && v < bottom[low - 1]!) {
      let j = low - 1;
      for (; j > 0 && v < bottom[j - 1]!; j--) bottom[j] = bottom[j - 1]!;
      bottom[j] = v;
    }
  }
  col.set(bottom, 0);
  col.set(top, n - high);
}
