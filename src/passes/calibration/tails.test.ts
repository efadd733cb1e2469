// The sampled tail percentiles against the quickselect definition, bit for bit: heavy and
// light tails, ties, zeros of both signs in the tail, a NaN, |x|.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../kernels/random.ts';
import { tailPercentiles, tailPercentilesOf } from './tails.ts';

const random = seededRandom(7);
const UPPER = [0.999, 0.9999, 0.99999];
const LOWER = UPPER.map((p) => 1 - p);
const abs = (x: Float32Array) => x.map(Math.abs);

function expectSame(x: Float32Array): void {
  for (const sym of [false, true]) {
    const ref = sym ? abs(x) : x;
    expect(tailPercentilesOf(x, UPPER, sym)).toEqual(sym ? { upper: tailPercentiles(ref, UPPER) } : { upper: tailPercentiles(x, UPPER), lower: tailPercentiles(x, LOWER) });
  }
}

describe('tailPercentilesOf', () => {
  it('matches the quickselect on smooth, heavy-tailed and sorted values', () => {
    for (const n of [100, 20_000, 300_001]) {
      expectSame(Float32Array.from({ length: n }, () => random.next() - 0.5));
      expectSame(Float32Array.from({ length: n }, () => (random.next() - 0.5) / (random.next() + 1e-3) ** 2));
      expectSame(Float32Array.from({ length: n }, (_, i) => i - n / 3));
      expectSame(Float32Array.from({ length: n }, (_, i) => n - i));
    }
  });

  it('matches it with ties, signed zeros in the tail and NaN', () => {
    const n = 50_000;
    expectSame(Float32Array.from({ length: n }, () => Math.round(random.next() * 4)));
    expectSame(Float32Array.from({ length: n }, () => (random.next() < 0.5 ? -0 : 0)));
    expectSame(Float32Array.from({ length: n }, () => Math.max(0, random.next() - 0.001) * (random.next() < 0.5 ? -1 : 1)));
    // An indicator channel: the upper tail is copies of 1 only (counted, not gathered).
    expectSame(Float32Array.from({ length: n }, () => (random.next() < 0.2 ? 1 : random.next() * 0.5)));
    const relu = Float32Array.from({ length: n }, () => (random.next() < 0.9 ? 0 : random.next()));
    expectSame(relu);
    const withNaN = Float32Array.from({ length: n }, () => random.next());
    withNaN[123] = NaN;
    expect(tailPercentilesOf(withNaN, UPPER, false)).toEqual({ upper: tailPercentiles(withNaN, UPPER), lower: tailPercentiles(withNaN, LOWER) });
  });
});
