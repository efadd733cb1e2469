// distinctRows: bitwise-distinct rows, first occurrences in order.
import { describe, expect, it } from 'vitest';
import { takeRows } from '../quant/layer-weights.ts';
import { distinctRows } from './distinct-rows.ts';

describe('distinctRows', () => {
  it('finds bitwise-distinct rows, first occurrences in order (-0 differs from 0, a NaN equals itself)', () => {
    const x = Float32Array.of(1, 2, 3, 4, 1, 2, 0, 0, -0, 0, 3, 4, NaN, 1, NaN, 1);
    const { distinct, distinctOf } = distinctRows(x, 8, 2);
    expect(Array.from(distinct)).toEqual([0, 1, 3, 4, 6]);
    expect(Array.from(distinctOf)).toEqual([0, 1, 0, 2, 3, 1, 4, 4]);
    expect(Array.from(takeRows(x, 2, distinct))).toEqual([1, 2, 3, 4, 0, 0, -0, 0, NaN, 1]);
  });

  it('handles an empty block and a subarray view', () => {
    expect(distinctRows(new Float32Array(0), 0, 3).distinct.length).toBe(0);
    const buf = Float32Array.of(9, 9, 5, 6, 5, 6, 7, 8);
    const { distinct, distinctOf } = distinctRows(buf.subarray(2), 3, 2);
    expect(Array.from(distinct)).toEqual([0, 2]);
    expect(Array.from(distinctOf)).toEqual([0, 0, 1]);
  });
});
