// TensorStats.add (four rows at a time) against the plain one-row-at-a-time definition:
// the same ranges, extreme rows and reservoir, bit for bit.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../kernels/random.ts';
import { ChannelRangeAccumulator } from './channel-ranges.ts';
import { ExtremeRows } from './extreme-rows.ts';
import { RowReservoir } from './reservoir.ts';
import { EXTREME_ROWS, mixSeed, TensorStats } from './tensor-stats.ts';

const sameBits = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

/** The one-row loop TensorStats.add must match. */
function reference(K: number, capacity: number, seed: number) {
  const ranges = new ChannelRangeAccumulator(K);
  const extremes = new ExtremeRows(K, EXTREME_ROWS);
  const reservoir = new RowReservoir(K, capacity, seed);
  const add = (data: Float32Array) => {
    for (let at = 0; at < data.length; at += K) {
      let m = 0;
      for (let c = 0; c < K; c++) {
        const v = data[at + c]!;
        if (v < ranges.min[c]!) ranges.min[c] = v;
        if (v > ranges.max[c]!) ranges.max[c] = v;
        const a = Math.abs(v);
        m = a > m ? a : m;
      }
      if (m <= extremes.threshold) reservoir.offer(data, at);
      else {
        const out = extremes.offer(data, at, m);
        if (out) reservoir.offer(out.row, out.offset);
      }
    }
  };
  return { ranges, extremes, reservoir, add };
}

describe('TensorStats.add', () => {
  it('keeps what the one-row loop keeps (ranges, extreme rows, reservoir)', () => {
    const random = seededRandom(7);
    for (const [K, rowsPerCall] of [[1, 3], [3, 7], [64, 192], [5, 1], [48, 130]] as const) {
      const seed = 0x5eed0000 + K;
      const stats = new TensorStats(K, 32, seed);
      const ref = reference(K, 32, mixSeed(seed, 0));
      for (let call = 0; call < 40; call++) {
        const data = Float32Array.from({ length: rowsPerCall * K }, () => (random.next() - 0.5) * 10 ** (random.next() * 3));
        if (call === 3) data.set([NaN, -0, 0, Infinity, -Infinity, -0].slice(0, data.length));
        if (call === 4) data.fill(-0);
        stats.add(data, 0);
        ref.add(data);
      }
      const s = stats.chunk(0)!;
      expect(sameBits(s.ranges.min, ref.ranges.min) && sameBits(s.ranges.max, ref.ranges.max)).toBe(true);
      expect(sameBits(s.extremes.rows(), ref.extremes.rows())).toBe(true);
      expect(sameBits(s.reservoir.rows(), ref.reservoir.rows())).toBe(true);
      expect([s.reservoir.seen, s.reservoir.kept]).toEqual([ref.reservoir.seen, ref.reservoir.kept]);
    }
  });

  it('RowReservoir.offerRun keeps what offering the rows one by one keeps', () => {
    const random = seededRandom(9);
    const K = 3;
    for (const capacity of [0, 1, 5, 64]) {
      const runs = new RowReservoir(K, capacity, 77);
      const single = new RowReservoir(K, capacity, 77);
      for (let call = 0; call < 300; call++) {
        const rows = Math.floor(random.next() * 40);
        const data = Float32Array.from({ length: (rows + 2) * K }, () => random.next());
        runs.offerRun(data, 2 * K, rows);
        for (let r = 0; r < rows; r++) single.offer(data, (r + 2) * K);
      }
      expect(sameBits(runs.rows(), single.rows())).toBe(true);
      expect([runs.seen, runs.kept]).toEqual([single.seen, single.kept]);
    }
  });
});
