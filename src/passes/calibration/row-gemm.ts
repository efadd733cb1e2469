import { gemmF32Simd, gemmNTSimd } from './simd.ts';

/**
 * The weight search's product (Gram matrices, `dᵀHd`, sums over every row): `C = A·Bᵀ` with
 * A `[M, K]` and B `[N, K]`, both row-major, so every output is a contiguous dot product.
 * Accumulation is in float64 ({@link gemmF32} serves the layer outputs), each
 * output summed over k in order; the result is stored in `out`. Runs the WebAssembly SIMD
 * kernel (simd.ts, about 3× {@link gemmNTJs}) where available, with the same result bit for
 * bit: the calibration table's errors do not depend on which one ran.
 */
export function gemmNT(a: ArrayLike<number>, M: number, K: number, b: ArrayLike<number>, N: number, out: Float32Array | Float64Array = new Float32Array(M * N)): Float32Array | Float64Array {
  checkShapes(a, M, K, b, N, out);
  if (gemmNTSimd(a, M, K, b, N, out)) return out;
  return gemmNTJs(a, M, K, b, N, out);
}

/** {@link gemmNT} into a float32 `[M, N]` (the search's outputs): `out`, or a new array. */
export function gemm32(a: ArrayLike<number>, M: number, K: number, b: ArrayLike<number>, N: number, out: Float32Array = new Float32Array(M * N)): Float32Array {
  gemmNT(a, M, K, b, N, out);
  return out;
}

/**
 * `C = A·Bᵀ` in float32 arithmetic: every output the sum over k, in order, of float32
 * products, rounded to float32 at each step. The search's products (layer outputs, compared
 * against each other) need no more: their rounding is about 1e-7 of the output, far below the
 * quantization errors being compared, and float32 lanes are twice as many as float64 ones.
 * Runs the WebAssembly SIMD kernel where available, bit for bit {@link gemmF32Js}.
 */
export function gemmF32(a: Float32Array, M: number, K: number, b: Float32Array, N: number, out: Float32Array = new Float32Array(M * N)): Float32Array {
  checkShapes(a, M, K, b, N, out);
  if (gemmF32Simd(a, M, K, b, N, out)) return out;
  return gemmF32Js(a, M, K, b, N, out);
}

/** {@link gemmF32} in plain JavaScript (the definition the kernel matches). */
export function gemmF32Js(a: Float32Array, M: number, K: number, b: Float32Array, N: number, out: Float32Array = new Float32Array(M * N)): Float32Array {
  checkShapes(a, M, K, b, N, out);
  const f = Math.fround;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0, ao = i * K, bo = j * K; k < K; k++) s = f(s + f(a[ao + k]! * b[bo + k]!));
      out[i * N + j] = s;
    }
  }
  return out;
}

function checkShapes(a: ArrayLike<number>, M: number, K: number, b: ArrayLike<number>, N: number, out: Float32Array | Float64Array): void {
  if (a.length < M * K) throw new RangeError(`gemmNT: A has ${a.length} values, expected ${M}·${K}`);
  if (b.length < N * K) throw new RangeError(`gemmNT: B has ${b.length} values, expected ${N}·${K}`);
  if (out.length < M * N) throw new RangeError(`gemmNT: out has ${out.length} values, expected ${M}·${N}`);
}

/**
 * {@link gemmNT} in plain JavaScript (the definition the kernel matches): outputs in 4 × 4
 * tiles (16 accumulators in registers, each input value loaded once per tile), about 8× the
 * textbook triple loop in V8.
 */
export function gemmNTJs(a: ArrayLike<number>, M: number, K: number, b: ArrayLike<number>, N: number, out: Float32Array | Float64Array = new Float32Array(M * N)): Float32Array | Float64Array {
  checkShapes(a, M, K, b, N, out);
  const M4 = M - (M % 4);
  const N4 = N - (N % 4);
  for (let i = 0; i < M4; i += 4) {
    const a0 = i * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    for (let j = 0; j < N4; j += 4) {
      const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = a[a0 + k]!, x1 = a[a1 + k]!, x2 = a[a2 + k]!, x3 = a[a3 + k]!;
        const y0 = b[b0 + k]!, y1 = b[b1 + k]!, y2 = b[b2 + k]!, y3 = b[b3 + k]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
      }
      const o0 = i * N + j, o1 = o0 + N, o2 = o1 + N, o3 = o2 + N;
      out[o0] = s00; out[o0 + 1] = s01; out[o0 + 2] = s02; out[o0 + 3] = s03;
      out[o1] = s10; out[o1 + 1] = s11; out[o1 + 2] = s12; out[o1 + 3] = s13;
      out[o2] = s20; out[o2 + 1] = s21; out[o2 + 2] = s22; out[o2 + 3] = s23;
      out[o3] = s30; out[o3 + 1] = s31; out[o3 + 2] = s32; out[o3 + 3] = s33;
    }
    for (let j = N4; j < N; j++) for (let r = i; r < i + 4; r++) out[r * N + j] = dot(a, r * K, b, j * K, K);
  }
  for (let i = M4; i < M; i++) for (let j = 0; j < N; j++) out[i * N + j] = dot(a, i * K, b, j * K, K);
  return out;
}

function dot(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, K: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += a[ao + k]! * b[bo + k]!;
  return s;
}

/** Transpose of a row-major `[R, C]` matrix. */
export function transpose(x: ArrayLike<number>, R: number, C: number, out: Float32Array | Float64Array = new Float32Array(R * C)): Float32Array | Float64Array {
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = x[r * C + c]!;
  return out;
}
