/**
 * A {@link MatrixProduct} in float32 on the WebAssembly SIMD GEMM (row-gemm.ts `gemmF32`),
 * for AdaRound's `H·Δ`: about 30× the plain float64 loop of kernels/adaround.ts on the
 * tiny-arvd-l layer shapes (768×768 by 768×192), whose 2000 products per layer are the whole
 * cost. Float32 is enough for a gradient that Adam normalises (relative error about 1e-6).
 */
import type { MatrixProduct } from '../../kernels/adaround.ts';
import { gemmF32 } from './row-gemm.ts';

/**
 * A float32 `A·B` that keeps the float32 copy of the last `A` it was given: AdaRound passes
 * the same H with every batch of columns, so H is converted once per layer, not per step.
 */
export function simdMatrixProduct(): MatrixProduct {
  let lastA: Float64Array | undefined;
  let a32 = new Float32Array(0);
  return (a, b, m, k, n) => {
    if (a.length !== m * k || b.length !== k * n) throw new RangeError(`simdMatrixProduct: operands of ${a.length} and ${b.length} values are not ${m}×${k} and ${k}×${n}`);
    if (a !== lastA) {
      lastA = a;
      a32 = Float32Array.from(a);
    }
    // gemmF32 computes A·Bᵀ with B given as [n, k]: B transposed.
    const bt = new Float32Array(n * k);
    for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) bt[j * k + p] = b[p * n + j]!;
    return Float64Array.from(gemmF32(a32, m, k, bt, n));
  };
}
