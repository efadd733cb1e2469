// The fused weight fake quantizer against quantize → dequantize, bit for bit (ties, clipping,
// every type, signed zeros, a zero scale).
import { describe, expect, it } from 'vitest';
import { dequantizePerChannel, quantizePerChannel, type QuantType } from '../../kernels/quantize.ts';
import { seededRandom } from '../../kernels/random.ts';
import { fakeQuantWeight } from './weight-quant.ts';

const random = seededRandom(5);
const sameBits = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

describe('fakeQuantWeight', () => {
  it('is dequantizePerChannel(quantizePerChannel(w)) and its transposed error', () => {
    const [K, N] = [37, 11];
    const w = Float32Array.from({ length: K * N }, () => (random.next() - 0.5) * 6);
    w.set([-0, 0, 0.5, 1.5, -2.5, 100, -100]);
    for (const type of ['int8', 'uint8', 'int4', 'uint4'] as QuantType[]) {
      const scales = Float32Array.from({ length: N }, (_, n) => (n === 3 ? 0 : n === 0 ? 1 : 0.01 + random.next() * 0.3));
      const zeroPoints = Int32Array.from({ length: N }, (_, n) => (type.startsWith('u') ? (type === 'uint8' ? 128 : 8) : n % 3) - (n === 5 ? 1 : 0));
      const deq = new Float32Array(K * N);
      const dT = new Float32Array(N * K);
      fakeQuantWeight(w, K, N, scales, zeroPoints, type, deq, dT);
      const ref = dequantizePerChannel(quantizePerChannel(w, K, N, scales, zeroPoints, type), K, N, scales, zeroPoints);
      expect(sameBits(deq, ref)).toBe(true);
      const refT = new Float32Array(N * K);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) refT[n * K + k] = ref[k * N + n]! - w[k * N + n]!;
      expect(sameBits(dT, refT)).toBe(true);
    }
  });
});
