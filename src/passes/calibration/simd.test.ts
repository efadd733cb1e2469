// The WebAssembly kernels of calibration against their JavaScript definitions, bit for
// bit (NaN, signed zeros, infinities, ties, shapes with remainders), and the assembler's checks.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../kernels/random.ts';
import type { ActivationQuant } from '../quant/plan.ts';
import { gemm32, gemmF32, gemmF32Js, gemmNT, gemmNTJs } from './row-gemm.ts';
import { fakeQuant, fakeQuantJs } from './search.ts';
import { scanRows, scanRowsJs, simdAvailable } from './simd.ts';
import { assemble, T } from '../../kernels/wasm-asm.ts';

const random = seededRandom(42);
const values = (n: number, scale = 4) => Float32Array.from({ length: n }, () => (random.next() - 0.5) * scale);
const sameBits = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

describe('WebAssembly SIMD kernels of calibration', () => {
  it('are available on this Node', () => {
    expect(simdAvailable()).toBe(true);
  });

  it('scanRows: the per-channel ranges and row magnitudes of the JavaScript loop', () => {
    for (const K of [1, 3, 4, 7, 48, 64, 172]) {
      const data = values(37 * K);
      data.set([NaN, -0, 0, Infinity, -Infinity, -0].slice(0, data.length), 0);
      if (data.length > 2 * K) data.fill(-0, K, 2 * K);
      const js = { min: new Float32Array(K).fill(Infinity), max: new Float32Array(K).fill(-Infinity), rm: new Float32Array(37) };
      const simd = { min: Float32Array.from(js.min), max: Float32Array.from(js.max), rm: new Float32Array(37) };
      for (let pass = 0; pass < 2; pass++) {
        scanRowsJs(data, K, js.min, js.max, js.rm);
        scanRows(data, K, simd.min, simd.max, simd.rm);
        expect(sameBits(simd.min, js.min)).toBe(true);
        expect(sameBits(simd.max, js.max)).toBe(true);
        expect(sameBits(simd.rm, js.rm)).toBe(true);
      }
    }
  });

  it('scanRows: the same through several blocks of rows', () => {
    const K = 64;
    const rows = 9001;
    const data = values(rows * K);
    const js = { min: new Float32Array(K).fill(Infinity), max: new Float32Array(K).fill(-Infinity), rm: new Float32Array(rows) };
    const simd = { min: Float32Array.from(js.min), max: Float32Array.from(js.max), rm: new Float32Array(rows) };
    scanRowsJs(data, K, js.min, js.max, js.rm);
    scanRows(data, K, simd.min, simd.max, simd.rm);
    expect(sameBits(simd.min, js.min) && sameBits(simd.max, js.max) && sameBits(simd.rm, js.rm)).toBe(true);
  });

  it('gemmNT: every output the same float64 sum as the JavaScript tiles', () => {
    // The last two cross blocks of B columns (with a remainder) and of A rows.
    for (const [M, K, N] of [[1, 1, 1], [5, 3, 7], [33, 64, 64], [17, 224, 9], [64, 32, 256], [3001, 64, 62], [37, 3000, 130], [301, 2048, 70]] as const) {
      const a = values(M * K, 10);
      const b = values(N * K, 10);
      expect(sameBits(gemmNT(a, M, K, b, N), gemmNTJs(a, M, K, b, N))).toBe(true);
      const a64 = Float64Array.from(a, (v) => v / 3);
      expect(sameBits(gemmNT(a64, M, K, b, N, new Float64Array(M * N)), gemmNTJs(a64, M, K, b, N, new Float64Array(M * N)))).toBe(true);
      // Float32 outputs rounded by the kernel; a float64 B packed by the JavaScript loop.
      const b64 = Float64Array.from(b, (v) => v / 7);
      expect(sameBits(gemmNT(a64, M, K, b64, N), gemmNTJs(a64, M, K, b64, N))).toBe(true);
      expect(sameBits(gemmNT(a, M, K, b64, N, new Float64Array(M * N)), gemmNTJs(a, M, K, b64, N, new Float64Array(M * N)))).toBe(true);
    }
  });

  it('gemmNT and gemmF32: NaN, infinities and signed zeros as the JavaScript loops', () => {
    const [M, K, N] = [9, 6, 11];
    const a = values(M * K);
    const b = values(N * K);
    a.set([NaN, -0, Infinity, -Infinity, 0, -0]);
    b.set([-0, -0, 1e38, 1e38, -0, 0]);
    expect(sameBits(gemmNT(a, M, K, b, N), gemmNTJs(a, M, K, b, N))).toBe(true);
    expect(sameBits(gemmF32(a, M, K, b, N), gemmF32Js(a, M, K, b, N))).toBe(true);
  });

  it('gemmF32: every output the same float32 sum as the JavaScript loop, within 1e-5 of the float64 one', () => {
    // Shapes with remainders of the 4 × 8 tiles, and ones crossing blocks of B columns and A rows.
    for (const [M, K, N] of [[1, 1, 1], [5, 3, 7], [33, 64, 64], [17, 224, 9], [64, 32, 256], [3001, 64, 62], [37, 3000, 130], [301, 2048, 70]] as const) {
      const a = values(M * K, 10);
      const b = values(N * K, 10);
      const f32 = gemmF32(a, M, K, b, N);
      expect(sameBits(f32, gemmF32Js(a, M, K, b, N))).toBe(true);
      // The rounding is relative to the sum of |products|, not to the (cancelling) sum.
      const f64 = gemm32(a, M, K, b, N);
      const mags = gemm32(Float32Array.from(a, Math.abs), M, K, Float32Array.from(b, Math.abs), N);
      let worst = 0;
      for (let i = 0; i < f32.length; i++) worst = Math.max(worst, Math.abs(f32[i]! - f64[i]!) / mags[i]!);
      expect(worst).toBeLessThan(1e-5);
    }
  });

  it('fakeQuant: the JavaScript quantizer, ties to even and clipping included', () => {
    const s = Math.fround(0.0236);
    const x = values(300_001, 12);
    x.set([NaN, -0, Infinity, -Infinity, 1e30, -1e-30]);
    for (let i = 10; i < 1000; i++) x[i] = Math.fround((Math.floor(random.next() * 200) - 100 + 0.5) * s);
    const aqs: ActivationQuant[] = [
      { type: 'uint8', scale: 0.0236, zeroPoint: 127, range: [-3, 3] },
      { type: 'uint8', scale: 0.0136, zeroPoint: 128, clip: [-1.7, 1.8], range: [-1.7, 1.8] },
      { type: 'int8', scale: 0.03, zeroPoint: 0, range: [-3.8, 3.8] },
    ];
    for (const aq of aqs) expect(sameBits(fakeQuant(x, aq), fakeQuantJs(x, aq))).toBe(true);
  });

  it('wasm-asm refuses unknown instructions and wrong immediates', () => {
    const fn = (body: never[]) => assemble([{ name: 'f', params: [T.i32], results: [], locals: [], body }]);
    expect(() => fn(['i32.frobnicate'] as never[])).toThrow(/unknown instruction 'i32.frobnicate'/);
    expect(() => fn([['local.get']] as never[])).toThrow(/takes 1 immediate/);
  });
});
