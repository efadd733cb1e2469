import type { QuantConfig } from './config.ts';
import type { LayerPlan } from './plan.ts';

/**
 * The measured rule (docs/speed.md "Small layers"; `npm run bench -- layer-forms`, onnxruntime
 * 1.30, 1 thread, models of same-shape layers timed against fp32 at 4, 16, 192 and 1024 rows,
 * two runs). Below these sizes the integer form was slower than onnxruntime's fp32 Gemm (or
 * level with it) at the rows video tokens give (192) or more:
 * - weight-only (MatMulNBits, accuracy level 4), one quantizer: K = 64 took 0.91–1.20× fp32 at
 *   192 rows and 1.06–3.40× at 1024; K = 192 and 256 took 0.67–0.80× at 192 rows (0.85–1.32× at
 *   1024). The kernel quantizes every row of the activation per block at run time, which a
 *   short K does not amortise.
 * - weight-only, split: the outlier branch is a second MatMulNBits over 32–128 channels; the
 *   split layer took 1.13–1.54× fp32 at 192 rows for K ≤ 256, 0.90–0.93× (1.10–1.43× at 1024)
 *   for K = 384, 0.61–0.79× for K = 768.
 * - quantized activations (MatMulIntegerToFloat), split: with K·N = 16384 (64×256, 256×64)
 *   0.98–1.85× at 192–1024 rows, 64×64 from 16 rows; from 192×192 0.75–0.86×.
 * - quantized activations, one quantizer: faster than fp32 at every measured shape (0.27–0.76×):
 *   never kept in float.
 * - 8-bit weight-only with `w8-kernel dynamic` (DynamicQuantizeMatMul: the same u8×s8 GEMM
 *   after a per-call quantizer; docs/w8-weight-only.md): like quantized activations — one
 *   quantizer 0.13–0.77× fp32 at every shape and row count, split layers with K·N ≤ 16384
 *   1.09–6.99× at 192–1024 rows, from 192×192 0.15–0.80×. So the activation rule applies.
 * The rows a layer runs are not known when converting (symbolic in most models); at 1–16 rows
 * the integer forms are faster even on these layers, which `integer-kernels always` keeps.
 * Weights written in blocks (`block-size`) keep the integer form: the rule was measured per channel.
 */
export const SMALL_LAYER_RULE = {
  /** Weight-only, one quantizer: the integer form needs K ≥ this. */
  weightOnlyMinK: 128,
  /** Weight-only, split into outlier and normal branches: K ≥ this. */
  weightOnlySplitMinK: 768,
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
