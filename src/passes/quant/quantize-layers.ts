import type { Model } from '../../graph/ir/model.ts';
import { bitsLabel, type QuantConfig } from './config.ts';
import { emitLayer, type WeightCache } from './emit.ts';
import { findLinearLayers, type LayerSelection, type SkippedLayer } from './linear-layers.ts';
import { ensureDomain, raiseOpset } from './opset.ts';
import { planLayer, type ChannelRanges, type LayerPlan, type LayerScales } from './plan.ts';
import { layerEntry, type QuantReport, skippedEntry, totals } from './report.ts';
import { replaceLayer } from './rewire.ts';

/** Per-layer activation ranges from calibration, keyed by the layer's node name. */
export type ActivationRanges = Map<string, ChannelRanges>;

/** Per-layer calibrated scales (the search, or a calibration table), keyed by the layer's node name. */
export type CalibratedScales = Map<string, LayerScales>;

/**
 * Quantizes every eligible linear layer of the main graph: find → decide (S2) → emit →
 * swap, recording the decision in the report and in the final node's metadata
 * (`qarvd.decision`), where `convert diff` reads it. A layer's activation quantizers come from
 * `scales` when it has an entry there, else from its min/max `ranges`.
 */
export function quantizeLinearLayers(model: Model, config: QuantConfig, selection: LayerSelection, ranges?: ActivationRanges, method = 'q-arvd', scales?: CalibratedScales): QuantReport {
  const graph = model.graph;
  const bytesBefore = weightBytes(model);
  const { layers, skipped } = findLinearLayers(graph, selection);
  if (config.aBits !== null && layers.length > 0) {
    const missing = layers.filter((l) => !ranges?.has(l.name) && !scales?.has(l.name));
    if (missing.length) {
      throw new Error(`activation quantization (A${config.aBits}) needs calibration, and ${missing.length} layer(s) have no activation range (first: ${missing[0]!.name}); give a calibration module, or use a-bits none for weight-only`);
    }
  }
  prepareOpsets(model, config, layers.length > 0);
  const plans: LayerPlan[] = [];
  const cache: WeightCache = new Map();
  for (const layer of layers) {
    const plan = planLayer(layer, config, ranges?.get(layer.name), scales?.get(layer.name));
    const { builder, output } = emitLayer(plan, config, graph, cache, model.opset(''));
    const old = [...(layer.bias?.addNode ? [layer.bias.addNode] : []), layer.node];
    replaceLayer(graph, layer.node, builder.nodes, layer.output, output, old);
    output.producer()!.metadata.set('qarvd.decision', JSON.stringify(decisionOf(plan, config, method)));
    plans.push(plan);
  }
  const entries = plans.map((p) => layerEntry(p, config)).concat(skipped.map((s: SkippedLayer) => skippedEntry(s)));
  return { method, bits: bitsLabel(config), format: config.format, layers: entries, totals: totals(entries, bytesBefore, weightBytes(model)) };
}

function decisionOf(plan: LayerPlan, config: QuantConfig, method: string) {
  const { layer } = plan;
  return { method, layer: layer.name, op: layer.op, K: layer.K, N: layer.N, mode: plan.mode, outliers: plan.mode === 'dual' ? plan.outliers.indices.length : 0, bits: bitsLabel(config), format: config.format };
}

function prepareOpsets(model: Model, config: QuantConfig, any: boolean): void {
  if (!any) return;
  // QOperator form: MatMulIntegerToFloat or (weight-only) MatMulNBits, both onnxruntime's own.
  if (config.format === 'qoperator') {
    // The integer op is onnxruntime's own; below opset 10 its QuantizeLinear is too.
    ensureDomain(model, 'com.microsoft');
    return;
  }
  if (config.qdqDomain === 'com.microsoft') {
    ensureDomain(model, 'com.microsoft');
    return;
  }
  // Q/DQ in the default domain: per-axis weights need 13, 4-bit types 21.
  const needed = config.wBits === 4 ? 21 : 13;
  raiseOpset(model, needed, config.wBits === 4 ? 'DequantizeLinear of int4 weights' : 'per-channel DequantizeLinear');
}

function weightBytes(model: Model): number {
  let total = 0;
  for (const v of model.graph.initializers.values()) total += v.initializer!.byteLength;
  return total;
}
