import { quantRange, type QuantType, roundHalfToEven } from '../../kernels/quantize.ts';

/**
 * The weight search's per-candidate step in one pass: the dequantized weight
 * `DequantizeLinear(QuantizeLinear(w))` per output column of a row-major `[K, N]` weight
 * (what `dequantizePerChannel(quantizePerChannel(…))` gives, bit for bit) into `deq`, and
 * its error `deq − w` transposed (`[N, K]`, float32) into `dT`: no quantized array in
 * between, one read of `w`.
 */
export function fakeQuantWeight(w: Float32Array, K: number, N: number, scales: Float32Array, zeroPoints: Int32Array, type: QuantType, deq: Float32Array, dT: Float32Array): void {
  const { qmin, qmax } = quantRange(type);
  for (let k = 0; k < K; k++) {
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const s = scales[n]!;
      const z = zeroPoints[n]!;
      const x = w[row + n]!;
      let q = roundHalfToEven(Math.fround(x / s)) + z;
      q = q < qmin ? qmin : q > qmax ? qmax : q;
      // The quantized array would store a NaN (a zero scale) as 0.
      if (q !== q) q = 0;
      const v = Math.fround((q - z) * s);
      deq[row + n] = v;
      dT[n * K + k] = v - x;
    }
  }
}
