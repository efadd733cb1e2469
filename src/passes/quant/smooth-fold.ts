/**
 * Folding a smoothing into the node that produces the smoothed input, so inference pays no
 * extra `Mul` (SmoothQuant's folding; onnxruntime's `SmoothQuantFolding` does the same): a
 * `LayerNormalization` whose scale and bias are constant `[K]` vectors, or a `Mul` by a
 * constant vector along the last axis (an RMSNorm's weight). Only when every user of the value
 * is a layer being smoothed — anything else reading it would see the scaled values.
 *
 * Not folded: SwiGLU's gate `silu(x·W1) ⊙ x·W3` into W3's columns. It is exact in float, but
 * W3 is a quantized layer too: its S2 outlier rows (chosen by row norms) change, and on
 * stories260K W8A8 the relative logit error went 0.0128 → 0.0149. A `Mul` is cheaper.
 */
import { DataType } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import type { Node } from '../../graph/ir/node.ts';
import { Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import { removeUnused } from './rewire.ts';

/**
 * Divides channel k of `input` by `1/inverse[k]` inside its producer when that is possible.
 * @param readers the nodes that will read the smoothed value (the group's layers)
 * @returns true when folded (the layers keep reading `input`); false: the caller inserts a Mul
 */
export function foldSmoothing(g: Graph, input: Value, readers: Set<Node>, inverse: Float32Array): boolean {
  const p = input.producer();
  if (!p || p.graph !== g || p.domain !== '' || input.outputIndex !== 0 || input.isGraphOutput()) return false;
  if (input.uses().some((u) => !readers.has(u.node))) return false;
  const K = inverse.length;
  let slots: number[] = [];
  if (p.opType === 'LayerNormalization') {
    if (!isChannelVector(p.input(1), K)) return false;
    if (p.input(2) && !isChannelVector(p.input(2), K)) return false;
    slots = p.input(2) ? [1, 2] : [1];
  } else if (p.opType === 'Mul') {
    const slot = [0, 1].find((i) => isChannelVector(p.input(i), K) && !p.input(1 - i)?.constTensor());
    if (slot === undefined) return false;
    slots = [slot];
  } else return false;
  for (const i of slots) {
    const old = p.input(i)!;
    const t = old.constTensor()!;
    const values = t.toFloat32().map((v, k) => v * inverse[k % K]!);
    p.setInput(i, g.createInitializer(`${old.name}_smoothed`, (n) => Tensor.fromFloat32(n, t.dims, values)));
    removeUnused(g, new Set([old]));
  }
  p.metadata.set('qarvd.smoothing', input.name);
  return true;
}

/** A float32 constant of K values along the last axis (`[K]`, `[1, K]`, …). */
function isChannelVector(v: Value | null, K: number): boolean {
  const t = v?.constTensor();
  if (!t || t.dataType !== DataType.FLOAT || t.dims.length === 0) return false;
  return t.dims[t.dims.length - 1] === K && t.dims.slice(0, -1).every((d) => d === 1);
}
