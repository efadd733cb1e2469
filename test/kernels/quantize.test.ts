import { describe, expect, it } from 'vitest';
import {
  computeParamsBlocked, computeParamsPerChannel, computeScaleZeroPoint, dequantizeBlocked, dequantizePerChannel,
  dequantizePerTensor, dequantizeValue, packInt4, quantizeBlocked, quantizePerChannel, quantizePerTensor,
  quantizeValue, quantRange, roundHalfToEven, unpackInt4,
} from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/** Reference round-half-even built from Math.round (which rounds ties towards +inf). */
function refRound(x: number): number {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0; // + 0 normalises Math.round's −0
}

describe('roundHalfToEven', () => {
  it('rounds ties to even', () => {
    const cases: [number, number][] = [
      [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, 0], [-1.5, -2], [-2.5, -2], [-3.5, -4],
      [0.49999999999999994, 0], [2.5000000000000004, 3], [-2.4999999999999996, -2], [7, 7], [-7.2, -7], [2 ** 52 + 1, 2 ** 52 + 1],
    ];
    for (const [x, want] of cases) expect(roundHalfToEven(x) === want, `round(${x})`).toBe(true);
  });

  it('agrees with the Math.round-based reference on random halves and non-halves', () => {
    const rng = seededRandom(8);
    for (let i = 0; i < 2000; i++) {
      const x = i % 2 === 0 ? rng.int(400) - 200 + 0.5 : (rng.next() - 0.5) * 1000;
      expect(roundHalfToEven(x)).toBe(refRound(x));
    }
  });
});

describe('computeScaleZeroPoint', () => {
  it('asymmetric int8 / uint8', () => {
    const a = computeScaleZeroPoint(-1, 3, 'int8', false);
    expect(a.scale).toBe(Math.fround(4 / 255));
    expect(a.zeroPoint).toBe(refRound(-128 + 1 / a.scale));
    expect(a.zeroPoint).toBe(-64);
    const u = computeScaleZeroPoint(-1, 3, 'uint8', false);
    expect(u.scale).toBe(Math.fround(4 / 255));
    expect(u.zeroPoint).toBe(64);
    // The range is extended to include 0, so a positive range gets z = qmin.
    const p = computeScaleZeroPoint(2, 5, 'uint8', false);
    expect(p.scale).toBe(Math.fround(5 / 255));
    expect(p.zeroPoint).toBe(0);
    expect(computeScaleZeroPoint(-5, -2, 'int8', false).zeroPoint).toBe(127);
    expect(computeScaleZeroPoint(-1, 14, 'uint4', false)).toEqual({ scale: 1, zeroPoint: 1 });
  });

  it('symmetric', () => {
    expect(computeScaleZeroPoint(-3, 1, 'int8', true)).toEqual({ scale: Math.fround(3 / 127), zeroPoint: 0 });
    expect(computeScaleZeroPoint(-3, 1, 'uint8', true)).toEqual({ scale: Math.fround(3 / 127), zeroPoint: 128 });
    expect(computeScaleZeroPoint(-1, 7, 'int4', true)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeScaleZeroPoint(-1, 7, 'uint4', true)).toEqual({ scale: 1, zeroPoint: 8 });
  });

  it('guards a zero range with scale 1', () => {
    expect(computeScaleZeroPoint(0, 0, 'int8', false)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeScaleZeroPoint(0, 0, 'int8', true)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeScaleZeroPoint(0, 1e-40, 'uint8', false)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(() => computeScaleZeroPoint(1, 0, 'int8', false)).toThrow(RangeError);
  });

  it('has the documented ranges', () => {
    expect(quantRange('int8')).toMatchObject({ qmin: -128, qmax: 127 });
    expect(quantRange('uint8')).toMatchObject({ qmin: 0, qmax: 255 });
    expect(quantRange('int4')).toMatchObject({ qmin: -8, qmax: 7 });
    expect(quantRange('uint4')).toMatchObject({ qmin: 0, qmax: 15 });
  });
});

describe('per-tensor quantize / dequantize', () => {
  it('rounds ties to even and saturates', () => {
    const x = Float32Array.of(0.25, 0.75, 1.25, -0.25, -1.25, 1000, -1000);
    const q = quantizePerTensor(x, 0.5, 0, 'int8');
    expect(q).toBeInstanceOf(Int8Array);
    expect(Array.from(q)).toEqual([0, 2, 2, 0, -2, 127, -128]);
    const u = quantizePerTensor(Float32Array.of(-100, 0, 1.25, 100), 0.5, 10, 'uint8');
    expect(u).toBeInstanceOf(Uint8Array);
    expect(Array.from(u)).toEqual([0, 10, 12, 210]);
    expect(Array.from(quantizePerTensor(Float32Array.of(-9, 3.5, 9), 1, 0, 'int4'))).toEqual([-8, 4, 7]);
    expect(Array.from(quantizePerTensor(Float32Array.of(-9, 2.5, 9), 1, 8, 'uint4'))).toEqual([0, 10, 15]);
  });

  it('divides in float32 like QuantizeLinear', () => {
    // 0.35f / 0.1f is 3.4999998882… in float64 but exactly 3.5 in float32 → 4 (even).
    expect(quantizeValue(0.35, 0.1, 0, 'int8')).toBe(4);
    expect(Array.from(quantizePerTensor(Float32Array.of(0.35), 0.1, 0, 'int8'))).toEqual([4]);
    // Multiplying by the float32 reciprocal would give exactly 14.5 → 14; dividing gives 14.500001 → 15.
    const s = Math.fround(0.0023);
    const x = Math.fround(14.5 * s);
    expect(Math.fround(x * Math.fround(1 / s))).toBe(14.5);
    expect(quantizeValue(x, s, 0, 'int8')).toBe(15);
    expect(Array.from(quantizePerTensor(Float32Array.of(x), s, 0, 'int8'))).toEqual([15]);
    expect(Array.from(quantizePerChannel(Float32Array.of(x, x), 1, 2, Float32Array.of(s, 1), null, 'int8'))).toEqual([15, 0]);
  });

  it('round-trips within half a step in float64', () => {
    const x = seededRandom(9).normalArray(4096);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const { scale, zeroPoint } = computeScaleZeroPoint(lo, hi, 'uint8', false);
    const q = quantizePerTensor(x, scale, zeroPoint, 'uint8');
    const xh = dequantizePerTensor(q, scale, zeroPoint);
    let sawMin = false;
    let sawMax = false;
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(xh[i] - x[i])).toBeLessThanOrEqual(scale / 2 + 1e-6);
      expect(xh[i]).toBe(Math.fround((q[i] - zeroPoint) * scale));
      expect(xh[i]).toBe(dequantizeValue(q[i], scale, zeroPoint));
      sawMin ||= q[i] === 0;
      sawMax ||= q[i] === 255;
    }
    expect(sawMin && sawMax).toBe(true);
    expect(dequantizePerTensor(quantizePerTensor(Float32Array.of(0), scale, zeroPoint, 'uint8'), scale, zeroPoint)[0]).toBe(0);
  });

  it('a zero-range tensor quantizes to z and back to 0', () => {
    const x = new Float32Array(16);
    const { scale, zeroPoint } = computeScaleZeroPoint(0, 0, 'uint8', false);
    const q = quantizePerTensor(x, scale, zeroPoint, 'uint8');
    expect(Array.from(q).every((v) => v === zeroPoint)).toBe(true);
    expect(Array.from(dequantizePerTensor(q, scale, zeroPoint)).every((v) => v === 0)).toBe(true);
  });
});

describe('per-channel and blocked', () => {
  it('uses one scale per column of [K, N]', () => {
    const K = 64;
    const N = 5;
    const w = seededRandom(10).normalArray(K * N);
    for (let k = 0; k < K; k++) w[k * N + 2] *= 10; // column 2 has a larger range
    const { scales, zeroPoints } = computeParamsPerChannel(w, K, N, 'int8', true);
    const q = quantizePerChannel(w, K, N, scales, zeroPoints, 'int8');
    const wh = dequantizePerChannel(q, K, N, scales, zeroPoints);
    for (let n = 0; n < N; n++) {
      let amax = 0;
      for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(w[k * N + n]));
      expect(scales[n]).toBe(Math.fround(amax / 127));
      expect(zeroPoints[n]).toBe(0);
      for (let k = 0; k < K; k++) {
        const i = k * N + n;
        expect(q[i]).toBe(Math.max(-128, Math.min(127, refRound(Math.fround(w[i] / scales[n])))));
        expect(Math.abs(wh[i] - w[i])).toBeLessThanOrEqual(scales[n] / 2 + 1e-6);
      }
    }
    expect(scales[2]).toBeGreaterThan(5 * scales[0]);
  });

  it('blocks rows along K with a short last block (opset-21 block_size, axis 0)', () => {
    const K = 10;
    const N = 3;
    const B = 4;
    const w = seededRandom(11).normalArray(K * N);
    const { scales, zeroPoints } = computeParamsBlocked(w, K, N, B, 'uint4', false);
    expect(scales.length).toBe(3 * N);
    const q = quantizeBlocked(w, K, N, B, scales, zeroPoints, 'uint4');
    const wh = dequantizeBlocked(q, K, N, B, scales, zeroPoints);
    for (let b = 0; b < 3; b++) {
      for (let n = 0; n < N; n++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let k = b * B; k < Math.min(K, (b + 1) * B); k++) {
          lo = Math.min(lo, w[k * N + n]);
          hi = Math.max(hi, w[k * N + n]);
        }
        const ref = computeScaleZeroPoint(lo, hi, 'uint4', false);
        expect(scales[b * N + n]).toBe(ref.scale);
        expect(zeroPoints[b * N + n]).toBe(ref.zeroPoint);
        for (let k = b * B; k < Math.min(K, (b + 1) * B); k++) {
          const i = k * N + n;
          expect(q[i]).toBe(quantizeValue(w[i], ref.scale, ref.zeroPoint, 'uint4'));
          expect(Math.abs(wh[i] - w[i])).toBeLessThanOrEqual(ref.scale / 2 + 1e-6);
        }
      }
    }
    expect(() => quantizeBlocked(w, K, N, B, new Float32Array(N), null, 'uint4')).toThrow(RangeError);
  });
});

describe('int4 packing', () => {
  it('packs low nibble first', () => {
    expect(Array.from(packInt4([1, -1, 7, -8, 3], true))).toEqual([0xf1, 0x87, 0x03]);
    expect(Array.from(packInt4(Uint8Array.of(15, 0, 9, 4), false))).toEqual([0x0f, 0x49]);
    expect(() => packInt4([8], true)).toThrow(RangeError);
    expect(() => packInt4([-1], false)).toThrow(RangeError);
    expect(() => packInt4([16], false)).toThrow(RangeError);
  });

  it('unpacks what it packs', () => {
    const rng = seededRandom(12);
    const s = Int8Array.from({ length: 33 }, () => rng.int(16) - 8);
    expect(Array.from(unpackInt4(packInt4(s, true), 33, true))).toEqual(Array.from(s));
    const u = Uint8Array.from({ length: 20 }, () => rng.int(16));
    expect(Array.from(unpackInt4(packInt4(u, false), 20, false))).toEqual(Array.from(u));
  });
});
