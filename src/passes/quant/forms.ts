import type { QuantConfig } from './config.ts';

/**
 * The operator a quantized branch is emitted as. Each is chosen so that onnxruntime's CPU
 * provider (1.30, the version tested) runs the weight as integers — checked with
 * `optimizedModelFilePath` by test/quant/census.test.ts and timed by `npm run bench -- speed`
 * (docs/speed.md has the table):
 * - `qdq`: `DequantizeLinear(W)` → `MatMul`, with `QuantizeLinear` → `DequantizeLinear` on the
 *   activation when it is quantized. onnxruntime fuses an 8-bit weight with a quantized
 *   activation into `MatMulIntegerToFloat` (or `QGemm`/`QLinearMatMul`), and a weight alone
 *   into `MatMulNBits` (accuracy level 4). `int8Storage`: 4-bit values given to the kernel as
 *   int8 (stored as int4 behind a `Cast` to int8 with `int4-storage`, see below);
 *   `nbitsBlocks`: the per-channel weight written as a blocked DequantizeLinear, blocks of
 *   {@link nbitsBlockSize} rows, the block size onnxruntime's fusion then keeps.
 * - `integer`: `com.microsoft.MatMulIntegerToFloat` (uint8 activation × int8 weight).
 * - `nbits`: `com.microsoft.MatMulNBits`, accuracy level 4: int8 compute with the activation
 *   quantized per block at run time (what onnxruntime's own 4-bit quantizer emits); with a
 *   quantized activation (`w4a8-kernel nbits`) behind its static QuantizeLinear →
 *   DequantizeLinear.
 * - `dynamic` (8-bit weight-only with `w8-kernel dynamic`): the activation quantized to uint8
 *   per tensor at run time, int8 per-channel weight, u8×s8 GEMM — what onnxruntime's
 *   `quantize_dynamic` emits. qoperator: `com.microsoft.DynamicQuantizeMatMul`; qdq: the ONNX
 *   chain `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(·, Mul(x_scale, w_scale))`,
 *   which onnxruntime fuses into MatMulIntegerToFloat and then DynamicQuantizeMatMul.
 */
export type BranchForm =
  | { op: 'qdq'; int8Storage: boolean; nbitsBlocks: boolean }
  | { op: 'integer' }
  | { op: 'nbits' }
  | { op: 'dynamic'; qdq: boolean };

/**
 * The form of a branch under `config`; docs/speed.md has the measurements behind each:
 * - quantized activations, 8-bit weights: the integer kernels (qdq fused by onnxruntime,
 *   qoperator MatMulIntegerToFloat).
 * - quantized activations, 4-bit weights: the same 8-bit kernels with the 4-bit values stored
 *   in int8. onnxruntime 1.30 has no kernel for a 4-bit weight with a static quantized
 *   activation: a QDQ int4 weight with a DQ'd activation is not fused at all, and MatMulNBits
 *   (which requantizes its float input per block) measured slower than MatMulIntegerToFloat
 *   and is not exact. With `int4-storage` (default) the values are stored as int4 and a
 *   `Cast(int4 → int8)` feeds the kernel: onnxruntime's constant folding (level 1, before the
 *   QDQ fusions of level 2) turns it into the int8 initializer when the session is created, so
 *   the optimized graph is the int8-stored one (same census, same outputs bit for bit, checked
 *   by test/quant/census.test.ts) and the file holds half the weight bytes. Cast from int4
 *   needs opset 21 and onnxruntime 1.23 (onnxruntime-web 1.24.1 checked); below opset 21, or
 *   with `int4-storage false`, the values are stored as int8 and the file is as large as W8A8's.
 * - weight-only, both bit widths: MatMulNBits with blocks of {@link nbitsBlockSize} rows
 *   (256 for K ≥ 256: measured fastest; 32, onnxruntime's default for a per-channel DQ, ran
 *   1.3–1.8× slower). qdq reaches it through onnxruntime's DQ → MatMulNBits fusion, which
 *   needs a blocked default-domain DequantizeLinear (opset 21); with qdq-domain com.microsoft,
 *   or a model whose opset cannot be raised to 21, the per-channel DQ stays and onnxruntime
 *   fuses it with blocks of 32. With `w8-kernel dynamic`, 8-bit weight-only layers are
 *   `dynamic` instead (docs/w8-weight-only.md).
 */
export function branchForm(config: Pick<QuantConfig, 'format' | 'aBits' | 'wBits' | 'qdqDomain' | 'w8Kernel' | 'w4a8Kernel'>, opset = 21): BranchForm {
  const activations = config.aBits !== null;
  // W4A8 / W4A6 with `w4a8-kernel nbits` (qoperator): MatMulNBits behind the static Q → DQ.
  if (activations && config.wBits === 4 && config.w4a8Kernel === 'nbits' && config.format === 'qoperator') return { op: 'nbits' };
  if (!activations && config.wBits === 8 && config.w8Kernel === 'dynamic') return { op: 'dynamic', qdq: config.format === 'qdq' };
  if (config.format === 'qdq') return { op: 'qdq', int8Storage: activations && config.wBits === 4, nbitsBlocks: !activations && config.qdqDomain === '' && opset >= 21 };
  return activations ? { op: 'integer' } : { op: 'nbits' };
}

/** The blocks com.microsoft.MatMulNBits accepts on the CPU (onnxruntime 1.30). */
export const NBITS_BLOCK_SIZES = [16, 32, 64, 128, 256];

/** The MatMulNBits block for a per-channel weight with K input channels: the smallest supported block covering K, else 256. */
export function nbitsBlockSize(K: number): number {
  return NBITS_BLOCK_SIZES.find((s) => s >= K) ?? 256;
}
