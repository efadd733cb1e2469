/**
 * Uniform (affine) quantization with the exact arithmetic of ONNX QuantizeLinear /
 * DequantizeLinear on a float32 scale:
 *   q = saturate(round_half_even(x / s) + z),   x̂ = (q − z)·s,
 * both evaluated in float32. Quotients and products of two float32 values are computed in
 * float64 and rounded once with Math.fround, which gives the correctly rounded float32 result
 * (float64 has more than 2·24 + 2 bits), i.e. bit-identical to onnxruntime's float32 kernels.
 *
 * Layouts: per tensor; per output channel of a row-major `[K, N]` weight (axis = 1, one scale
 * per column); blocked along K (opset-21 `block_size` with axis = 0: rows
 * `[b·B, (b+1)·B)` of column n share `scales[b·N + n]`, scales shaped `[ceil(K/B), N]`).
 * 4-bit results hold one value per byte; `packInt4` (re-exported from `./int4.ts`) packs them.
 */

export { packInt4, unpackInt4 } from './int4.ts';

/**
 * Integer types this library emits. `int7` is int8 storage holding values in [−64, 63]
 * (onnxruntime's `reduce_range`): u8×s8 kernels on AVX2 without VNNI add pairs of products
 * in int16, which saturates on full-range int8 weights but not on 7-bit ones.
 */
export type QuantType = 'int8' | 'int7' | 'uint8' | 'int4' | 'uint4';

/** Container of one quantized value per element: signed types → Int8Array, unsigned → Uint8Array. */
export type QuantArray<T extends QuantType = QuantType> = T extends 'int8' | 'int7' | 'int4' ? Int8Array : Uint8Array;

/** Integer range and width of a {@link QuantType}. */
export interface QuantRange {
  qmin: number;
  qmax: number;
  bits: number;
  signed: boolean;
}

const RANGES: Record<QuantType, QuantRange> = {
  int8: { qmin: -128, qmax: 127, bits: 8, signed: true },
  int7: { qmin: -64, qmax: 63, bits: 7, signed: true },
  uint8: { qmin: 0, qmax: 255, bits: 8, signed: false },
  int4: { qmin: -8, qmax: 7, bits: 4, signed: true },
  uint4: { qmin: 0, qmax: 15, bits: 4, signed: false },
};

/** The integer range of a quantized type. */
export function quantRange(type: QuantType): QuantRange {
  return RANGES[type];
}

/** Allocates a zero-filled container of the right signedness for `type`. */
export function newQuantArray<T extends QuantType>(type: T, length: number): QuantArray<T> {
  return (RANGES[type].signed ? new Int8Array(length) : new Uint8Array(length)) as QuantArray<T>;
}

/**
 * Rounds to the nearest integer, ties to even (`std::nearbyint` in the default rounding mode,
 * as QuantizeLinear specifies). `Math.round` rounds ties up and is wrong for −0.5, 0.5, 2.5….
 */
export function roundHalfToEven(x: number): number {
  // Adding and subtracting 1.5·2^52 rounds to an integer in the FPU's default mode (ties to
  // even) whenever |x| < 2^51: the sum then lies in [2^52, 2^53), where the ulp is 1.
  if (x > -ROUND_LIMIT && x < ROUND_LIMIT) return x + ROUND_MAGIC - ROUND_MAGIC;
  const f = Math.floor(x);
  // Exact: x and floor(x) share the binade's ulp, so the fraction has no rounding error.
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** 1.5·2^52, see {@link roundHalfToEven}. */
export const ROUND_MAGIC = 6755399441055744;
const ROUND_LIMIT = 2 ** 51;

/** A scale (float32 value) and an integer zero point. */
export interface ScaleZeroPoint {
  scale: number;
  zeroPoint: number;
}

/** float32's smallest normal: below it a scale would make x/s overflow or lose all precision. */
const FLOAT32_TINY = 1.1754943508222875e-38;

/**
 * Scale and zero point for the real range `[min, max]`, extended to include 0 so that 0 is
 * exactly representable (METHOD.md "Uniform quantization").
 * - symmetric, signed: `z = 0`, `s = max|x| / qmax`;
 * - symmetric, unsigned: `z = 2^(b−1)` (128 / 8), `s = max|x| / (qmax − z)` — the signed grid
 *   shifted by z, so it converts losslessly to and from the signed form;
 * - asymmetric: `s = (max − min)/(qmax − qmin)`, `z = clamp(round(qmin − min/s))`.
 *
 * The scale is rounded to float32 (it is stored as a FLOAT initializer) and z is derived from
 * that float32 scale. A scale below float32's smallest normal (a zero range) is replaced by
 * 1.0 with the neutral zero point, as onnxruntime's `compute_scale_zp` does: every value then
 * quantizes to z and dequantizes to 0.
 */
export function computeScaleZeroPoint(min: number, max: number, type: QuantType, symmetric: boolean): ScaleZeroPoint {
  if (!(min <= max)) throw new RangeError(`computeScaleZeroPoint: need min ≤ max, got [${min}, ${max}]`);
  const { qmin, qmax, bits, signed } = RANGES[type];
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  if (symmetric) {
    const z = signed ? 0 : 2 ** (bits - 1);
    const scale = Math.fround(Math.max(-lo, hi) / (qmax - z));
    return scale < FLOAT32_TINY ? { scale: 1, zeroPoint: z } : { scale, zeroPoint: z };
  }
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  if (scale < FLOAT32_TINY) return { scale: 1, zeroPoint: 0 };
  const z = roundHalfToEven(qmin - lo / scale);
  return { scale, zeroPoint: Math.min(qmax, Math.max(qmin, z)) };
}

/**
 * QuantizeLinear on one value: `clamp(round_half_even(fp32(x / s)) + z, qmin, qmax)`.
 * `x` and `scale` are rounded to float32 first, as they would be in the model.
 */
export function quantizeValue(x: number, scale: number, zeroPoint: number, type: QuantType): number {
  const { qmin, qmax } = RANGES[type];
  const q = roundHalfToEven(Math.fround(Math.fround(x) / Math.fround(scale))) + zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** DequantizeLinear on one value: `fp32((q − z)·s)`. */
export function dequantizeValue(q: number, scale: number, zeroPoint: number): number {
  return Math.fround((q - zeroPoint) * Math.fround(scale));
}

/** QuantizeLinear with one scale and zero point for the whole tensor. */
export function quantizePerTensor<T extends QuantType>(x: Float32Array, scale: number, zeroPoint: number, type: T): QuantArray<T> {
  const { qmin, qmax } = RANGES[type];
  const s = Math.fround(scale);
  const out = newQuantArray(type, x.length);
  for (let i = 0; i < x.length; i++) {
    // Divide (not multiply by 1/s) as QuantizeLinear does: the reciprocal's rounding moves ties.
    const q = roundHalfToEven(Math.fround(x[i] / s)) + zeroPoint;
    out[i] = q < qmin ? qmin : q > qmax ? qmax : q;
  }
  return out;
}

/** DequantizeLinear with one scale and zero point for the whole tensor. */
export function dequantizePerTensor(q: ArrayLike<number>, scale: number, zeroPoint: number): Float32Array {
  const s = Math.fround(scale);
  const out = new Float32Array(q.length);
  // The Float32Array store performs the single float32 rounding of the product.
  for (let i = 0; i < q.length; i++) out[i] = (q[i] - zeroPoint) * s;
  return out;
}

/**
 * QuantizeLinear of a row-major `[K, N]` weight with one scale / zero point per column
 * (axis = 1).
 * @param zeroPoints N zero points, or null for all zeros
 */
export function quantizePerChannel<T extends QuantType>(
  w: Float32Array, K: number, N: number, scales: Float32Array, zeroPoints: ArrayLike<number> | null, type: T,
): QuantArray<T> {
  return quantizeBlocked(w, K, N, K, scales, zeroPoints, type);
}

/** DequantizeLinear of a per-column quantized `[K, N]` weight (axis = 1). */
export function dequantizePerChannel(
  q: ArrayLike<number>, K: number, N: number, scales: Float32Array, zeroPoints: ArrayLike<number> | null,
): Float32Array {
  return dequantizeBlocked(q, K, N, K, scales, zeroPoints);
}

function checkBlocked(len: number, K: number, N: number, blockSize: number, scales: ArrayLike<number>, zp: ArrayLike<number> | null): void {
  if (len !== K * N) throw new RangeError(`quantize: length ${len} is not K·N = ${K}·${N}`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`quantize: bad block size ${blockSize}`);
  const expected = Math.ceil(K / blockSize) * N;
  if (scales.length !== expected) throw new RangeError(`quantize: ${scales.length} scales, expected ${expected}`);
  if (zp !== null && zp.length !== expected) throw new RangeError(`quantize: ${zp.length} zero points, expected ${expected}`);
}

/**
 * Blocked QuantizeLinear (opset 21, axis = 0) of a row-major `[K, N]` tensor: element (k, n)
 * uses `scales[floor(k/B)·N + n]`. The last block may be short.
 * @param zeroPoints `[ceil(K/B), N]` zero points, or null for `defaultZeroPoint`
 * @param defaultZeroPoint zero point used when `zeroPoints` is null (default 0)
 */
export function quantizeBlocked<T extends QuantType>(
  w: Float32Array, K: number, N: number, blockSize: number, scales: Float32Array,
  zeroPoints: ArrayLike<number> | null, type: T, defaultZeroPoint = 0,
): QuantArray<T> {
  checkBlocked(w.length, K, N, blockSize, scales, zeroPoints);
  const { qmin, qmax } = RANGES[type];
  const out = newQuantArray(type, w.length);
  const zp = zeroPointsOf(zeroPoints, scales.length, defaultZeroPoint);
  for (let k = 0; k < K; k++) {
    const p = Math.floor(k / blockSize) * N;
    const row = k * N;
    for (let n = 0; n < N; n++) {
      // roundHalfToEven inlined: |q| ≥ 2^51 (where the trick is inexact) clamps the same way.
      const r = Math.fround(w[row + n] / scales[p + n]);
      const q = r + ROUND_MAGIC - ROUND_MAGIC + zp[p + n];
      out[row + n] = q < qmin ? qmin : q > qmax ? qmax : q;
    }
  }
  return out;
}

/** Zero points as one typed array (a monomorphic loop for the JIT). */
function zeroPointsOf(zeroPoints: ArrayLike<number> | null, n: number, fill: number): Int32Array | Float64Array {
  if (zeroPoints instanceof Int32Array) return zeroPoints;
  return zeroPoints === null ? new Int32Array(n).fill(fill) : Float64Array.from(zeroPoints);
}

/** Blocked DequantizeLinear (opset 21, axis = 0), the inverse layout of {@link quantizeBlocked}. */
export function dequantizeBlocked(
  q: ArrayLike<number>, K: number, N: number, blockSize: number, scales: Float32Array, zeroPoints: ArrayLike<number> | null,
): Float32Array {
  checkBlocked(q.length, K, N, blockSize, scales, zeroPoints);
  const out = new Float32Array(q.length);
  for (let k = 0; k < K; k++) {
    const p = Math.floor(k / blockSize) * N;
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const z = zeroPoints === null ? 0 : zeroPoints[p + n];
      out[row + n] = (q[row + n] - z) * scales[p + n];
    }
  }
  return out;
}

/** Per-column (or per-block) scales and zero points. */
export interface QuantParams {
  scales: Float32Array;
  zeroPoints: Int32Array;
}

/**
 * Min/max scales and zero points for blocks of `blockSize` rows of each column of a
 * row-major `[K, N]` tensor, shaped `[ceil(K/B), N]`. `blockSize = K` gives per-column params.
 */
export function computeParamsBlocked(w: Float32Array, K: number, N: number, blockSize: number, type: QuantType, symmetric: boolean): QuantParams {
  const blocks = Math.ceil(K / blockSize);
  checkBlocked(w.length, K, N, blockSize, new Float32Array(blocks * N), null);
  const lo = new Float64Array(blocks * N).fill(Infinity);
  const hi = new Float64Array(blocks * N).fill(-Infinity);
  for (let k = 0; k < K; k++) {
    const p = Math.floor(k / blockSize) * N;
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const v = w[row + n];
      if (v < lo[p + n]) lo[p + n] = v;
      if (v > hi[p + n]) hi[p + n] = v;
    }
  }
  const scales = new Float32Array(blocks * N);
  const zeroPoints = new Int32Array(blocks * N);
  for (let i = 0; i < blocks * N; i++) {
    const { scale, zeroPoint } = computeScaleZeroPoint(lo[i], hi[i], type, symmetric);
    scales[i] = scale;
    zeroPoints[i] = zeroPoint;
  }
  return { scales, zeroPoints };
}

/** Min/max scales and zero points per column (axis = 1) of a row-major `[K, N]` weight. */
export function computeParamsPerChannel(w: Float32Array, K: number, N: number, type: QuantType, symmetric: boolean): QuantParams {
  return computeParamsBlocked(w, K, N, K, type, symmetric);
}
