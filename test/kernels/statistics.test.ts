import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/kernels/random.ts';
import { channelNorms, mad, median, percentile, percentileSorted } from '../../src/kernels/statistics.ts';

describe('channelNorms', () => {
  it('is the float64 L2 norm of each row of [K, N]', () => {
    const K = 7;
    const N = 13;
    const w = seededRandom(3).normalArray(K * N);
    const got = channelNorms(w, K, N);
    expect(got).toBeInstanceOf(Float64Array);
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += Number(w[k * N + n]) ** 2;
      expect(got[k]).toBeCloseTo(Math.sqrt(s), 12);
    }
    expect(Array.from(channelNorms(Float32Array.of(3, 4, 0, 0, 5, 12), 3, 2))).toEqual([5, 0, 13]);
  });

  it('rejects a shape that does not match', () => {
    expect(() => channelNorms(new Float32Array(6), 4, 2)).toThrow(RangeError);
  });
});

describe('median / mad / percentile', () => {
  it('median of odd and even lengths, without reordering the input', () => {
    const odd = Float64Array.of(5, 1, 4, 2, 3);
    expect(median(odd)).toBe(3);
    expect(Array.from(odd)).toEqual([5, 1, 4, 2, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([-1])).toBe(-1);
    expect(median([])).toBeNaN();
  });

  it('mad is the median absolute deviation around the median', () => {
    // median 3; |x − 3| = 2, 2, 1, 0, 6 → median 2
    expect(mad([1, 5, 2, 3, 9])).toBe(2);
    expect(mad([1, 5, 2, 3, 9], 0)).toBe(3);
    expect(mad([7, 7, 7, 7])).toBe(0);
  });

  it('percentile interpolates linearly between ranks', () => {
    const x = [10, 0, 30, 20, 40];
    expect(percentile(x, 0)).toBe(0);
    expect(percentile(x, 1)).toBe(40);
    expect(percentile(x, 0.5)).toBe(20);
    expect(percentile(x, 0.9)).toBeCloseTo(36, 12); // position 3.6
    expect(percentileSorted([0, 10], 0.25)).toBe(2.5);
    expect(() => percentile(x, 1.5)).toThrow(RangeError);
    const rng = seededRandom(4);
    const big = Array.from({ length: 1001 }, () => rng.normal());
    const sorted = [...big].sort((a, b) => a - b);
    expect(percentile(big, 0.999)).toBe(sorted[999]); // position 999 exactly
  });
});
