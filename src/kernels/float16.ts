/**
 * IEEE binary16 (fp16) and bfloat16 (bf16) conversions to and from float32.
 *
 * ONNX stores FLOAT16 and BFLOAT16 tensors as raw 16-bit patterns, and Node 20 has no
 * Float16Array, so both directions work on bit patterns held in `number`s / `Uint16Array`s.
 * Narrowing rounds to nearest, ties to even (what numpy, onnx.numpy_helper and the hardware
 * do); it produces subnormals, overflows to ±inf and keeps NaN a (quiet) NaN.
 */

// Scratch views to reinterpret one float32 as its bits without allocating per call.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** fp32 bit pattern → fp16 bit pattern, round to nearest even. */
function floatBitsToHalf(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) {
    // Keep the top payload bits and force the quiet bit so a NaN never truncates to inf.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero). Below half the smallest subnormal (2^-25) everything
    // rounds to zero; exactly 2^-25 is a tie and rounds to the even value, zero.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const q = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry out of the subnormal range yields 0x400, the smallest normal: still correct.
    return sign | (rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q);
  }
  const h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry may ripple into the exponent (and up to inf), which is the correctly rounded result.
  return rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1) ? h + 1 : h;
}

/** fp16 bit pattern → fp32 bit pattern (exact; NaN payloads preserved). */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal fp16 values are normal in fp32: shift the leading one into the implicit bit.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** fp32 bit pattern → bf16 bit pattern, round to nearest even. */
function floatBitsToBfloat(b: number): number {
  // Quiet the NaN: truncating a NaN whose payload sits in the low 16 bits would give inf.
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x0040) & 0xffff;
  const bias = 0x7fff + ((b >>> 16) & 1);
  return ((b + bias) >>> 16) & 0xffff;
}

/**
 * Converts a number to the nearest fp16 value, returned as its 16-bit pattern.
 * The input is first rounded to float32 (this is a float32 → fp16 conversion).
 */
export function float32ToFloat16Bits(x: number): number {
  scratchF32[0] = x;
  return floatBitsToHalf(scratchU32[0]);
}

/** Decodes a 16-bit fp16 pattern to its (exactly representable) value. */
export function float16BitsToFloat32(h: number): number {
  scratchU32[0] = halfToFloatBits(h & 0xffff);
  return scratchF32[0];
}

/**
 * Converts a number to the nearest bf16 value, returned as its 16-bit pattern.
 * The input is first rounded to float32.
 */
export function float32ToBfloat16Bits(x: number): number {
  scratchF32[0] = x;
  return floatBitsToBfloat(scratchU32[0]);
}

/** Decodes a 16-bit bf16 pattern: bf16 is the top half of a float32. */
export function bfloat16BitsToFloat32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

/** Converts a float32 array to fp16 bit patterns (round to nearest even). */
export function float32ToFloat16Array(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatBitsToHalf(bits[i]);
  return out;
}

/** Converts fp16 bit patterns to float32 (exact; NaN payloads preserved). */
export function float16ToFloat32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = halfToFloatBits(src[i]);
  return out;
}

/** Converts a float32 array to bf16 bit patterns (round to nearest even). */
export function float32ToBfloat16Array(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatBitsToBfloat(bits[i]);
  return out;
}

/** Converts bf16 bit patterns to float32 (exact). */
export function bfloat16ToFloat32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
