/**
 * Calibration's hot loops as WebAssembly SIMD kernels (assembled by wasm-asm.ts), each
 * computing bit for bit what its plain JavaScript twin computes (`scanRowsJs`, `gemmNTJs` in
 * row-gemm.ts, `fakeQuantJs` in search.ts — also the fallback where WebAssembly SIMD is
 * missing), so the statistics and calibration tables do not depend on which one ran:
 *
 * 0. `scanRows`: per-channel running min/max of a `[rows, K]` block and each row's max |x|,
 *    in one pass. `f32x4.pmin`/`pmax` are exactly JavaScript's `v < min ? v : min` (NaN
 *    never enters, a signed zero keeps the first seen), so the ranges do not change; the row
 *    maxima of non-negative values do not depend on the order they are taken in.
 * 1. `gemmNT`: `C = A·Bᵀ` accumulated in float64, each output a sequential sum over k of
 *    the products, as the scalar loop does; two output columns share one f64x2 lane pair
 *    (multiply, then add: no fused multiply-add), so every output is the same sum.
 * 2. `fakeQuantSimd`: the activation fake quantizer of the search, two values at a time in
 *    float64 (the division and roundings of the JavaScript loop, in the same order).
 * 3. The gemm's operand conversion (`pack4`) and its float32 output rounding:
 *    float32 operands go in and out as memory copies instead of JavaScript loops.
 * 4. `gemmF32`: `C = A·Bᵀ` accumulated in float32 (the search's products, see
 *    `gemmF32` in row-gemm.ts): four output columns per f32x4 lane group, each output a
 *    sequential sum over k of float32 products, multiply then add, as `Math.fround` does in
 *    the JavaScript loop; twice the lanes of the float64 kernel.
 *
 * One module instance and its memory serve them all; they work through blocks of about
 * 1 MiB, so the memory stays a few MiB whatever the tensors, and never grows with the number
 * of calibration samples.
 */
import { instantiate, T, type Instr } from '../../kernels/wasm-asm.ts';

// ---- scanRows(data, rows, K, min, max, rowMax): byte offsets into the memory -------------
const S = { p: 0, rows: 1, K: 2, min: 3, max: 4, rm: 5, r: 6, c: 7, K4b: 8, Kb: 9, m: 10, v: 11, ms: 12, s: 13, o: 14, a: 15 };

/** `ms = ms < x ? x : ms` with x in local `S.s` (JavaScript's `x > ms ? x : ms`). */
const keepLarger = (x: number): Instr[] => [['local.get', x], ['local.get', S.ms], ['local.get', S.ms], ['local.get', x], 'f32.lt', 'select', ['local.set', S.ms]];

const scanBody: Instr[] = [
  ['local.get', S.K], ['i32.const', 2], 'i32.shl', ['local.set', S.Kb],
  ['local.get', S.Kb], ['i32.const', -16], 'i32.and', ['local.set', S.K4b],
  ['block'], ['loop'],
  ['local.get', S.r], ['local.get', S.rows], 'i32.ge_u', ['br_if', 1],
  ['f32.const', 0], 'f32x4.splat', ['local.set', S.m],
  ['i32.const', 0], ['local.set', S.c],
  // Four channels at a time.
  ['block'], ['loop'],
  ['local.get', S.c], ['local.get', S.K4b], 'i32.ge_u', ['br_if', 1],
  ['local.get', S.p], ['local.get', S.c], 'i32.add', ['v128.load', 0], ['local.set', S.v],
  ['local.get', S.min], ['local.get', S.c], 'i32.add',
  ['local.get', S.min], ['local.get', S.c], 'i32.add', ['v128.load', 0], ['local.get', S.v], 'f32x4.pmin', ['v128.store', 0],
  ['local.get', S.max], ['local.get', S.c], 'i32.add',
  ['local.get', S.max], ['local.get', S.c], 'i32.add', ['v128.load', 0], ['local.get', S.v], 'f32x4.pmax', ['v128.store', 0],
  ['local.get', S.m], ['local.get', S.v], 'f32x4.abs', 'f32x4.pmax', ['local.set', S.m],
  ['local.get', S.c], ['i32.const', 16], 'i32.add', ['local.set', S.c],
  ['br', 0],
  'end', 'end',
  ['local.get', S.m], ['f32x4.extract_lane', 0], ['local.set', S.ms],
  ...[1, 2, 3].flatMap((lane): Instr[] => [['local.get', S.m], ['f32x4.extract_lane', lane], ['local.set', S.s], ...keepLarger(S.s)]),
  // The last K mod 4 channels, one at a time.
  ['block'], ['loop'],
  ['local.get', S.c], ['local.get', S.Kb], 'i32.ge_u', ['br_if', 1],
  ['local.get', S.p], ['local.get', S.c], 'i32.add', ['f32.load', 0], ['local.set', S.s],
  ['local.get', S.min], ['local.get', S.c], 'i32.add',
  ['local.get', S.min], ['local.get', S.c], 'i32.add', ['f32.load', 0], ['local.set', S.o],
  ['local.get', S.s], ['local.get', S.o], ['local.get', S.s], ['local.get', S.o], 'f32.lt', 'select', ['f32.store', 0],
  ['local.get', S.max], ['local.get', S.c], 'i32.add',
  ['local.get', S.max], ['local.get', S.c], 'i32.add', ['f32.load', 0], ['local.set', S.o],
  ['local.get', S.s], ['local.get', S.o], ['local.get', S.o], ['local.get', S.s], 'f32.lt', 'select', ['f32.store', 0],
  ['local.get', S.s], 'f32.abs', ['local.set', S.a],
  ...keepLarger(S.a),
  ['local.get', S.c], ['i32.const', 4], 'i32.add', ['local.set', S.c],
  ['br', 0],
  'end', 'end',
  ['local.get', S.rm], ['local.get', S.r], ['i32.const', 2], 'i32.shl', 'i32.add', ['local.get', S.ms], ['f32.store', 0],
  ['local.get', S.p], ['local.get', S.Kb], 'i32.add', ['local.set', S.p],
  ['local.get', S.r], ['i32.const', 1], 'i32.add', ['local.set', S.r],
  ['br', 0],
  'end', 'end',
];

// ---- gemm(a, b, out, M4, K, N4): a and b f64 in groups of four rows, value k of the four side by
// side ([M4/4][K][4] and [N4/4][K][4], see pack4); out [M4, N4] (f64, or f32 for gemm32).
// A 4 × 4 tile of outputs per step: 8 f64x2 accumulators (rows i..i+3 × column pairs j, j+2);
// per k, the four A values (splats, loaded first: the multiplies then wait on nothing) times
// two B column pairs, all at fixed offsets of two pointers that step 32 bytes.
const G = { a: 0, b: 1, out: 2, M4: 3, K: 4, N4: 5, i: 6, j: 7, pa: 8, pb: 9, end: 10, K8: 11, K32: 12, po: 13, acc: 14, bv: 22, av: 24 };
const ROWS = [0, 1, 2, 3];
const PAIRS = [0, 1];

/** `for (i = 0; i < M; i += 4) for (j = 0; j < N; j += jStep) body` over i32 locals (i starts at 0, as locals do). */
const overTiles = (i: number, M: number, j: number, N: number, jStep: number, body: Instr[]): Instr[] => [
  ['block'], ['loop'],
  ['local.get', i], ['local.get', M], 'i32.ge_u', ['br_if', 1],
  ['i32.const', 0], ['local.set', j],
  ['block'], ['loop'],
  ['local.get', j], ['local.get', N], 'i32.ge_u', ['br_if', 1],
  ...body,
  ['local.get', j], ['i32.const', jStep], 'i32.add', ['local.set', j],
  ['br', 0],
  'end', 'end',
  ['local.get', i], ['i32.const', 4], 'i32.add', ['local.set', i],
  ['br', 0],
  'end', 'end',
];

/** `while (p < end) body` over i32 locals. */
const whileBelow = (p: number, end: number, body: Instr[]): Instr[] => [
  ['block'], ['loop'],
  ['local.get', p], ['local.get', end], 'i32.ge_u', ['br_if', 1],
  ...body,
  ['br', 0],
  'end', 'end',
];

/** The gemm loop; `out32`: outputs stored rounded to float32 (`Math.fround`, as a Float32Array stores them), else as float64. */
const gemmBody = (out32: boolean): Instr[] => [
  ['local.get', G.K], ['i32.const', 3], 'i32.shl', ['local.set', G.K8],
  ['local.get', G.K], ['i32.const', 5], 'i32.shl', ['local.set', G.K32],
  ...overTiles(G.i, G.M4, G.j, G.N4, 4, [
    ...[...ROWS, ...ROWS].flatMap((_, t): Instr[] => [['f64.const', 0], 'f64x2.splat', ['local.set', G.acc + t]]),
    // pa walks the group of rows i..i+3 of A, pb the group of columns j..j+3 of B (K32: a
    // group's bytes); the loop ends when pa reaches the end of its group.
    ['local.get', G.a], ['local.get', G.i], ['local.get', G.K8], 'i32.mul', 'i32.add', ['local.set', G.pa],
    ['local.get', G.pa], ['local.get', G.K32], 'i32.add', ['local.set', G.end],
    ['local.get', G.b], ['local.get', G.j], ['local.get', G.K8], 'i32.mul', 'i32.add', ['local.set', G.pb],
    ...whileBelow(G.pa, G.end, [
      ...PAIRS.flatMap((p): Instr[] => [['local.get', G.pb], ['v128.load', 16 * p], ['local.set', G.bv + p]]),
      ...ROWS.flatMap((r): Instr[] => [['local.get', G.pa], ['v128.load64_splat', 8 * r], ['local.set', G.av + r]]),
      ...ROWS.flatMap((r): Instr[] => PAIRS.flatMap((p): Instr[] => [['local.get', G.acc + 2 * r + p], ['local.get', G.av + r], ['local.get', G.bv + p], 'f64x2.mul', 'f64x2.add', ['local.set', G.acc + 2 * r + p]])),
      ['local.get', G.pa], ['i32.const', 32], 'i32.add', ['local.set', G.pa],
      ['local.get', G.pb], ['i32.const', 32], 'i32.add', ['local.set', G.pb],
    ]),
    ...ROWS.flatMap((r): Instr[] => [
      ['local.get', G.out], ['local.get', G.i], ['i32.const', r], 'i32.add', ['local.get', G.N4], 'i32.mul', ['local.get', G.j], 'i32.add', ['i32.const', out32 ? 2 : 3], 'i32.shl', 'i32.add', ['local.set', G.po],
      ...PAIRS.flatMap((p): Instr[] =>
        out32
          ? [['local.get', G.po], ['local.get', G.acc + 2 * r + p], 'f32x4.demote_f64x2_zero', ['v128.store64_lane', 8 * p, 0]]
          : [['local.get', G.po], ['local.get', G.acc + 2 * r + p], ['v128.store', 16 * p]],
      ),
    ]),
  ]),
];

// ---- gemmF32(a, b, out, M4, K, N8): a float32 row-major [M4, K]; b float32 in groups of
// eight columns ([N8/8][K][8], value k of a group's columns side by side); out float32
// [M4, N8]. A 4 × 8 tile of outputs per step: 8 f32x4 accumulators (rows i..i+3 × column
// quads j, j+4); per k, the four rows' values splatted times two B quads.
const H = { a: 0, b: 1, out: 2, M4: 3, K: 4, N8: 5, i: 6, j: 7, pa: 8, pb: 9, end: 10, K4: 11, K8: 12, K12: 13, po: 14, acc: 15, bv: 23, av: 25 };
const QUADS = [0, 1];

const gemmF32Body: Instr[] = [
  ['local.get', H.K], ['i32.const', 2], 'i32.shl', ['local.set', H.K4],
  ['local.get', H.K4], ['i32.const', 1], 'i32.shl', ['local.set', H.K8],
  ['local.get', H.K8], ['local.get', H.K4], 'i32.add', ['local.set', H.K12],
  ...overTiles(H.i, H.M4, H.j, H.N8, 8, [
    ...[...ROWS, ...ROWS].flatMap((_, t): Instr[] => [['f32.const', 0], 'f32x4.splat', ['local.set', H.acc + t]]),
    // pa walks row i of A (rows i+1..i+3 are K4, K8, K12 bytes further); pb walks group j/8
    // of B, which starts j·K·4 bytes in (K·32 bytes a group). The loop ends at row i's end.
    ['local.get', H.a], ['local.get', H.i], ['local.get', H.K4], 'i32.mul', 'i32.add', ['local.set', H.pa],
    ['local.get', H.pa], ['local.get', H.K4], 'i32.add', ['local.set', H.end],
    ['local.get', H.b], ['local.get', H.j], ['local.get', H.K4], 'i32.mul', 'i32.add', ['local.set', H.pb],
    ...whileBelow(H.pa, H.end, [
      ...QUADS.flatMap((q): Instr[] => [['local.get', H.pb], ['v128.load', 16 * q], ['local.set', H.bv + q]]),
      ['local.get', H.pa], ['v128.load32_splat', 0], ['local.set', H.av],
      ...([[1, H.K4], [2, H.K8], [3, H.K12]] as const).flatMap(([r, off]): Instr[] => [['local.get', H.pa], ['local.get', off], 'i32.add', ['v128.load32_splat', 0], ['local.set', H.av + r]]),
      ...ROWS.flatMap((r): Instr[] => QUADS.flatMap((q): Instr[] => [['local.get', H.acc + 2 * r + q], ['local.get', H.av + r], ['local.get', H.bv + q], 'f32x4.mul', 'f32x4.add', ['local.set', H.acc + 2 * r + q]])),
      ['local.get', H.pa], ['i32.const', 4], 'i32.add', ['local.set', H.pa],
      ['local.get', H.pb], ['i32.const', 32], 'i32.add', ['local.set', H.pb],
    ]),
    ...ROWS.flatMap((r): Instr[] => [
      ['local.get', H.out], ['local.get', H.i], ['i32.const', r], 'i32.add', ['local.get', H.N8], 'i32.mul', ['local.get', H.j], 'i32.add', ['i32.const', 2], 'i32.shl', 'i32.add', ['local.set', H.po],
      ...QUADS.flatMap((q): Instr[] => [['local.get', H.po], ['local.get', H.acc + 2 * r + q], ['v128.store', 16 * q]]),
    ]),
  ]),
];

// ---- pack4(src, groups, K, dst): float32 rows [4·groups, K] → float64 [groups][K][4], value k
// of the four rows of a group side by side (the gemm's layout of A and B), widened exactly.
const P = { src: 0, groups: 1, K: 2, dst: 3, g: 4, s1: 5, s2: 6, s3: 7, end: 8, K4: 9 };
const packBody: Instr[] = [
  ['local.get', P.K], ['i32.const', 2], 'i32.shl', ['local.set', P.K4],
  ['block'], ['loop'],
  ['local.get', P.g], ['local.get', P.groups], 'i32.ge_u', ['br_if', 1],
  ['local.get', P.src], ['local.get', P.K4], 'i32.add', ['local.tee', P.s1], ['local.set', P.end],
  ['local.get', P.s1], ['local.get', P.K4], 'i32.add', ['local.set', P.s2],
  ['local.get', P.s2], ['local.get', P.K4], 'i32.add', ['local.set', P.s3],
  ['block'], ['loop'],
  ['local.get', P.src], ['local.get', P.end], 'i32.ge_u', ['br_if', 1],
  ...[P.src, P.s1, P.s2, P.s3].flatMap((ptr, r): Instr[] => [
    ['local.get', P.dst], ['local.get', ptr], ['f32.load', 0], 'f64.promote_f32', ['f64.store', 8 * r],
    ['local.get', ptr], ['i32.const', 4], 'i32.add', ['local.set', ptr],
  ]),
  ['local.get', P.dst], ['i32.const', 32], 'i32.add', ['local.set', P.dst],
  ['br', 0],
  'end', 'end',
  // s3 ended at the start of the next group's first row.
  ['local.get', P.s3], ['local.set', P.src],
  ['local.get', P.g], ['i32.const', 1], 'i32.add', ['local.set', P.g],
  ['br', 0],
  'end', 'end',
];

// ---- fakeQuant(x, pairs, out, s, z, c0, c1, qmin, qmax): float32 x → out, two values a step
// clip → ÷ s rounded to float32 → round half to even → + z, clamp to [qmin, qmax] → (q − z)·s,
// in float64 like the JavaScript loop; pmax/pmin are its `v < lo ? lo : v` / `v > hi ? hi : v`.
const F = { x: 0, pairs: 1, out: 2, s: 3, z: 4, c0: 5, c1: 6, qmin: 7, qmax: 8, i: 9, S: 10, Z: 11, C0: 12, C1: 13, QN: 14, QX: 15, v: 16 };

const fakeQuantBody: Instr[] = [
  ...([[F.s, F.S], [F.z, F.Z], [F.c0, F.C0], [F.c1, F.C1], [F.qmin, F.QN], [F.qmax, F.QX]] as const).flatMap(([from, to]): Instr[] => [['local.get', from], 'f64x2.splat', ['local.set', to]]),
  ['block'], ['loop'],
  ['local.get', F.i], ['local.get', F.pairs], 'i32.ge_u', ['br_if', 1],
  ['local.get', F.x], ['v128.load64_zero', 0], 'f64x2.promote_low_f32x4',
  ['local.get', F.C0], 'f64x2.pmax', ['local.get', F.C1], 'f64x2.pmin',
  ['local.get', F.S], 'f64x2.div', 'f32x4.demote_f64x2_zero', 'f64x2.promote_low_f32x4', 'f64x2.nearest',
  ['local.get', F.Z], 'f64x2.add', ['local.get', F.QN], 'f64x2.pmax', ['local.get', F.QX], 'f64x2.pmin',
  ['local.get', F.Z], 'f64x2.sub', ['local.get', F.S], 'f64x2.mul', 'f32x4.demote_f64x2_zero', ['local.set', F.v],
  ['local.get', F.out], ['local.get', F.v], ['v128.store64_lane', 0, 0],
  ['local.get', F.x], ['i32.const', 8], 'i32.add', ['local.set', F.x],
  ['local.get', F.out], ['i32.const', 8], 'i32.add', ['local.set', F.out],
  ['local.get', F.i], ['i32.const', 1], 'i32.add', ['local.set', F.i],
  ['br', 0],
  'end', 'end',
];

const I32x6 = [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32];

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

interface Kernels {
  memory: WasmMemory;
  scan: (data: number, rows: number, K: number, min: number, max: number, rowMax: number) => void;
  gemm: (a: number, b: number, out: number, M4: number, K: number, N4: number) => void;
  gemm32: (a: number, b: number, out: number, M4: number, K: number, N4: number) => void;
  gemmF32: (a: number, b: number, out: number, M4: number, K: number, N8: number) => void;
  pack4: (src: number, groups: number, K: number, dst: number) => void;
  fakeQuant: (x: number, pairs: number, out: number, s: number, z: number, c0: number, c1: number, qmin: number, qmax: number) => void;
}

let kernels: Kernels | null | undefined;

/** The instantiated kernels, or null where WebAssembly SIMD is not available. */
function instance(): Kernels | null {
  if (kernels !== undefined) return kernels;
  kernels = null;
  try {
    const e = instantiate([
      { name: 'scan', params: I32x6, results: [], locals: [T.i32, T.i32, T.i32, T.i32, T.v128, T.v128, T.f32, T.f32, T.f32, T.f32], body: scanBody },
      { name: 'gemm', params: I32x6, results: [], locals: [...Array(8).fill(T.i32), ...Array(14).fill(T.v128)], body: gemmBody(false) },
      { name: 'gemm32', params: I32x6, results: [], locals: [...Array(8).fill(T.i32), ...Array(14).fill(T.v128)], body: gemmBody(true) },
      { name: 'gemmF32', params: I32x6, results: [], locals: [...Array(9).fill(T.i32), ...Array(14).fill(T.v128)], body: gemmF32Body },
      { name: 'pack4', params: [T.i32, T.i32, T.i32, T.i32], results: [], locals: Array(6).fill(T.i32), body: packBody },
      { name: 'fakeQuant', params: [T.i32, T.i32, T.i32, T.f64, T.f64, T.f64, T.f64, T.f64, T.f64], results: [], locals: [T.i32, ...Array(7).fill(T.v128)], body: fakeQuantBody },
    ]);
    if (e) {
      kernels = {
        memory: e.memory as WasmMemory,
        scan: e.scan as Kernels['scan'],
        gemm: e.gemm as Kernels['gemm'],
        gemm32: e.gemm32 as Kernels['gemm32'],
        gemmF32: e.gemmF32 as Kernels['gemmF32'],
        pack4: e.pack4 as Kernels['pack4'],
        fakeQuant: e.fakeQuant as Kernels['fakeQuant'],
      };
    }
  } catch {
    kernels = null;
  }
  return kernels;
}

/** Whether the WebAssembly kernels are in use (else the JavaScript loops are). */
export function simdAvailable(): boolean {
  return instance() !== null;
}

/** Bytes of a block of rows the kernels work on at a time: their memory stays about this size. */
const BLOCK_BYTES = 1 << 20;

/** The kernels' memory, at least `bytes` long. */
function memory(k: Kernels, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (have < bytes) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}

/**
 * Folds a row-major `[rows, K]` block into running per-channel `min`/`max` (updated in
 * place) and writes each row's max |x| (0 for a row of zeros; NaN ignored) to `rowMax`.
 */
export function scanRows(data: Float32Array, K: number, min: Float32Array, max: Float32Array, rowMax: Float32Array): void {
  const rows = data.length / K;
  const k = instance();
  if (!k || K < 4) return scanRowsJs(data, K, min, max, rowMax);
  // Layout: min [K] | max [K] | rowMax [block] | data [block, K], float32. Blocks of rows keep
  // the memory small whatever the tensor; the ranges carry over from block to block.
  const block = Math.max(1, Math.min(rows, Math.floor(BLOCK_BYTES / 4 / (K + 1))));
  const f = new Float32Array(memory(k, (2 * K + block + block * K) * 4));
  const dataAt = 2 * K + block;
  f.set(min, 0);
  f.set(max, K);
  for (let r0 = 0; r0 < rows; r0 += block) {
    const n = Math.min(block, rows - r0);
    f.set(data.subarray(r0 * K, (r0 + n) * K), dataAt);
    k.scan(dataAt * 4, n, K, 0, K * 4, 2 * K * 4);
    rowMax.set(f.subarray(2 * K, 2 * K + n), r0);
  }
  min.set(f.subarray(0, K));
  max.set(f.subarray(K, 2 * K));
}

/**
 * {@link scanRows} in plain JavaScript (the definition the kernel matches). Four rows at a
 * time, so a channel's running min/max is loaded and stored once per four rows; the values
 * are still compared in row order, as a one-row loop would.
 */
export function scanRowsJs(data: Float32Array, K: number, min: Float32Array, max: Float32Array, rowMax: Float32Array): void {
  const rows = data.length / K;
  const rows4 = rows - (rows % 4);
  for (let r = 0; r < rows4; r += 4) {
    const a0 = r * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    let m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    for (let c = 0; c < K; c++) {
      let lo = min[c]!;
      let hi = max[c]!;
      const v0 = data[a0 + c]!, v1 = data[a1 + c]!, v2 = data[a2 + c]!, v3 = data[a3 + c]!;
      if (v0 < lo) lo = v0;
      if (v0 > hi) hi = v0;
      if (v1 < lo) lo = v1;
      if (v1 > hi) hi = v1;
      if (v2 < lo) lo = v2;
      if (v2 > hi) hi = v2;
      if (v3 < lo) lo = v3;
      if (v3 > hi) hi = v3;
      min[c] = lo;
      max[c] = hi;
      // Math.abs and a conditional move: a branch on the sign would mispredict half the time.
      const b0 = Math.abs(v0), b1 = Math.abs(v1), b2 = Math.abs(v2), b3 = Math.abs(v3);
      m0 = b0 > m0 ? b0 : m0;
      m1 = b1 > m1 ? b1 : m1;
      m2 = b2 > m2 ? b2 : m2;
      m3 = b3 > m3 ? b3 : m3;
    }
    rowMax[r] = m0;
    rowMax[r + 1] = m1;
    rowMax[r + 2] = m2;
    rowMax[r + 3] = m3;
  }
  for (let r = rows4; r < rows; r++) {
    let m = 0;
    for (let c = 0, at = r * K; c < K; c++) {
      const v = data[at + c]!;
      if (v < min[c]!) min[c] = v;
      if (v > max[c]!) max[c] = v;
      const a = Math.abs(v);
      m = a > m ? a : m;
    }
    rowMax[r] = m;
  }
}

/**
 * `C = A·Bᵀ` with A `[M, K]` and B `[N, K]` row-major, every output the float64 sum over k in
 * order, stored in `out` (`[M, N]`); the same as the JavaScript loop of row-gemm.ts. Returns
 * false (computing nothing) without WebAssembly SIMD or for an empty product.
 */
export function gemmNTSimd(a: ArrayLike<number>, M: number, K: number, b: ArrayLike<number>, N: number, out: Float32Array | Float64Array): boolean {
  const k = instance();
  if (!k || M === 0 || N === 0 || K === 0) return false;
  // Outputs do not depend on each other: B goes through in blocks of columns, A and C in
  // blocks of rows, so the memory stays a few MiB whatever the layer (it never shrinks).
  const cols = Math.max(4, Math.min((N + 3) & ~3, Math.floor(BLOCK_BYTES / 8 / K) & ~3));
  const rows = Math.max(4, Math.min((M + 3) & ~3, Math.floor(BLOCK_BYTES / 8 / (K + cols)) & ~3));
  // Float32 operands are copied in as they are (a memory copy), then widened and packed by a
  // kernel (other arrays by packGroups); float32 outputs are rounded by the kernel, so they
  // come out with a memory copy too.
  const a32 = a instanceof Float32Array;
  const b32 = b instanceof Float32Array;
  const out32 = out instanceof Float32Array;
  // Layout: B block f64 [cols/4][K][4] | A block f64 [rows/4][K][4] (see pack4) | C block
  // [rows, cols] (f64, or f32 when out32) | staging f32 [max(rows, cols), K] for float32 operands.
  const aAt = cols * K * 8;
  const cAt = aAt + rows * K * 8;
  const sAt = cAt + rows * cols * 8;
  const buffer = memory(k, sAt + Math.max(rows, cols) * K * 4);
  const fb = new Float64Array(buffer, 0, cols * K);
  const fa = new Float64Array(buffer, aAt, rows * K);
  const fc = out32 ? new Float32Array(buffer, cAt, rows * cols) : new Float64Array(buffer, cAt, rows * cols);
  const fs = new Float32Array(buffer, sAt, Math.max(rows, cols) * K);
  for (let j0 = 0; j0 < N; j0 += cols) {
    const nc = Math.min(cols, N - j0);
    const nc4 = (nc + 3) & ~3;
    if (b32) {
      fs.set(b.subarray(j0 * K, (j0 + nc) * K));
      fs.fill(0, nc * K, nc4 * K);
      k.pack4(sAt, nc4 >> 2, K, 0);
    } else packGroups(fb, nc4, K, (j, c) => (j < nc ? b[(j0 + j) * K + c]! : 0));
    for (let i0 = 0; i0 < M; i0 += rows) {
      const n = Math.min(rows, M - i0);
      const n4 = (n + 3) & ~3;
      if (a32) {
        fs.set(a.subarray(i0 * K, (i0 + n) * K));
        fs.fill(0, n * K, n4 * K);
        k.pack4(sAt, n4 >> 2, K, aAt);
      } else packGroups(fa, n4, K, (i, c) => (i < n ? a[(i0 + i) * K + c]! : 0));
      (out32 ? k.gemm32 : k.gemm)(aAt, 0, cAt, n4, K, nc4);
      if (nc4 === N) out.set(fc.subarray(0, n * N), i0 * N);
      else for (let i = 0; i < n; i++) out.set(fc.subarray(i * nc4, i * nc4 + nc), (i0 + i) * N + j0);
    }
  }
  return true;
}

/**
 * `C = A·Bᵀ` with float32 A `[M, K]` and B `[N, K]` row-major, every output the float32 sum
 * over k in order of float32 products (`gemmF32Js` in row-gemm.ts, bit for bit), into `out`
 * (`[M, N]`). Returns false (computing nothing) without WebAssembly SIMD or for an empty product.
 */
export function gemmF32Simd(a: Float32Array, M: number, K: number, b: Float32Array, N: number, out: Float32Array): boolean {
  const k = instance();
  if (!k || M === 0 || N === 0 || K === 0) return false;
  // Blocks of B's columns and of A's rows, as gemmNTSimd: the memory stays about 2 MiB.
  const cols = Math.max(8, Math.min((N + 7) & ~7, Math.floor(BLOCK_BYTES / 4 / K) & ~7));
  const rows = Math.max(4, Math.min((M + 3) & ~3, Math.floor(BLOCK_BYTES / 4 / (K + cols)) & ~3));
  // Layout: B block [cols/8][K][8] | A block [rows, K] row-major | C block [rows, cols], float32.
  const aAt = cols * K;
  const cAt = aAt + rows * K;
  const f = new Float32Array(memory(k, (cAt + rows * cols) * 4));
  for (let j0 = 0; j0 < N; j0 += cols) {
    const nc = Math.min(cols, N - j0);
    const nc8 = (nc + 7) & ~7;
    packColumnGroups(f, b, j0, nc, nc8, K);
    for (let i0 = 0; i0 < M; i0 += rows) {
      const n = Math.min(rows, M - i0);
      const n4 = (n + 3) & ~3;
      f.set(a.subarray(i0 * K, (i0 + n) * K), aAt);
      f.fill(0, aAt + n * K, aAt + n4 * K);
      k.gemmF32(aAt * 4, 0, cAt * 4, n4, K, nc8);
      if (nc8 === N) out.set(f.subarray(cAt, cAt + n * N), i0 * N);
      else for (let i = 0; i < n; i++) out.set(f.subarray(cAt + i * nc8, cAt + i * nc8 + nc), (i0 + i) * N + j0);
    }
  }
  return true;
}

/**
 * Rows `from .. from + n` of B (row-major `[*, K]`) to the start of `to` as gemmF32 reads
 * them: groups of eight rows, value k of a group's rows side by side (`[padded/8][K][8]`);
 * rows past `n` up to `padded` are zeros.
 */
function packColumnGroups(to: Float32Array, src: Float32Array, from: number, n: number, padded: number, K: number): void {
  for (let r = 0; r < padded; r++) {
    const base = (r & ~7) * K + (r & 7);
    if (r < n) for (let c = 0, s = (from + r) * K; c < K; c++) to[base + c * 8] = src[s + c]!;
    else for (let c = 0; c < K; c++) to[base + c * 8] = 0;
  }
}

/** The gemm's operand layout in JavaScript (pack4's, for operands that are not float32): `rows` rows, value(r, c). */
function packGroups(to: Float64Array, rows: number, K: number, value: (r: number, c: number) => number): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < K; c++) to[((r >> 2) * K + c) * 4 + (r & 3)] = value(r, c);
}

/**
 * Clip to [c0, c1] → QuantizeLinear(s, z) into [qmin, qmax] → DequantizeLinear, per value,
 * exactly as search.ts's `fakeQuant` loop (which it replaces when this returns true; false
 * without WebAssembly SIMD or for a clip range that is not ordered).
 */
export function fakeQuantSimd(x: Float32Array, out: Float32Array, s: number, z: number, c0: number, c1: number, qmin: number, qmax: number): boolean {
  const k = instance();
  if (!k || !(c0 <= c1) || !(qmin <= qmax)) return false;
  // Layout: x [2·pairs] | out [2·pairs], float32, in blocks of values.
  const pairs = Math.min((x.length + 1) >> 1, BLOCK_BYTES / 16);
  const outAt = pairs * 8;
  const buffer = memory(k, 2 * outAt);
  const fx = new Float32Array(buffer, 0, 2 * pairs);
  const fo = new Float32Array(buffer, outAt, 2 * pairs);
  for (let i0 = 0; i0 < x.length; i0 += 2 * pairs) {
    const n = Math.min(2 * pairs, x.length - i0);
    fx.set(x.subarray(i0, i0 + n));
    if (n & 1) fx[n] = 0;
    k.fakeQuant(0, (n + 1) >> 1, outAt, s, z, c0, c1, qmin, qmax);
    out.set(fo.subarray(0, n), i0);
  }
  return true;
}
