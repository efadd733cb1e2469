import { describe, expect, it } from 'vitest';
import { detectOutliers } from '../../src/kernels/outliers.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { channelNorms } from '../../src/kernels/statistics.ts';

/** Row-major [K, N] weight of N(0, 0.02²) with the given rows scaled by `factor`. */
function plantedWeight(K: number, N: number, rows: number[], factor: number, seed: number): Float32Array {
  const w = seededRandom(seed).normalArray(K * N);
  for (let i = 0; i < w.length; i++) w[i] *= 0.02;
  for (const k of rows) for (let n = 0; n < N; n++) w[k * N + n] *= factor;
  return w;
}

function refMedian(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const PLANTED = [3, 77, 150, 301, 499];

describe('detectOutliers', () => {
  it('finds planted rows and pads the count up to a multiple of 32 with the next-largest norms', () => {
    const K = 512;
    const norms = channelNorms(plantedWeight(K, 64, PLANTED, 10, 5), K, 64);
    const r = detectOutliers(norms);
    const v = Array.from(norms);
    const m = refMedian(v);
    const d = refMedian(v.map((x) => Math.abs(x - m)));
    expect(r.median).toBeCloseTo(m, 14);
    expect(r.mad).toBeCloseTo(d, 14);
    expect(r.threshold).toBeCloseTo(Math.max(m + (3.5 * d) / 0.6745, 1.2 * m), 14);
    expect(r.rawCount).toBe(5);
    expect(r.indices.length).toBe(32);
    const top32 = v.map((n, k) => [n, k]).sort((a, b) => b[0] - a[0]).slice(0, 32).map((p) => p[1]).sort((a, b) => a - b);
    expect(Array.from(r.indices)).toEqual(top32);
    for (const k of PLANTED) expect(r.indices).toContain(k);
    expect(r.normal.length).toBe(K - 32);
    expect([...r.indices, ...r.normal].sort((a, b) => a - b)).toEqual(Array.from({ length: K }, (_, k) => k));
    expect(Array.from(r.normal)).toEqual([...r.normal].sort((a, b) => a - b));
  });

  it('align = 1 keeps exactly the raw outliers', () => {
    const norms = channelNorms(plantedWeight(512, 64, PLANTED, 10, 5), 512, 64);
    expect(Array.from(detectOutliers(norms, { align: 1 }).indices)).toEqual(PLANTED);
  });

  it('caps the aligned count at floor(K/2)', () => {
    const K = 41;
    const norms = channelNorms(plantedWeight(K, 64, [1, 2, 3, 4, 5], 10, 6), K, 64);
    const r = detectOutliers(norms);
    expect(r.rawCount).toBe(5);
    expect(r.indices.length).toBe(20);
    expect(r.normal.length).toBe(21);
  });

  it('the γ guard suppresses a near-flat layer', () => {
    const rng = seededRandom(7);
    const norms = Float64Array.from({ length: 256 }, () => 1 + 1e-4 * rng.next());
    norms[10] = 1.1; // huge z-score, but not above 1.2·median
    const m = refMedian(Array.from(norms));
    const d = refMedian(Array.from(norms, (x) => Math.abs(x - m)));
    expect((0.6745 * (norms[10] - m)) / d).toBeGreaterThan(3.5);
    const r = detectOutliers(norms);
    expect(r.rawCount).toBe(0);
    expect(r.indices.length).toBe(0);
    expect(r.normal.length).toBe(256);
    expect(r.threshold).toBeCloseTo(1.2 * m, 12);
    // Without the guard the same channel is flagged.
    expect(Array.from(detectOutliers(norms, { gamma: 0, align: 1 }).indices)).toEqual([10]);
  });

  it('MAD < 1e-8 means no outliers', () => {
    const norms = new Float64Array(64).fill(1);
    norms[5] = 100;
    const r = detectOutliers(norms);
    expect(r.mad).toBe(0);
    expect(r.rawCount).toBe(0);
    expect(r.indices.length).toBe(0);
  });

  it('breaks norm ties by the lower index', () => {
    // Spread base norms so that 1.5 is below the threshold; one real outlier at index 3.
    const norms = Float64Array.from({ length: 16 }, (_, k) => 0.6 + 0.05 * k);
    norms[3] = 100;
    for (const k of [13, 1, 10, 6]) norms[k] = 1.5;
    const r = detectOutliers(norms, { align: 4 });
    expect(r.rawCount).toBe(1);
    expect(Array.from(r.indices)).toEqual([1, 3, 6, 10]);
  });

  it('rejects a bad align', () => {
    expect(() => detectOutliers([1, 2, 3], { align: 0 })).toThrow(RangeError);
  });
});
