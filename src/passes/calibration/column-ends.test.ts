// The partial sort of the weight candidates against a full sort, at the positions read.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../kernels/random.ts';
import { ranksRead, sortEnds } from './column-ends.ts';

const random = seededRandom(3);

describe('sortEnds', () => {
  it('puts the sort’s values at the first low and last high positions', () => {
    const cols: Float32Array[] = [];
    for (const n of [1, 2, 5, 64, 172, 1024]) {
      cols.push(Float32Array.from({ length: n }, () => random.next() - 0.5));
      cols.push(Float32Array.from({ length: n }, () => Math.round(random.next() * 3) + 1));
      cols.push(Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? (i % 2 ? -0 : 0) : random.next())));
      cols.push(Float32Array.from({ length: n }, (_, i) => (i === n >> 1 ? NaN : random.next())));
    }
    for (const col of cols) {
      const n = col.length;
      for (const [low, high] of [[0, 2], [2, 2], [3, 1], [1, 9]]) {
        const sorted = Float32Array.from(col).sort();
        const ends = Float32Array.from(col);
        sortEnds(ends, low!, high!);
        for (let i = 0; i < n; i++) if (i < low! || i >= n - high!) expect(Object.is(ends[i], sorted[i])).toBe(true);
      }
    }
  });

  it('ranksRead: the positions percentileSorted reads', () => {
    expect(ranksRead(64, [1, 0.999, 0.9999, 0.99999])).toEqual({ lowest: 62, highest: 63 });
    expect(ranksRead(64, [0, 0.001, 0.0001, 0.00001])).toEqual({ lowest: 0, highest: 1 });
    expect(ranksRead(1, [0.999])).toEqual({ lowest: 0, highest: 0 });
  });
});
