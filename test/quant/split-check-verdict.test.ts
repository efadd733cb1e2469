// The split check's verdict from the per-sample errors it measured (src/passes/quant/split-check.ts):
// made-up error lists, one per case the rule distinguishes. The rollouts themselves are tested in
// split-check.test.ts on the bundled ARVD.
import { describe, expect, it } from 'vitest';
import { SPLIT_CHECK_LEVEL, splitCheckVerdict } from '../../src/passes/quant/split-check.ts';

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const verdict = (auto: number[], off: number[]) => splitCheckVerdict({ auto: mean(auto), off: mean(off) }, { auto, off });

describe('splitCheckVerdict', () => {
  const base = [2e-3, 5e-3, 1e-2, 3e-3, 8e-3, 4e-3, 6e-3, 9e-3, 2.5e-3, 7e-3, 1.2e-2, 3.5e-3];

  it('undoes the splits when every sample is nearer fp32 without them', () => {
    const v = verdict(base.map((x, i) => x * (1.1 + 0.05 * i)), base);
    expect(v.kept).toBe('off');
    // All 12 log ratios positive: the exact two-sided p is 2 / 2^12.
    expect(v.p).toBeCloseTo(2 / 4096, 12);
  });

  it('keeps the splits when the samples split evenly, even where the lower mean is off’s', () => {
    // One runaway rollout (sample 0) makes auto's mean 1.8× off's; the other samples alternate.
    const auto = base.map((x, i) => (i === 0 ? 0.1 : i % 2 ? x * 1.2 : x / 1.2));
    const v = verdict(auto, base);
    expect(mean(auto)).toBeGreaterThan(mean(base));
    expect(v.p).toBeGreaterThan(SPLIT_CHECK_LEVEL);
    expect(v.kept).toBe('auto');
  });

  it('keeps the splits when the ranks favour off but off’s mean is the higher', () => {
    // Off is nearer on 11 of 12 by 10%, and 30× farther on the last.
    const off = base.map((x, i) => (i === 11 ? x * 30 : x));
    const auto = base.map((x, i) => (i === 11 ? x : x * 1.1));
    const v = verdict(auto, off);
    expect(v.p).toBeLessThan(SPLIT_CHECK_LEVEL);
    expect(v.kept).toBe('auto');
  });

  it('keeps the splits when the samples favour them beyond their spread, whatever the mean', () => {
    // Auto nearer on 11 of 12 (by 1.10–1.20×), 30× farther on the last: p = 0.034 in auto's favour, off's mean the lower.
    const auto = base.map((x, i) => (i === 11 ? 30 * x : x / (1.1 + 0.01 * i)));
    const v = verdict(auto, base);
    expect(mean(base)).toBeLessThan(mean(auto));
    expect(v.p).toBeLessThan(SPLIT_CHECK_LEVEL);
    expect(v.kept).toBe('auto');
  });

  it('refuses per-sample lists of different lengths where both models finished', () => {
    expect(() => splitCheckVerdict({ auto: 1e-3, off: 2e-3 }, { auto: [1e-3], off: [2e-3, 2e-3] })).toThrow(/internal: split check with finite errors on 1 and 2 samples/);
  });

  it('a model whose rollout failed loses, without a test', () => {
    expect(splitCheckVerdict({ auto: Number.POSITIVE_INFINITY, off: 1e-3 }, { auto: [2e-3], off: [1e-3, 1e-3] })).toEqual({ kept: 'off' });
    expect(splitCheckVerdict({ auto: 1e-3, off: Number.POSITIVE_INFINITY }, { auto: [1e-3, 1e-3], off: [] })).toEqual({ kept: 'auto' });
    expect(splitCheckVerdict({ auto: Number.POSITIVE_INFINITY, off: Number.POSITIVE_INFINITY }, { auto: [], off: [] })).toEqual({ kept: 'auto' });
  });

  it('counts equal errors as no difference', () => {
    const v = verdict(base, base);
    expect(v).toEqual({ kept: 'auto', p: 1 });
  });
});
