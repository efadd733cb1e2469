import type { QuantConfig } from './config.ts';
import type { LayerPlan } from './plan.ts';

/**
 * The measured rule (docs/speed.md "Small layers"; `npm run bench -- layer-forms`, onnxruntime
 * 1.30, 1 thread, models of same-shape layers timed against fp32 at 4, 16, 192 and 1024 rows).
 * Below these sizes the integer form was slower than onnxruntime's fp32 Gemm (or level with it)
 * at the rows video tokens give (192) or more:
 * - weight-only (MatMulNBits, accuracy level 4), one quantizer: remeasured 2026-12-06 at load
 *   3–4 (two runs, and two more with the machine's other jobs stopped): K = 64, 192 and 256 took
 *   1.06–2.2× fp32 from 16 rows (at 192 rows 1.11–1.31× for K = 192; at 4 rows 1.06–1.48×, but
 *   192×768 0.94–0.98×), K = 384 0.88–1.03×, K = 768 0.63–0.87×. The kernel quantizes every row of the activation per block at run time,
 *   which a short K does not amortise. (The first measurement, 2026-12-04 at load 13, had K = 192
 *   at 0.67–0.80×, and the threshold at 128; on tiny-arvd-l's demo call its K = 192 layers took
 *   1.25× their Gemm, so the model ran at 1.07–1.14× fp32. A loaded machine evicts fp32's larger
 *   weights from the caches, which flatters the 4-bit form.)
 * - weight-only, split: the outlier branch is a second MatMulNBits over 32–128 channels; the
 *   split layer took 1.05–2.2× fp32 for K ≤ 384 (remeasured), 0.97–1.00× for 768×192 and
 *   0.71–0.90× for 768×768 with 32 outlier channels, 0.31–0.72× for 1536×1536. In tiny-arvd-l's
 *   demo call its K = 768 splits (ffn.2, 64–128 outlier channels after fold-split's Slice) took
 *   1.3× their fp32 Gemm (normal branch 255–266 µs, outlier branch 92–110, Sum and Slice ~60,
 *   against 300–320 µs), so the threshold is the next measured size that pays, K = 1536 (until
 *   2026-12-06: 768).
 * - quantized activations (MatMulIntegerToFloat), split: with K·N = 16384 (64×256, 256×64)
 *   0.98–1.85× at 192–1024 rows, 64×64 from 16 rows; from 192×192 0.75–0.86× (remeasured:
 *   0.94–0.99× at 192 and 1024 rows, 1.2–1.35× at 4–16).
 * - quantized activations, one quantizer: faster than fp32 at every measured shape from 192 rows
 *   but 64×64 (1.06–1.11×, remeasured; 0.27–0.76× in the first measurement): never kept in float.
 * - 8-bit weight-only with `w8-kernel dynamic` (DynamicQuantizeMatMul: the same u8×s8 GEMM
 *   after a per-call quantizer; docs/w8-weight-only.md): like quantized activations — one
 *   quantizer 0.13–0.77× fp32 at every shape and row count, split layers with K·N ≤ 16384
 *   1.09–6.99× at 192–1024 rows, from 192×192 0.15–0.80×. So the activation rule applies.
 * The rows a layer runs are not known when converting (symbolic in most models); at 1–16 rows
 * the integer forms are faster on some of these layers (K = 384 at 4 rows: 0.88×), which
 * `integer-kernels always` keeps.
 * Weights written in blocks (`block-size`) keep the integer form: the rule was measured per channel.
 */
export const SMALL_LAYER_RULE = {
  /** Weight-only, one quantizer: the integer form needs K ≥ this. */
  weightOnlyMinK: 768,
  /** Weight-only, split into outlier and normal branches: K ≥ this. */
  weightOnlySplitMinK: 1536,
  /** Quantized activations (and `w8-kernel dynamic`), split: K·N ≥ this. */
  activationSplitMinKN: 32768,
} as const;

/**
 * Why `plan`'s layer is emitted in float compute (its quantized weights dequantized once, when
 * onnxruntime loads the model, and one float MatMul), or undefined for its integer form.
 */
export function floatComputeReason(plan: LayerPlan, config: Pick<QuantConfig, 'integerKernels' | 'aBits' | 'wBits' | 'blockSize' | 'w8Kernel' | 'w4a8Kernel' | 'format'>): string | undefined {
  if (config.integerKernels === 'always' || config.blockSize > 0) return undefined;
  if (config.integerKernels === 'never') return 'integer-kernels never';
  const { K, N } = plan.layer;
  const split = plan.mode === 'dual';
  const R = SMALL_LAYER_RULE;
  const measured = '(measured rule, docs/speed.md "Small layers"; integer-kernels always keeps the integer form)';
  const dynamic = config.aBits === null && config.wBits === 8 && config.w8Kernel === 'dynamic';
  // W4A8 in MatMulNBits (w4a8-kernel nbits): always that form. Its float fallback would drop
  // the static activation quantizer, which the float compute form does not emit, and make the
  // layer weight-only; the rule for it was not measured with the Q → DQ in front.
  if (config.aBits !== null && config.wBits === 4 && config.w4a8Kernel === 'nbits' && config.format === 'qoperator') return undefined;
  if (config.aBits === null && !dynamic) {
    const min = split ? R.weightOnlySplitMinK : R.weightOnlyMinK;
    if (K < min) return `too small for integer kernels: weight-only${split ? ' split' : ''} layer with K = ${K} < ${min}, where MatMulNBits is slower than fp32 ${measured}`;
    return undefined;
  }
  if (split && K * N < R.activationSplitMinKN) {
    const kernel = dynamic ? 'DynamicQuantizeMatMul' : 'MatMulIntegerToFloat';
    return `too small for integer kernels: split layer with K·N = ${K * N} < ${R.activationSplitMinKN}, where two ${kernel} calls are slower than fp32 ${measured}${dynamic ? '' : '; activations not quantized'}`;
  }
  return undefined;
}
