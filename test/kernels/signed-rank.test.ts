// Wilcoxon's signed-rank test against SciPy 1.17.1's `scipy.stats.wilcoxon(d, zero_method='wilcox')`
// on the same vectors (run once at dev time; SciPy is not a dependency): `method='exact'` without
// ties, `method=PermutationMethod(n_resamples=np.inf)` (every sign assignment) with ties, and
// `method='approx', correction=True` past EXACT_MAX. The vectors are made up to cover the cases:
// exact, every sign alike, ties, zeros dropped, more than EXACT_MAX differences.
import { describe, expect, it } from 'vitest';
import { EXACT_MAX, erfc, signedRankTest } from '../../src/kernels/signed-rank.ts';

const n60 = [
  0.541666, 0.326988, 0.003222, 0.68235, 0.970348, -0.199893, -0.218137, 1.381899, 0.910095, -0.973425, 0.165859, 2.113931, 0.198246, -1.543597, 1.169411, 2.409767, -1.022262, -1.472928, 2.499033,
  1.911665, -2.329, -0.526111, 3.638401, 0.53952, -3.157452, 1.202238, 4.027369, -1.433302, -3.006769, 3.272411, 3.276857, -3.429153, -1.644895, 5.01139, 1.345573, -4.733274, 0.759926, 5.7232,
  -1.38721, -4.731015, 3.634123, 4.933841, -4.188024, -3.13996, 6.134361, 2.590349, -6.16592, -0.157617, 7.392006, -0.857683, -6.546821, 3.53321, 6.796325, -4.53308, -4.942955, 6.917641, 4.227728,
  -7.354081, -1.529443, 8.927087,
];

/** [differences, SciPy's p-value, SciPy's statistic min(W+, W−), whether the p-value is exact]. */
const cases: [string, number[], number, number, boolean][] = [
  ['16 differences, no ties', [0.31, -0.12, 0.55, 0.08, -0.41, 0.93, 0.27, -0.05, 0.66, 0.19, -0.22, 0.48, 0.71, -0.36, 0.14, 0.83], 0.0443115234375, 29, true],
  ['6 differences, all positive (the smallest n that reaches 5%)', [1, 2, 3, 4, 5, 6], 0.03125, 0, true],
  ['8 differences', [0.5, -1.2, 2.1, 0.7, 1.6, -0.3, 2.5, 1.1], 0.109375, 6, true],
  ['ties: counted with average ranks', [1, 1, -1, 2, 2, 2, -3, 4, 4, 5, -0.5, 0.5], 0.0546875, 14.5, true],
  ['5 equal positive differences: 2/32, not the normal approximation\'s 0.037', [1, 1, 1, 1, 1], 0.0625, 0, true],
  ['zeros dropped', [0, 0, 1.5, -2.5, 3.5, 4.5, 5.5, -0.25, 6.5], 0.109375, 4, true],
  [`60 differences (over EXACT_MAX = ${EXACT_MAX}): normal approximation`, n60, 0.35939444593885617, 790, false],
];

describe('signedRankTest', () => {
  it.each(cases)('%s: SciPy’s p-value and statistic', (_, d, p, statistic, exact) => {
    const r = signedRankTest(d);
    expect(r.exact).toBe(exact);
    expect(Math.min(r.wPlus, r.wMinus)).toBe(statistic);
    expect(r.wPlus + r.wMinus).toBe((r.n * (r.n + 1)) / 2);
    // Exact: counted, to float rounding; approximate: erfc's fit (1.2e-7 relative).
    expect(Math.abs(r.p - p) / p).toBeLessThan(exact ? 1e-12 : 1e-6);
  });

  it('is symmetric in the sign and ranks infinities above every finite difference', () => {
    const d = [0.3, -0.1, 0.7, 0.2, 0.9, -0.4, 1.1];
    const flipped = signedRankTest(d.map((x) => -x));
    const r = signedRankTest(d);
    expect([flipped.wPlus, flipped.wMinus, flipped.p]).toEqual([r.wMinus, r.wPlus, r.p]);
    // A rollout that failed compares as the largest difference, of its sign.
    expect(signedRankTest([...d.slice(0, 6), Number.POSITIVE_INFINITY]).wPlus).toBe(r.wPlus);
    expect(signedRankTest([...d.slice(0, 6), Number.NEGATIVE_INFINITY]).wMinus).toBe(r.wMinus + 7);
  });

  it('gives p = 1 for nothing to rank and refuses a NaN difference', () => {
    expect(signedRankTest([])).toEqual({ n: 0, wPlus: 0, wMinus: 0, p: 1, exact: true });
    expect(signedRankTest([0, 0]).p).toBe(1);
    expect(() => signedRankTest([0.1, Number.NaN])).toThrow(/difference 1 is NaN/);
  });

  it('erfc matches known values', () => {
    // erfc(0) = 1, erfc(1) = 0.157299207050285, erfc(2) = 0.004677734981047266, erfc(-1) = 1.842700792949715.
    expect(erfc(0)).toBeCloseTo(1, 7);
    expect(Math.abs(erfc(1) - 0.157299207050285) / 0.157299207050285).toBeLessThan(2e-7);
    expect(Math.abs(erfc(2) - 0.004677734981047266) / 0.004677734981047266).toBeLessThan(2e-7);
    expect(Math.abs(erfc(-1) - 1.842700792949715)).toBeLessThan(2e-7);
  });
});
