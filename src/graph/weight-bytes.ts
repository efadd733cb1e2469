/**
 * What "weight bytes" means wherever convert prints it (a quantization pass's log line and
 * statistics, `convert diff`'s `weights`): the bytes of every initializer, in subgraphs too,
 * and of every `Constant` node's tensor, since exporters store weights either way. One
 * definition, so the figures agree for the same model (they differed by the Constant tensors:
 * 15,887,040 vs 15,899,104 bytes on tiny-arvd-l, found by a user trial).
 */
import { AttributeType } from './ir/attribute.ts';
import type { Graph } from './ir/graph.ts';
import type { Tensor } from './ir/tensor.ts';
import type { Value } from './ir/value.ts';

/** The initializers of `g` and of every subgraph below it. */
export function allInitializers(g: Graph): Value[] {
  const out = [...g.initializers.values()];
  for (const n of g.allNodes()) for (const sg of n.subgraphs()) out.push(...sg.initializers.values());
  return out;
}

/** Bytes of the initializers (subgraphs included) and of the `Constant` node tensors of `g`. */
export function weightBytes(g: Graph): number {
  let total = 0;
  for (const v of allInitializers(g)) total += v.initializer!.byteLength;
  for (const n of g.allNodes()) {
    if (n.opType !== 'Constant' || n.domain !== '') continue;
    const a = n.attributes.get('value');
    if (a && a.type === AttributeType.TENSOR) total += (a.value as Tensor).byteLength;
  }
  return total;
}
