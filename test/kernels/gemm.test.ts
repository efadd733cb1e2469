import { describe, expect, it } from 'vitest';
import { fakeQuantMatmul, matmul, matmulInteger, matmulIntegerToFloat } from '../../src/kernels/gemm.ts';
import {
  computeParamsPerChannel, computeScaleZeroPoint, dequantizePerChannel, dequantizePerTensor, quantizePerChannel, quantizePerTensor,
} from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/** Triple-loop float64 reference. */
function refMatmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
      out[i * N + j] = s;
    }
  }
  return out;
}

const M = 9;
const K = 70;
const N = 11;

describe('matmul', () => {
  it('equals the float64 reference rounded once to float32', () => {
    const rng = seededRandom(20);
    const a = rng.normalArray(M * K);
    const b = rng.normalArray(K * N);
    const ref = refMatmul(a, b, M, K, N);
    expect(Array.from(matmul(a, b, M, K, N))).toEqual(Array.from(ref, Math.fround));
    expect(() => matmul(a, b, M, K + 1, N)).toThrow(RangeError);
  });
});

describe('integer GEMM', () => {
  const rng = seededRandom(21);
  const x = rng.normalArray(M * K);
  const w = rng.normalArray(K * N);
  for (let i = 0; i < w.length; i++) w[i] = 0.05 * w[i] + (i % N === 3 ? 0.1 : 0); // column 3 off-centre

  it('MatMulInteger subtracts both zero points and accumulates exactly', () => {
    const a = Uint8Array.from({ length: M * K }, () => rng.int(256));
    const b = Int8Array.from({ length: K * N }, () => rng.int(256) - 128);
    const zb = Int32Array.from({ length: N }, () => rng.int(21) - 10);
    const got = matmulInteger({ a, aZeroPoint: 131, b, bZeroPoint: zb, M, K, N });
    const ad = Array.from(a, (v) => v - 131);
    const bd = Array.from(b, (v, i) => v - zb[i % N]);
    expect(Array.from(got)).toEqual(Array.from(refMatmul(ad, bd, M, K, N)));
    const scalar = matmulInteger({ a, aZeroPoint: 0, b, bZeroPoint: 5, M, K, N });
    expect(Array.from(scalar)).toEqual(Array.from(refMatmul(a, Array.from(b, (v) => v - 5), M, K, N)));
  });

  it('MatMulIntegerToFloat equals dequantize-then-float-GEMM within 1e-5 relative', () => {
    for (const symmetric of [true, false]) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of x) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const xp = computeScaleZeroPoint(lo, hi, 'uint8', false);
      const wp = computeParamsPerChannel(w, K, N, 'int8', symmetric);
      const xq = quantizePerTensor(x, xp.scale, xp.zeroPoint, 'uint8');
      const wq = quantizePerChannel(w, K, N, wp.scales, wp.zeroPoints, 'int8');
      const bias = rng.normalArray(N);
      const got = matmulIntegerToFloat({
        a: xq, aScale: xp.scale, aZeroPoint: xp.zeroPoint, b: wq, bScale: wp.scales, bZeroPoint: wp.zeroPoints, M, K, N, bias,
      });
      const xh = dequantizePerTensor(xq, xp.scale, xp.zeroPoint);
      const wh = dequantizePerChannel(wq, K, N, wp.scales, wp.zeroPoints);
      const ref = refMatmul(xh, wh, M, K, N);
      const mag = refMatmul(Array.from(xh, Math.abs), Array.from(wh, Math.abs), M, K, N);
      for (let i = 0; i < M * N; i++) {
        const want = ref[i] + bias[i % N];
        // Relative to Σ|x̂||ŵ| + |bias|: the scale of the terms, immune to cancellation.
        expect(Math.abs(got[i] - want)).toBeLessThanOrEqual(1e-5 * (mag[i] + Math.abs(bias[i % N])));
      }
      const fq = fakeQuantMatmul(x, w, M, K, N, { scale: xp.scale, zeroPoint: xp.zeroPoint, type: 'uint8' }, { ...wp, type: 'int8' });
      expect(Array.from(fq)).toEqual(Array.from(ref, Math.fround));
      // And the quantized product is close to the float one.
      const exact = refMatmul(x, w, M, K, N);
      for (let i = 0; i < M * N; i++) expect(Math.abs(fq[i] - exact[i])).toBeLessThan(0.1);
    }
  });

  it('rejects mismatched per-column parameters', () => {
    const a = new Uint8Array(M * K);
    const b = new Int8Array(K * N);
    expect(() => matmulInteger({ a, aZeroPoint: 0, b, bZeroPoint: new Int32Array(N - 1), M, K, N })).toThrow(RangeError);
    expect(() => matmulIntegerToFloat({ a, aScale: 1, aZeroPoint: 0, b, bScale: 1, bZeroPoint: 0, M, K, N, bias: new Float32Array(1) })).toThrow(RangeError);
  });
});
