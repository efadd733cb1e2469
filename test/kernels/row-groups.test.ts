// The in-place group quantization of S2 (row-groups.ts) against the copy-based kernels it
// replaces: each group's rows copied out, computeParamsBlocked + quantizeBlocked on them, and
// the relative error over a dequantizeBlocked copy reassembled in row order. Parameters and
// values must be bit for bit the same, including ties, clamping, blocks and zero rows; the
// error is summed in four lanes (ERROR_LANES), so it agrees to rounding. The WebAssembly SIMD
// kernels (quant-simd.ts) must give exactly what the JavaScript loops give.
import { describe, expect, it } from 'vitest';
import { computeParamsBlocked, dequantizeBlocked, packInt4, quantizeBlocked, type QuantType } from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { channelNorms } from '../../src/kernels/statistics.ts';
import { allRows, groupParams, quantizeGroups, quantizeGroupsJs, relativeErrorOf, rowGroups } from '../../src/kernels/row-groups.ts';
import { quantKernels, useQuantSimd } from '../../src/kernels/quant-simd.ts';

/** The old path: copy each group's rows, quantize them, reassemble the dequantized rows in order. */
function reference(w: Float32Array, K: number, N: number, parts: Int32Array[], blockSize: number | undefined, type: QuantType, symmetric: boolean) {
  const deq = new Float32Array(K * N);
  const out = parts.map((rows) => {
    const sub = new Float32Array(rows.length * N);
    rows.forEach((k, i) => sub.set(w.subarray(k * N, (k + 1) * N), i * N));
    const B = blockSize ?? rows.length;
    const { scales, zeroPoints } = computeParamsBlocked(sub, rows.length, N, B, type, symmetric);
    const wq = quantizeBlocked(sub, rows.length, N, B, scales, zeroPoints, type);
    const d = dequantizeBlocked(wq, rows.length, N, B, scales, zeroPoints);
    rows.forEach((k, i) => deq.set(d.subarray(i * N, (i + 1) * N), k * N));
    return { scales, zeroPoints, wq };
  });
  let num = 0;
  let den = 0;
  for (let i = 0; i < w.length; i++) {
    const d = deq[i]! - w[i]!;
    num += d * d;
    den += w[i]! * w[i]!;
  }
  return { out, error: den === 0 ? 0 : Math.sqrt(num / den) };
}

function weight(seed: number, K: number, N: number): Float32Array {
  const rng = seededRandom(seed);
  const w = rng.normalArray(K * N);
  // Outlier rows, a zero row, and exact ties of the grid (multiples of a power-of-two step).
  for (let n = 0; n < N; n++) {
    w[3 * N + n]! *= 40;
    w[5 * N + n] = 0;
    w[7 * N + n] = (rng.int(64) - 32) / 8 + 1 / 16;
  }
  return w;
}

describe('quantizeGroups', () => {
  const K = 45;
  const N = 19;
  const outliers = Int32Array.of(3, 7, 30);
  const normal = Int32Array.from({ length: K }, (_, k) => k).filter((k) => !outliers.includes(k));
  const cases: [string, QuantType, boolean, number | undefined][] = [
    ['uint8 asymmetric per channel', 'uint8', false, undefined],
    ['int8 symmetric per channel', 'int8', true, undefined],
    ['int4 asymmetric, blocks of 16', 'int4', false, 16],
    ['int4 symmetric per channel', 'int4', true, undefined],
  ];
  it.each(cases)('%s: the copy-based kernels\' parameters, values and error, bit for bit', (_, type, symmetric, B) => {
    const w = weight(11, K, N);
    for (const parts of [[Int32Array.from({ length: K }, (_, k) => k)], [outliers, normal]]) {
      const ref = reference(w, K, N, parts, B, type, symmetric);
      const groups = parts.length === 1 ? allRows(K) : rowGroups(K, parts);
      const params = groupParams(w, K, N, groups, B, type, symmetric);
      const kept = quantizeGroups(w, K, N, groups, params, B, type, true);
      const errorOnly = quantizeGroups(w, K, N, groups, params, B, type, false);
      expect(errorOnly.wq).toBeUndefined();
      expect(relativeErrorOf(kept)).toBe(relativeErrorOf(errorOnly));
      expect(Math.abs(relativeErrorOf(kept) - ref.error)).toBeLessThanOrEqual(1e-14 * ref.error);
      ref.out.forEach((r, g) => {
        expect(params[g]!.scales).toEqual(r.scales);
        expect(params[g]!.zeroPoints).toEqual(r.zeroPoints);
        expect(kept.wq![g]).toEqual(r.wq);
      });
    }
  });

  it('gives channelNorms\' row norms from the same pass, bit for bit', () => {
    const w = weight(12, K, N);
    const norms = new Float64Array(K);
    groupParams(w, K, N, allRows(K), undefined, 'uint8', false, norms);
    expect(norms).toEqual(channelNorms(w, K, N));
  });

  it('WebAssembly SIMD kernels: the JavaScript loops\' parameters, norms, values and error, bit for bit', () => {
    expect(quantKernels(), 'WebAssembly SIMD is available in this node').not.toBeNull();
    // N = 19 and 21 leave a tail past the last multiple of four; N = 24 has none. At N = 21,
    // NaN, ±Infinity and a −0 exercise the clamps and the min/max rule (the error is then NaN).
    for (const N of [19, 21, 24]) {
      const w = weight(13 + N, K, N);
      if (N === 21) {
        w[2 * N + 1] = Number.NaN;
        w[4 * N + 2] = Infinity;
        w[6 * N + 3] = -Infinity;
        w[8 * N + 5] = -0;
      } else expect(Number.isFinite(quantizeGroupsJs(w, K, N, allRows(K), groupParams(w, K, N, allRows(K), undefined, 'int8', false), undefined, 'int8', false).squaredError)).toBe(true);
      const parts = [outliers, normal];
      for (const [type, symmetric, B] of [...cases.map((c) => c.slice(1)), ['uint4', false, 8]] as [QuantType, boolean, number | undefined][]) {
        for (const groups of [allRows(K), rowGroups(K, parts)]) {
          const run = (simd: boolean) => {
            useQuantSimd(simd);
            try {
              const norms = new Float64Array(K);
              const params = groupParams(w, K, N, groups, B, type, symmetric, norms);
              const q = quantizeGroups(w, K, N, groups, params, B, type, true);
              return { norms, params, q };
            } finally {
              useQuantSimd(true);
            }
          };
          const simd = run(true);
          const js = run(false);
          expect(simd.norms).toEqual(js.norms);
          expect(simd.params).toEqual(js.params);
          expect(simd.q.wq).toEqual(js.q.wq);
          expect(Object.is(simd.q.squaredError, js.q.squaredError), `${type} N=${N}: ${simd.q.squaredError} vs ${js.q.squaredError}`).toBe(true);
          expect(simd.q.squaredNorm).toBe(js.q.squaredNorm);
          expect(quantizeGroupsJs(w, K, N, groups, js.params, B, type, false).squaredError).toBe(js.q.squaredError);
        }
      }
    }
  });

  it('refuses groups that do not partition the rows', () => {
    expect(() => rowGroups(4, [Int32Array.of(0, 1), Int32Array.of(1, 2, 3)])).toThrow(/row 1 is outside \[0, 4\) or in two groups/);
    expect(() => rowGroups(4, [Int32Array.of(0, 1), Int32Array.of(3)])).toThrow(/row 2 is in no group/);
  });
});

describe('packInt4', () => {
  it('packs integer typed arrays as it packs plain arrays, and names an out-of-range value', () => {
    const rng = seededRandom(3);
    const values = Int8Array.from({ length: 31 }, () => rng.int(16) - 8);
    expect(packInt4(values, true)).toEqual(packInt4(Array.from(values), true));
    expect(() => packInt4(Int8Array.of(1, 2, 9), true)).toThrow(/value 9 at 2 is out of range/);
    expect(() => packInt4(Uint8Array.of(16), false)).toThrow(/value 16 at 0 is out of range/);
    // Long enough for the word-at-a-time path: every value of both ranges, and a bad value in a
    // word after good ones, named at its index.
    for (const signed of [true, false]) {
      const long = signed ? Int8Array.from({ length: 1001 }, () => rng.int(16) - 8) : Uint8Array.from({ length: 1001 }, () => rng.int(16));
      expect(packInt4(long, signed)).toEqual(packInt4(Array.from(long), signed));
      long[613] = signed ? -9 : 16;
      expect(() => packInt4(long, signed)).toThrow(new RegExp(`value ${signed ? -9 : 16} at 613 is out of range`));
      long[613] = signed ? 8 : 255;
      expect(() => packInt4(long, signed)).toThrow(/at 613 is out of range/);
    }
  });
});
