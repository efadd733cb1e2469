/**
 * The quantization passes rewrite the linear layers of the main graph only. A graph whose
 * `If` / `Loop` / `Scan` subgraphs hold layers they would quantize (an optimum merged
 * decoder's `use_cache_branch` If holds the whole decoder twice) is refused rather than
 * half-quantized.
 *
 * Rules:
 * 1. Every node of the main graph with subgraphs is checked; nested subgraphs count towards
 *    the main-graph node that holds them.
 * 2. A subgraph layer counts only when the pass would select it in the main graph (same
 *    `findLinearLayers` rules, min-k and include/exclude), so excluding those names lets the
 *    main graph be quantized.
 * 3. The error names the node, its op and one of the layers, and says what to do.
 */
import type { Graph } from '../graph/ir/graph.ts';
import type { Model } from '../graph/ir/model.ts';
import { findLinearLayers, type LayerSelection } from '../passes/quant/linear-layers.ts';

/** Throws when a subgraph of the main graph holds linear layers the pass would quantize. */
export function refuseSubgraphLayers(model: Model, selection: LayerSelection): void {
  for (const node of model.graph) {
    const found: string[] = [];
    for (const g of node.subgraphs()) found.push(...layersIn(g, selection));
    if (found.length === 0) continue;
    throw new Error(
      `node ${node.name || '(unnamed)'} (${node.opType}): linear layers inside If/Loop subgraphs are not quantized yet; ` +
        `its subgraphs hold ${found.length} (e.g. ${found[0]}). Quantize graphs without subgraphs (for a merged decoder: ` +
        `decoder_model.onnx and decoder_with_past_model.onnx), or leave those layers out with --<pass>.exclude`,
    );
  }
}

function layersIn(graph: Graph, selection: LayerSelection): string[] {
  const names = findLinearLayers(graph, selection).layers.map((l) => l.name);
  for (const node of graph) for (const g of node.subgraphs()) names.push(...layersIn(g, selection));
  return names;
}
