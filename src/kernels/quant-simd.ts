/**
 * The weight quantizer's two passes over a row (`./row-groups.ts`) as WebAssembly SIMD
 * kernels, four values at a time. They compute bit for bit what the JavaScript loops of
 * row-groups.ts compute (those stay the reference, and the fallback where WebAssembly SIMD is
 * missing); the tail of a row past a multiple of four is left to the caller's JavaScript.
 *
 * - `rowMinMax(src, n4, lo, hi) → Σ x²` (`rowMinMaxOnly`: the same without Σ x²): per-column running min/max of a float32 row into
 *   float32 `lo`/`hi` (`f32x4.pmin`/`pmax` are JavaScript's `v < lo ? v : lo`: NaN never
 *   enters, a signed zero keeps the first seen), and the row's sum of squares in float64,
 *   added in element order as `channelNorms` does (the row norms decide S2's outliers, so they
 *   must not move).
 * - `quantRow{S,U}(src, n4, scales, zeroPoints, out, qmin, qmax, sums)`: QuantizeLinear of a
 *   float32 row with per-column float32 scales and zero points — the float32 quotient
 *   (`f32x4.div` is correctly rounded, as `Math.fround(x / s)`), rounded half to even
 *   (`f32x4.nearest`), plus the zero point, clamped (`pmax`/`pmin`: JavaScript's ternaries,
 *   NaN included) — stored as int8 (S) or uint8 (U); then DequantizeLinear's error: the
 *   float32 product `(q − z)·s` minus x, squared and summed in float64 with Σ x², in four
 *   lanes (element n of a row into lane n mod 4; `sums` holds the lanes, [err × 4, x² × 4]).
 *   Where `|round(x/s)| ≥ 2^24` the float32 sum with z may round, but such values are clamped
 *   either way.
 */
import { type Instr, instantiate, T } from './wasm-asm.ts';

// ---- rowMinMax(src, n4, lo, hi) -> f64 -----------------------------------------------------
const M = { src: 0, n4: 1, lo: 2, hi: 3, i: 4, end: 5, v: 6, acc: 7, t: 8 };

/** The body of rowMinMax, with the row's Σ x² or (for a pass that does not need the norms) without. */
const minMaxBody = (withNorm: boolean): Instr[] => [
  ['local.get', M.n4], ['i32.const', 2], 'i32.shl', ['local.set', M.end],
  ['block'], ['loop'],
  ['local.get', M.i], ['local.get', M.end], 'i32.ge_u', ['br_if', 1],
  ['local.get', M.src], ['local.get', M.i], 'i32.add', ['v128.load', 0], ['local.set', M.v],
  ['local.get', M.lo], ['local.get', M.i], 'i32.add',
  ['local.get', M.lo], ['local.get', M.i], 'i32.add', ['v128.load', 0], ['local.get', M.v], 'f32x4.pmin', ['v128.store', 0],
  ['local.get', M.hi], ['local.get', M.i], 'i32.add',
  ['local.get', M.hi], ['local.get', M.i], 'i32.add', ['v128.load', 0], ['local.get', M.v], 'f32x4.pmax', ['v128.store', 0],
  // Σ x² in element order: one float64 chain, as the JavaScript loop.
  ...(withNorm ? [0, 1, 2, 3] : []).flatMap((lane): Instr[] => [
    ['local.get', M.v], ['f32x4.extract_lane', lane], 'f64.promote_f32', ['local.tee', M.t], ['local.get', M.t], 'f64.mul',
    ['local.get', M.acc], 'f64.add', ['local.set', M.acc],
  ]),
  ['local.get', M.i], ['i32.const', 16], 'i32.add', ['local.set', M.i],
  ['br', 0],
  'end', 'end',
  ['local.get', M.acc],
];

// ---- quantRow(src, n4, scales, zeroPoints, out, qmin, qmax, sums) --------------------------
const Q = { src: 0, n4: 1, s: 2, z: 3, out: 4, qmin: 5, qmax: 6, sums: 7, i: 8, end: 9, o: 10, x: 11, sv: 12, zv: 13, q: 14, lo: 15, hi: 16, e0: 17, e1: 18, n0: 19, n1: 20, d: 21, xd: 22 };
/** Lanes 2 and 3 of a v128 moved to lanes 0 and 1 (for `f64x2.promote_low_f32x4`). */
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];

/** `acc += d·d` and `accX += xd·xd` for the float32 lanes of `deq` and x taken by `half`. */
const errorPair = (high: boolean, accE: number, accN: number): Instr[] => {
  const promote = (local: number): Instr[] => (high ? [['local.get', local], ['local.get', local], ['i8x16.shuffle', ...HIGH_HALF], 'f64x2.promote_low_f32x4'] : [['local.get', local], 'f64x2.promote_low_f32x4']);
  return [
    ...promote(Q.q), ...promote(Q.x), ['local.tee', Q.xd], 'f64x2.sub', ['local.tee', Q.d], ['local.get', Q.d], 'f64x2.mul',
    ['local.get', accE], 'f64x2.add', ['local.set', accE],
    ['local.get', Q.xd], ['local.get', Q.xd], 'f64x2.mul', ['local.get', accN], 'f64x2.add', ['local.set', accN],
  ];
};

const quantBody = (unsigned: boolean): Instr[] => [
  ['local.get', Q.n4], ['i32.const', 2], 'i32.shl', ['local.set', Q.end],
  ['local.get', Q.qmin], 'f32x4.splat', ['local.set', Q.lo],
  ['local.get', Q.qmax], 'f32x4.splat', ['local.set', Q.hi],
  ...[Q.e0, Q.e1, Q.n0, Q.n1].flatMap((acc, j): Instr[] => [['local.get', Q.sums], ['v128.load', 16 * j], ['local.set', acc]]),
  ['block'], ['loop'],
  ['local.get', Q.i], ['local.get', Q.end], 'i32.ge_u', ['br_if', 1],
  ['local.get', Q.src], ['local.get', Q.i], 'i32.add', ['v128.load', 0], ['local.set', Q.x],
  ['local.get', Q.s], ['local.get', Q.i], 'i32.add', ['v128.load', 0], ['local.set', Q.sv],
  ['local.get', Q.z], ['local.get', Q.i], 'i32.add', ['v128.load', 0], ['local.set', Q.zv],
  ['local.get', Q.x], ['local.get', Q.sv], 'f32x4.div', 'f32x4.nearest', ['local.get', Q.zv], 'f32x4.add',
  ['local.get', Q.lo], 'f32x4.pmax', ['local.get', Q.hi], 'f32x4.pmin', ['local.set', Q.q],
  // Four values out as four bytes (they are in range: the narrowing does not saturate).
  ['local.get', Q.out], ['local.get', Q.o], 'i32.add',
  ['local.get', Q.q], 'i32x4.trunc_sat_f32x4_s', ['local.tee', Q.d], ['local.get', Q.d], 'i16x8.narrow_i32x4_s', ['local.tee', Q.d], ['local.get', Q.d],
  unsigned ? 'i8x16.narrow_i16x8_u' : 'i8x16.narrow_i16x8_s',
  ['v128.store32_lane', 0, 0],
  // DequantizeLinear: (q − z)·s in float32 (q − z is exact), kept in q.
  ['local.get', Q.q], ['local.get', Q.zv], 'f32x4.sub', ['local.get', Q.sv], 'f32x4.mul', ['local.set', Q.q],
  ...errorPair(false, Q.e0, Q.n0),
  ...errorPair(true, Q.e1, Q.n1),
  ['local.get', Q.i], ['i32.const', 16], 'i32.add', ['local.set', Q.i],
  ['local.get', Q.o], ['i32.const', 4], 'i32.add', ['local.set', Q.o],
  ['br', 0],
  'end', 'end',
  ...[Q.e0, Q.e1, Q.n0, Q.n1].flatMap((acc, j): Instr[] => [['local.get', Q.sums], ['local.get', acc], ['v128.store', 16 * j]]),
];

/** The instantiated kernels. */
export interface QuantKernels {
  memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  rowMinMax: (src: number, n4: number, lo: number, hi: number) => number;
  /** rowMinMax without the sum of squares (returns 0). */
  rowMinMaxOnly: (src: number, n4: number, lo: number, hi: number) => number;
  quantRowS: (src: number, n4: number, s: number, z: number, out: number, qmin: number, qmax: number, sums: number) => void;
  quantRowU: (src: number, n4: number, s: number, z: number, out: number, qmin: number, qmax: number, sums: number) => void;
}

let kernels: QuantKernels | null | undefined;
let disabled = false;

/** The kernels, or null where WebAssembly SIMD is missing (or {@link useQuantSimd}(false) was called). */
export function quantKernels(): QuantKernels | null {
  if (disabled) return null;
  if (kernels !== undefined) return kernels;
  kernels = null;
  try {
    const minMax = { params: [T.i32, T.i32, T.i32, T.i32], results: [T.f64], locals: [T.i32, T.i32, T.v128, T.f64, T.f64] };
    const quant = { params: [T.i32, T.i32, T.i32, T.i32, T.i32, T.f32, T.f32, T.i32], results: [], locals: [T.i32, T.i32, T.i32, ...Array(12).fill(T.v128)] };
    const e = instantiate([
      { name: 'rowMinMax', ...minMax, body: minMaxBody(true) },
      { name: 'rowMinMaxOnly', ...minMax, body: minMaxBody(false) },
      { name: 'quantRowS', ...quant, body: quantBody(false) },
      { name: 'quantRowU', ...quant, body: quantBody(true) },
    ]);
    if (e) kernels = e as unknown as QuantKernels;
  } catch {
    kernels = null;
  }
  return kernels;
}

/** Turns the kernels off (false) or back on: tests compare them with the JavaScript loops. */
export function useQuantSimd(on: boolean): void {
  disabled = !on;
}

/** The kernels' memory as a buffer of at least `bytes` (views of it must be made after this call). */
export function kernelMemory(k: QuantKernels, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (have < bytes) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}
