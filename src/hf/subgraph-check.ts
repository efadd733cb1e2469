/**
 * The quantization passes rewrite the linear layers of the main graph only. A graph whose
 * `If` / `Loop` / `Scan` subgraphs hold layers they would quantize (an optimum merged
 * decoder's `use_cache_branch` If holds the whole decoder twice) is refused rather than
 * half-quantized.
 *
 * Rules:
 * 1. Every node of the main graph with subgraphs is checked; nested subgraphs count towards
 *    the main-graph node that holds them.
 * 2. A subgraph layer counts when the pass would select it in the main graph (same
 *    `findLinearLayers` rules, min-k and include/exclude), so excluding those names lets the
 *    main graph be quantized.
 * 3. A subgraph MatMul/Gemm whose weight is a constant counts too when `findLinearLayers`
 *    skips it for any other reason than min-k, include/exclude or a non-constant weight: in a
 *    subgraph nothing would report that skip, and a weight of the parent graph shared by both
 *    branches of an `If` is skipped as "also used by" the other branch — that layer would stay
 *    float without a word.
 * 4. The error names the node, its op and one of the layers, and says what to do; it does not
 *    suggest optimum's split decoders (decoder_model.onnx, decoder_with_past_model.onnx), as
 *    transformers.js v4 loads only decoder_model_merged.onnx for encoder-decoder models
 *    (session_config.js). In folder mode with several graphs convert prefixes the graph's file.
 */
import type { Graph } from '../graph/ir/graph.ts';
import type { Model } from '../graph/ir/model.ts';
import type { Node } from '../graph/ir/node.ts';
import { selectedByGlobs } from '../passes/quant/glob.ts';
import { DEFAULT_MIN_K, findLinearLayers, type LayerSelection } from '../passes/quant/linear-layers.ts';

/** Throws when a subgraph of the main graph holds linear layers the pass would quantize. */
export function refuseSubgraphLayers(model: Model, selection: LayerSelection): void {
  for (const node of model.graph) {
    const found: string[] = [];
    for (const g of node.subgraphs()) found.push(...layersIn(g, selection));
    if (found.length === 0) continue;
    throw new Error(
      `node ${node.name || '(unnamed)'} (${node.opType}): linear layers inside If/Loop subgraphs are not quantized yet; ` +
        `its subgraphs hold ${found.length} (e.g. ${found[0]}). Leave those layers out with --<pass>.exclude (they stay float), ` +
        `or quantize a graph without subgraphs. transformers.js (v4) loads no split decoder instead of a merged one: ` +
        `encoder-decoder models load decoder_model_merged.onnx only, never decoder_model.onnx or decoder_with_past_model.onnx; ` +
        `a decoder-only model loads from model.onnx, which a recent optimum exports without If`,
    );
  }
}

function layersIn(graph: Graph, selection: LayerSelection): string[] {
  const { layers, skipped } = findLinearLayers(graph, selection);
  const names = layers.map((l) => l.name);
  const { include = [], exclude = [], minK = DEFAULT_MIN_K } = selection;
  for (const s of skipped) {
    // K is known when the layer matched and was set aside afterwards (min-k, globs, or a
    // shared weight); otherwise the match failed, which matters only for a constant weight.
    const counts = s.K !== undefined ? s.K >= minK : hasConstantWeight(s.node);
    if (counts && selectedByGlobs(s.name, include, exclude)) names.push(s.name);
  }
  for (const node of graph) for (const g of node.subgraphs()) names.push(...layersIn(g, selection));
  return names;
}

/** True when input 1 of a MatMul/Gemm is a constant, possibly behind Identity/Cast/Transpose. */
function hasConstantWeight(node: Node): boolean {
  for (let v = node.input(1); v; ) {
    if (v.constTensor()) return true;
    const p = v.producer();
    if (!p || p.domain !== '' || !['Identity', 'Cast', 'Transpose'].includes(p.opType)) return false;
    v = p.input(0);
  }
  return false;
}
