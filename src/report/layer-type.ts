/**
 * The layer type and block depth of a linear layer, read from its node name (exporters put
 * the module path there: `/blocks.2/ffn/ffn.2/MatMul`). The report's roll-up (the paper's
 * Figure 4) groups layers by these two.
 *
 * Rules:
 * 1. Split the name on `/`, drop empty segments and the op segment at the end (`MatMul`,
 *    `Gemm`, `MatMul_3`, …).
 * 2. The first segment naming a repeated block (`blocks.N`, `layers.N`, `layer.N`, `h.N`,
 *    `block.N`, `transformer_blocks.N`, `resblocks.N`) gives the depth N; the segments after
 *    it form the type. The first, because a block's own parts may be numbered like blocks:
 *    T5's `/encoder/block.3/layer.0/SelfAttention/q/MatMul` is depth 3, type
 *    `layer.0.SelfAttention.q`. Without one the depth is null and every remaining segment counts.
 * 3. A segment that extends the one before it (`ffn` then `ffn.2`, `time_embedding` then
 *    `time_embedding.0`) replaces it; the rest are joined with `.`:
 *    `/blocks.0/self_attn/q/MatMul` → `self_attn.q`, `/blocks.2/ffn/ffn.2/MatMul` → `ffn.2`.
 * 4. A name with nothing left (`/MatMul`, a top-level layer) is its own type without the
 *    leading slash (`MatMul`).
 */

/** Type and depth of one layer. */
export interface LayerKind {
  /** Module path below the block, e.g. `self_attn.q`, `ffn.2`, `head`. */
  type: string;
  /** Block index, or null for layers outside the repeated blocks. */
  depth: number | null;
}

const OP_SEGMENT = /^(MatMul|Gemm|MatMulInteger|MatMulIntegerToFloat|MatMulNBits|QLinearMatMul)(_\d+)?$/;
const BLOCK_SEGMENT = /^(?:blocks|block|layers|layer|h|transformer_blocks|single_transformer_blocks|resblocks)\.(\d+)$/;

/** Reads the layer type and depth from a node name (see the module doc for the rules). */
export function layerKind(name: string): LayerKind {
  const segments = name.split('/').filter((s) => s !== '');
  if (segments.length > 1 && OP_SEGMENT.test(segments[segments.length - 1]!)) segments.pop();
  const at = segments.findIndex((s) => BLOCK_SEGMENT.test(s));
  const depth = at < 0 ? null : Number(BLOCK_SEGMENT.exec(segments[at]!)![1]);
  const start = at + 1;
  const parts: string[] = [];
  for (const s of segments.slice(start)) {
    const prev = parts[parts.length - 1];
    if (prev !== undefined && (s.startsWith(`${prev}.`) || s.startsWith(`${prev}_`))) parts[parts.length - 1] = s;
    else parts.push(s);
  }
  const type = parts.length > 0 ? parts.join('.') : name.replace(/^\/+/, '') || name;
  return { type, depth };
}
