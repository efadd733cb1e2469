/**
 * The rows of the quality table: one list of `{ label, pass, options }`, quantized at each
 * bit-width and calibration draw. A row whose options the pass does not declare (or whose
 * values it rejects) is skipped with a note, so that rows for options still being built can
 * sit here before the options land (issue 14: reconstruction, bias correction, dual-scale
 * auto, block-wise weights).
 */

/** A bit-width of the table, as the shared quant options spell it. */
export interface BitWidth {
  label: string;
  options: { 'w-bits': string; 'a-bits': string };
}

/** W8A8, W4A8, W4A6 (the paper's) and weight-only W8 and W4, per output channel. */
export const BIT_WIDTHS: readonly BitWidth[] = [
  { label: 'W8A8', options: { 'w-bits': '8', 'a-bits': '8' } },
  { label: 'W4A8', options: { 'w-bits': '4', 'a-bits': '8' } },
  { label: 'W4A6', options: { 'w-bits': '4', 'a-bits': '6' } },
  { label: 'W8', options: { 'w-bits': '8', 'a-bits': 'none' } },
  { label: 'W4', options: { 'w-bits': '4', 'a-bits': 'none' } },
];

/** One configuration of the table. */
export interface QualityRow {
  label: string;
  /**
   * The pass, or `onnxruntime`: onnxruntime's own quantizer as reproduced by
   * `bench/peers/onnxruntime-recipe.ts` (the peer rows; `options.recipe` names the recipe).
   */
  pass: 'minmax' | 'q-arvd' | 'onnxruntime';
  /** Pass options (`--<pass>.<key> <value>`), or the recipe's; the row is skipped if the pass rejects one. */
  options: Record<string, string | number | boolean>;
  /**
   * Options applied only when the pass declares them: they pin a row's meaning across a
   * change of defaults (today's round-to-nearest stays round-to-nearest when GPTQ becomes the
   * default), without making the row unrunnable before the option exists.
   */
  pinned?: Record<string, string | number | boolean>;
  /** Only at these bit-widths (labels); default all. */
  bits?: readonly string[];
}

/** What today's q-arvd does, pinned against the defaults issue 14 changes. */
const TODAY = { reconstruct: 'none', 'bias-correction': false } as const;
const W4_ONLY = ['W4'] as const;
const W8A8_ONLY = ['W8A8'] as const;
const W8_ONLY = ['W8'] as const;
const W4_FOLD = ['W4A8', 'W4'] as const;
/** q-arvd's defaults spelt out (GPTQ, S1, dual-scale auto): the rows that vary one option start from it. */
const AS_SHIPPED = { reconstruct: 'gptq', 'frame-weighting': true, 'dual-scale': 'auto' } as const;

/** The table's rows, in order within a bit-width. */
export const ROWS: readonly QualityRow[] = [
  { label: 'minmax', pass: 'minmax', options: {}, pinned: { 'bias-correction': false } },
  { label: 'q-arvd RTN', pass: 'q-arvd', options: { 'dual-scale': true }, pinned: TODAY },
  { label: 'q-arvd RTN dual off', pass: 'q-arvd', options: { 'dual-scale': false }, pinned: TODAY },
  // Issue 14's rows: skipped (with the pass's own message) until the options exist.
  { label: 'q-arvd RTN+bc dual auto', pass: 'q-arvd', options: { reconstruct: 'none', 'bias-correction': true, 'dual-scale': 'auto' } },
  { label: 'q-arvd RTN+bc dual off', pass: 'q-arvd', options: { reconstruct: 'none', 'bias-correction': true, 'dual-scale': false } },
  { label: 'q-arvd GPTQ S1 off dual auto', pass: 'q-arvd', options: { reconstruct: 'gptq', 'frame-weighting': false, 'dual-scale': 'auto' } },
  { label: 'q-arvd GPTQ S1 off dual off', pass: 'q-arvd', options: { reconstruct: 'gptq', 'frame-weighting': false, 'dual-scale': false } },
  { label: 'q-arvd GPTQ S1 on dual auto', pass: 'q-arvd', options: AS_SHIPPED },
  { label: 'q-arvd GPTQ S1 on dual off', pass: 'q-arvd', options: { reconstruct: 'gptq', 'frame-weighting': true, 'dual-scale': false } },
  // dual-scale auto without its whole-model check (split-check.ts): auto as it was before the check.
  { label: 'q-arvd GPTQ S1 on dual auto check none', pass: 'q-arvd', options: { ...AS_SHIPPED, 'split-check': 'none' } },
  // fold-split's A/B (docs/dual-scale-speed.md): the same function, channels in another order.
  { label: 'q-arvd GPTQ S1 on dual auto fold off', pass: 'q-arvd', options: { ...AS_SHIPPED, 'fold-split': false }, bits: W4_FOLD },
  { label: 'q-arvd AdaRound dual auto', pass: 'q-arvd', options: { reconstruct: 'adaround', 'dual-scale': 'auto' } },
  { label: 'q-arvd AdaRound dual off', pass: 'q-arvd', options: { reconstruct: 'adaround', 'dual-scale': false } },
  { label: 'minmax block 32', pass: 'minmax', options: { 'block-size': 32 }, bits: W4_ONLY },
  { label: 'q-arvd GPTQ block 32 dual auto', pass: 'q-arvd', options: { reconstruct: 'gptq', 'block-size': 32, 'dual-scale': 'auto' }, bits: W4_ONLY },
  { label: 'q-arvd GPTQ block 32 dual off', pass: 'q-arvd', options: { reconstruct: 'gptq', 'block-size': 32, 'dual-scale': false }, bits: W4_ONLY },
  // Both passes on the repeated blocks' layers only, the 7 around them float (`scope blocks`;
  // docs/error-propagation.md: on tiny-arvd-l those layers carry most of the final-video error).
  { label: 'minmax blocks', pass: 'minmax', options: { scope: 'blocks' }, pinned: { 'bias-correction': false } },
  { label: 'q-arvd blocks', pass: 'q-arvd', options: { ...AS_SHIPPED, scope: 'blocks' } },
  // q-arvd's default scope (outer-w8: the layers around the blocks with 8-bit weights) against
  // every layer at w-bits, and minmax with the same mixed precision (like for like).
  { label: 'q-arvd all', pass: 'q-arvd', options: { ...AS_SHIPPED, scope: 'all' } },
  { label: 'minmax outer-w8', pass: 'minmax', options: { scope: 'outer-w8' }, pinned: { 'bias-correction': false } },
  // The 7 layers around the blocks with float inputs (outer-activations float, q-arvd's default since 2026-12-06; docs/error-propagation.md).
  { label: 'q-arvd outer float', pass: 'q-arvd', options: { ...AS_SHIPPED, 'outer-activations': 'float' }, bits: ['W8A8', 'W4A8', 'W4A6'] },
  // The same layers quantizing their inputs like the rest (q-arvd's default until 2026-12-06, eighteenth session).
  { label: 'q-arvd outer quantized', pass: 'q-arvd', options: { ...AS_SHIPPED, 'outer-activations': 'quantized' }, bits: ['W8A8', 'W4A8', 'W4A6'] },
  // The peer (issue 14): onnxruntime's quantize_static (QDQ, per-channel int8 weights, uint8
  // MinMax activations on every MatMul) on the same calibration rollouts, and its 4-bit
  // MatMulNBits (RTN, block 32, asymmetric, accuracy level 4). docs/peers.md has the recipe.
  { label: 'onnxruntime quantize_static W8A8', pass: 'onnxruntime', options: { recipe: 'static' }, bits: W8A8_ONLY },
  // The kernel of 8-bit weight-only layers (w8-kernel; docs/w8-weight-only.md): MatMulNBits or
  // DynamicQuantizeMatMul, each pass in each, and onnxruntime's quantize_dynamic (per-tensor
  // symmetric int8 weights, DynamicQuantizeMatMul) as the peer.
  { label: 'minmax w8 nbits', pass: 'minmax', options: { 'w8-kernel': 'nbits' }, pinned: { 'bias-correction': false }, bits: W8_ONLY },
  { label: 'minmax w8 dynamic', pass: 'minmax', options: { 'w8-kernel': 'dynamic' }, pinned: { 'bias-correction': false }, bits: W8_ONLY },
  { label: 'q-arvd w8 nbits', pass: 'q-arvd', options: { ...AS_SHIPPED, 'w8-kernel': 'nbits' }, bits: W8_ONLY },
  { label: 'q-arvd w8 dynamic', pass: 'q-arvd', options: { ...AS_SHIPPED, 'w8-kernel': 'dynamic' }, bits: W8_ONLY },
  { label: 'onnxruntime quantize_dynamic W8', pass: 'onnxruntime', options: { recipe: 'dynamic' }, bits: W8_ONLY },
  { label: 'onnxruntime MatMulNBits W4 block32 RTN', pass: 'onnxruntime', options: { recipe: 'nbits', 'block-size': 32, 'accuracy-level': 4 }, bits: W4_ONLY },
];
