/**
 * A minimal WebAssembly assembler, enough for the SIMD kernels (calibration's, weight quantization's): functions written
 * as WAT-style instruction lists (`['local.get', 0]`, `'f32x4.pmax'`, `['v128.load', 0]`)
 * become a module with one exported memory and the exported functions. Only the opcodes the
 * kernels use are known; an unknown one is an error when the module is built.
 *
 * Structured control is as in WAT's flat form: `['block']` / `['loop']` / `['if']` (no
 * result), `'else'`, `'end'`; branch depths are relative, as in the binary format.
 */

/** WebAssembly value types. */
export const T = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
export type ValType = (typeof T)[keyof typeof T];

/**
 * One instruction: a name, or a name with its immediates (memory ops: the offset, then the
 * lane for a lane store; the alignment is the natural one).
 */
export type Instr = string | [string, ...number[]];

/** A function of the module. */
export interface WasmFunction {
  name: string;
  params: ValType[];
  results: ValType[];
  /** Local variables after the parameters (their indices follow the parameters'). */
  locals: ValType[];
  body: Instr[];
}

type Imm = 'none' | 'block' | 'label' | 'local' | 'i32' | 'f32' | 'f64' | 'mem' | 'lane' | 'memlane' | 'shuffle';

/** Plain opcodes: [byte, immediate kind, natural alignment log2 for memory ops]. */
const OPS: Record<string, [number, Imm, number?]> = {
  block: [0x02, 'block'], loop: [0x03, 'block'], if: [0x04, 'block'], else: [0x05, 'none'], end: [0x0b, 'none'],
  br: [0x0c, 'label'], br_if: [0x0d, 'label'], return: [0x0f, 'none'], drop: [0x1a, 'none'], select: [0x1b, 'none'],
  'local.get': [0x20, 'local'], 'local.set': [0x21, 'local'], 'local.tee': [0x22, 'local'],
  'i32.load': [0x28, 'mem', 2], 'f32.load': [0x2a, 'mem', 2], 'f64.load': [0x2b, 'mem', 3],
  'i32.store': [0x36, 'mem', 2], 'f32.store': [0x38, 'mem', 2], 'f64.store': [0x39, 'mem', 3],
  'i32.const': [0x41, 'i32'], 'f32.const': [0x43, 'f32'], 'f64.const': [0x44, 'f64'],
  'i32.eqz': [0x45, 'none'], 'i32.eq': [0x46, 'none'], 'i32.ne': [0x47, 'none'], 'i32.lt_s': [0x48, 'none'], 'i32.lt_u': [0x49, 'none'],
  'i32.gt_s': [0x4a, 'none'], 'i32.gt_u': [0x4b, 'none'], 'i32.le_s': [0x4c, 'none'], 'i32.le_u': [0x4d, 'none'], 'i32.ge_s': [0x4e, 'none'], 'i32.ge_u': [0x4f, 'none'],
  'f32.eq': [0x5b, 'none'], 'f32.lt': [0x5d, 'none'], 'f32.gt': [0x5e, 'none'],
  'f64.lt': [0x63, 'none'], 'f64.gt': [0x64, 'none'],
  'i32.add': [0x6a, 'none'], 'i32.sub': [0x6b, 'none'], 'i32.mul': [0x6c, 'none'], 'i32.and': [0x71, 'none'], 'i32.or': [0x72, 'none'], 'i32.shl': [0x74, 'none'], 'i32.shr_u': [0x76, 'none'],
  'f32.abs': [0x8b, 'none'], 'f32.add': [0x92, 'none'], 'f32.mul': [0x94, 'none'],
  'f64.abs': [0x99, 'none'], 'f64.add': [0xa0, 'none'], 'f64.sub': [0xa1, 'none'], 'f64.mul': [0xa2, 'none'],
  'f32.demote_f64': [0xb6, 'none'], 'f64.promote_f32': [0xbb, 'none'],
};

/** SIMD opcodes (prefix 0xfd): [opcode, immediate kind, natural alignment log2]. */
const SIMD: Record<string, [number, Imm, number?]> = {
  'v128.load': [0x00, 'mem', 4], 'v128.load32_splat': [0x09, 'mem', 2], 'v128.load64_splat': [0x0a, 'mem', 3], 'v128.store': [0x0b, 'mem', 4],
  'f32x4.splat': [0x13, 'none'], 'f64x2.splat': [0x14, 'none'],
  'f32x4.extract_lane': [0x1f, 'lane'], 'f64x2.extract_lane': [0x21, 'lane'],
  'v128.store64_lane': [0x5b, 'memlane', 3], 'v128.load64_zero': [0x5d, 'mem', 3],
  'f32x4.demote_f64x2_zero': [0x5e, 'none'], 'f64x2.promote_low_f32x4': [0x5f, 'none'], 'f64x2.nearest': [0x94, 'none'],
  'f32x4.abs': [0xe0, 'none'], 'f32x4.add': [0xe4, 'none'], 'f32x4.mul': [0xe6, 'none'], 'f32x4.pmin': [0xea, 'none'], 'f32x4.pmax': [0xeb, 'none'],
  'f64x2.add': [0xf0, 'none'], 'f64x2.sub': [0xf1, 'none'], 'f64x2.mul': [0xf2, 'none'], 'f64x2.div': [0xf3, 'none'],
  'f64x2.pmin': [0xf6, 'none'], 'f64x2.pmax': [0xf7, 'none'],
  'i8x16.shuffle': [0x0d, 'shuffle'], 'v128.store32_lane': [0x5a, 'memlane', 2],
  'i8x16.narrow_i16x8_s': [0x65, 'none'], 'i8x16.narrow_i16x8_u': [0x66, 'none'], 'f32x4.nearest': [0x6a, 'none'], 'i16x8.narrow_i32x4_s': [0x85, 'none'],
  'f32x4.sub': [0xe5, 'none'], 'f32x4.div': [0xe7, 'none'], 'i32x4.trunc_sat_f32x4_s': [0xf8, 'none'],
};

function uleb(n: number, out: number[]): void {
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

function sleb(n: number, out: number[]): void {
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

function bytesOf(array: Float32Array | Float64Array): number[] {
  return [...new Uint8Array(array.buffer)];
}

function encodeBody(f: WasmFunction): number[] {
  const out: number[] = [];
  // Locals, one entry per local (run-length grouping is optional in the format).
  uleb(f.locals.length, out);
  for (const t of f.locals) out.push(1, t);
  for (const ins of f.body) {
    const [name, ...imm] = typeof ins === 'string' ? [ins] : ins;
    const simd = SIMD[name];
    const op = simd ?? OPS[name];
    if (!op) throw new Error(`wasm-asm: unknown instruction '${name}' in ${f.name}`);
    if (simd) {
      out.push(0xfd);
      uleb(simd[0], out);
    } else out.push(op[0]);
    const [, kind, align] = op;
    const want = kind === 'none' || kind === 'block' ? 0 : kind === 'memlane' ? 2 : kind === 'shuffle' ? 16 : 1;
    if (imm.length !== want) throw new Error(`wasm-asm: '${name}' takes ${want} immediate(s), got ${imm.length} in ${f.name}`);
    switch (kind) {
      case 'block': out.push(0x40); break;
      case 'label': case 'local': uleb(imm[0]!, out); break;
      case 'i32': sleb(imm[0]!, out); break;
      case 'f32': out.push(...bytesOf(Float32Array.of(imm[0]!))); break;
      case 'f64': out.push(...bytesOf(Float64Array.of(imm[0]!))); break;
      case 'mem': uleb(align!, out); uleb(imm[0]!, out); break;
      case 'lane': out.push(imm[0]!); break;
      case 'memlane': uleb(align!, out); uleb(imm[0]!, out); out.push(imm[1]!); break;
      case 'shuffle': out.push(...imm); break;
    }
  }
  out.push(0x0b);
  return out;
}

function section(id: number, content: number[], out: number[]): void {
  out.push(id);
  uleb(content.length, out);
  out.push(...content);
}

function name(s: string, out: number[]): void {
  const b = new TextEncoder().encode(s);
  uleb(b.length, out);
  out.push(...b);
}

/** The bytes of a module exporting `memory` (`pages` of 64 KiB to start with) and the functions. */
export function assemble(functions: WasmFunction[], pages = 1): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const types: number[] = [];
  uleb(functions.length, types);
  for (const f of functions) {
    types.push(0x60);
    uleb(f.params.length, types);
    types.push(...f.params);
    uleb(f.results.length, types);
    types.push(...f.results);
  }
  section(1, types, out);
  const funcs: number[] = [];
  uleb(functions.length, funcs);
  functions.forEach((_, i) => uleb(i, funcs));
  section(3, funcs, out);
  const mem: number[] = [1, 0x00];
  uleb(pages, mem);
  section(5, mem, out);
  const exports: number[] = [];
  uleb(functions.length + 1, exports);
  name('memory', exports);
  exports.push(0x02, 0);
  functions.forEach((f, i) => {
    name(f.name, exports);
    exports.push(0x00);
    uleb(i, exports);
  });
  section(7, exports, out);
  const code: number[] = [];
  uleb(functions.length, code);
  for (const f of functions) {
    const body = encodeBody(f);
    uleb(body.length, code);
    code.push(...body);
  }
  section(10, code, out);
  return Uint8Array.from(out);
}

/** The part of the WebAssembly JavaScript API used here (the project's lib has no DOM types). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/**
 * Assembles and instantiates a module; its exports (`memory` and the functions), or null where
 * WebAssembly, or the SIMD the functions use, is not available (callers then run JavaScript).
 */
export function instantiate(functions: WasmFunction[]): Record<string, unknown> | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  const bytes = assemble(functions);
  if (!wasm || !wasm.validate(bytes)) return null;
  return new wasm.Instance(new wasm.Module(bytes), {}).exports;
}
