/** Spelling suggestions for names a user typed (passes, option keys, variant dtypes). */

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The names of `known` nearest to `name`, when within a typo's distance: 2 edits, or a quarter
 * of its length when longer, 1 for names of three characters or fewer (two edits turn `ab`
 * into `tau`).
 */
export function nearNames(name: string, known: readonly string[]): string[] {
  const limit = name.length <= 3 ? 1 : Math.max(2, Math.floor(name.length / 4));
  // Case is not a typo's distance: `Q-ARVD` is `q-arvd`.
  const scored = known.map((k) => ({ k, d: editDistance(k.toLowerCase(), name.toLowerCase()) })).filter((x) => x.d <= limit);
  const best = Math.min(...scored.map((x) => x.d));
  return scored.filter((x) => x.d === best).map((x) => x.k);
}
