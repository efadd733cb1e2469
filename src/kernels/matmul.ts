/**
 * The dense float64 matrix product the reconstruction kernels (Cholesky, GPTQ, the weighted
 * error) spend their time in. It is injectable: the kernels call a {@link MatMul64} and take
 * {@link matmul64} unless told otherwise, so they stay pure functions on typed arrays while the
 * calibration side can hand them a product computed by onnxruntime's BLAS-class kernels
 * (src/passes/calibration/ort-matmul.ts), 10–20× faster than JavaScript loops at K in the
 * thousands.
 */

/**
 * `C = A·B` for row-major `A` `[m, k]` and `B` `[k, n]`: a new row-major `[m, n]` array.
 * Implementations must not keep or modify `a` and `b` (they may be views into larger arrays).
 */
export type MatMul64 = (a: Float64Array, b: Float64Array, m: number, k: number, n: number) => Float64Array;

/**
 * The plain JavaScript product, the reference every other {@link MatMul64} is checked against.
 * Row by row, `C[i,:] += A[i,p]·B[p,:]` (the inner loop runs over contiguous memory); each
 * entry is summed in increasing `p`.
 */
export const matmul64: MatMul64 = (a, b, m, k, n) => {
  if (a.length < m * k || b.length < k * n) throw new RangeError(`matmul64: operands of ${a.length} and ${b.length} values are not ${m}×${k} and ${k}×${n}`);
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    const ai = i * k;
    for (let p = 0; p < k; p++) {
      const f = a[ai + p]!;
      if (f === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += f * b[bp + j]!;
    }
  }
  return c;
};
