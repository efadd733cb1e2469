import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32, bfloat16ToFloat32Array, float16BitsToFloat32, float16ToFloat32Array,
  float32ToBfloat16Array, float32ToBfloat16Bits, float32ToFloat16Array, float32ToFloat16Bits,
} from '../../src/kernels/float16.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/** Straightforward float64 decoding of an fp16 pattern. */
function refDecodeHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Ascending values of the positive finite fp16 patterns 0x0000…0x7bff (monotone in the pattern). */
const POSITIVE_HALVES = Array.from({ length: 0x7c00 }, (_, h) => refDecodeHalf(h));

/** Nearest fp16 by search over all values, ties to the even pattern; ≥ 65520 overflows. */
function refEncodeHalf(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE_HALVES[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff || POSITIVE_HALVES[lo] === a) return sign | lo;
  const dLo = a - POSITIVE_HALVES[lo];
  const dHi = POSITIVE_HALVES[lo + 1] - a;
  if (dLo < dHi) return sign | lo;
  if (dHi < dLo) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

/** Nearest bf16 of a float32 by comparing the two bf16 neighbours in float64, ties to even. */
function refEncodeBfloat(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const down = u >>> 16;
  const downValue = bfloat16BitsToFloat32(down);
  if (downValue === f[0]) return down;
  const upValue = bfloat16BitsToFloat32(down + 1);
  const dDown = Math.abs(f[0] - downValue);
  const dUp = Math.abs(upValue - f[0]);
  if (dDown < dUp) return down;
  if (dUp < dDown) return down + 1;
  return down % 2 === 0 ? down : down + 1;
}

describe('fp16', () => {
  it('decodes every pattern like the float64 reference', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const ref = refDecodeHalf(h);
      const got = float16BitsToFloat32(h);
      if (!(Number.isNaN(ref) ? Number.isNaN(got) : Object.is(got, ref))) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('round-trips every non-NaN pattern', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if (((h >> 10) & 0x1f) === 0x1f && (h & 0x3ff) !== 0) continue;
      if (float32ToFloat16Bits(float16BitsToFloat32(h)) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('handles the edge cases', () => {
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // tie above the max rounds to inf (even)
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(0)).toBe(0);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie → even (zero)
    expect(float32ToFloat16Bits(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 → 2
    expect(float32ToFloat16Bits(-(2 ** -26))).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -14)).toBe(0x0400);
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -24)).toBe(0x03ff);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even mantissa
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    const nan = float32ToFloat16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(float16BitsToFloat32(nan)).toBeNaN();
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
  });

  it('rounds random float32 values like the exhaustive reference', () => {
    const rng = seededRandom(1);
    const x = new Float32Array(20000);
    for (let i = 0; i < x.length; i++) x[i] = (rng.next() - 0.5) * 2 ** (rng.int(50) - 30);
    const got = float32ToFloat16Array(x);
    const back = float16ToFloat32Array(got);
    const bad: number[] = [];
    for (let i = 0; i < x.length; i++) {
      const ok = got[i] === refEncodeHalf(x[i]) && float32ToFloat16Bits(x[i]) === got[i] && back[i] === refDecodeHalf(got[i]);
      if (!ok) bad.push(x[i]);
    }
    expect(bad).toEqual([]);
  });

  it('keeps NaN payloads on the way up', () => {
    const back = float16ToFloat32Array(Uint16Array.of(0x7e01));
    expect(new Uint32Array(back.buffer)[0]).toBe(0x7fc02000);
  });
});

describe('bf16', () => {
  it('rounds to nearest even', () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(float32ToBfloat16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(float32ToBfloat16Bits(-2)).toBe(0xc000);
    expect(float32ToBfloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // overflows to inf
    expect(float32ToBfloat16Bits(-0)).toBe(0x8000);
    expect(float32ToBfloat16Bits(2 ** -133)).toBe(0x0001); // float32 subnormal, exact in bf16
    expect(bfloat16BitsToFloat32(0x3f81)).toBe(1 + 2 ** -7);
  });

  it('never turns a NaN into inf', () => {
    const f = new Float32Array(1);
    new Uint32Array(f.buffer)[0] = 0x7f800001;
    const h = float32ToBfloat16Array(f)[0];
    expect(bfloat16BitsToFloat32(h)).toBeNaN();
    expect(float32ToBfloat16Bits(NaN) & 0x7f80).toBe(0x7f80);
  });

  it('matches the neighbour-comparison reference on random bit patterns', () => {
    const rng = seededRandom(2);
    const bits = new Uint32Array(20000);
    for (let i = 0; i < bits.length; i++) {
      let b = (rng.int(0x10000) << 16) | rng.int(0x10000);
      if (((b >>> 23) & 0xff) === 0xff) b &= 0xbfffffff; // keep finite
      bits[i] = b;
    }
    const x = new Float32Array(bits.buffer);
    const got = float32ToBfloat16Array(x);
    const back = bfloat16ToFloat32Array(got);
    const bad: number[] = [];
    for (let i = 0; i < x.length; i++) {
      const ok = got[i] === refEncodeBfloat(x[i]) && float32ToBfloat16Bits(x[i]) === got[i] && back[i] === bfloat16BitsToFloat32(got[i]);
      if (!ok) bad.push(bits[i]);
    }
    expect(bad).toEqual([]);
  });
});
