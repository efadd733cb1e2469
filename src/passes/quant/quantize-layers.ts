import type { Model } from '../../graph/ir/model.ts';
import { bitsLabel, type QuantConfig } from './config.ts';
import { emitLayer, type WeightCache } from './emit.ts';
import { findLinearLayers, type LayerSelection, type SkippedLayer } from './linear-layers.ts';
import { ensureDomain, raiseOpset } from './opset.ts';
import { planLayer, type ChannelRanges, type LayerPlan, type LayerScales } from './plan.ts';
import { layerEntry, type QuantReport, skippedEntry, totals } from './report.ts';
import { reconstructPlan, type ReconstructOptions } from './reconstruct.ts';
import { weightMatrix } from './layer-weights.ts';
import { replaceLayer } from './rewire.ts';
import type { ReconStats } from '../calibration/gram.ts';
import type { ActivationShift } from '../calibration/activation-shift.ts';
import type { Value } from '../../graph/ir/value.ts';

/** Per-layer activation ranges from calibration, keyed by the layer's node name. */
export type ActivationRanges = Map<string, ChannelRanges>;

/** Per-layer calibrated scales (the search, or a calibration table), keyed by the layer's node name. */
export type CalibratedScales = Map<string, LayerScales>;

/** Calibration statistics and how to use them (see reconstruct.ts). */
export interface Reconstruction {
  /** α-combined statistics by layer name. */
  stats: Map<string, ReconStats>;
  options: ReconstructOptions;
  /** `dual-scale auto`: keep a split only where it lowers the layer's weighted error. */
  splitAuto: boolean;
  /** Per layer and form, the activation quantizers' mean error `E[Q(x) − x]` (quantized activations; bias correction). */
  activation?: Map<string, ActivationShift>;
}

/**
 * Quantizes every eligible linear layer of the main graph: find → decide (S2) → emit →
 * swap, recording the decision in the report and in the final node's metadata
 * (`qarvd.decision`), where `convert diff` reads it. A layer's activation quantizers come from
 * `scales` when it has an entry there, else from its min/max `ranges`. With `recon`, each
 * layer's weights are reconstructed from its input's statistics (weights shared by several
 * layers are rounded to nearest, since one integer tensor cannot fit two inputs) and, under
 * `splitAuto`, a split layer is compared with its unsplit form.
 */
export function quantizeLinearLayers(model: Model, config: QuantConfig, selection: LayerSelection, ranges?: ActivationRanges, method = 'q-arvd', scales?: CalibratedScales, recon?: Reconstruction): QuantReport {
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
  const uses = new Map<Value, number>();
  for (const l of layers) uses.set(l.weightValue, (uses.get(l.weightValue) ?? 0) + 1);
  for (const layer of layers) {
    let plan = planLayer(layer, config, ranges?.get(layer.name), scales?.get(layer.name));
    const stats = recon?.stats.get(layer.name);
    if (recon && stats) {
      const options: ReconstructOptions = uses.get(layer.weightValue)! > 1 ? { ...recon.options, method: 'none' } : recon.options;
      const w = weightMatrix(layer);
      const shifts = options.biasCorrection ? recon.activation?.get(layer.name) : undefined;
      plan = reconstructPlan(plan, w, stats, options, shifts?.[plan.mode]);
      if (recon.splitAuto && plan.mode === 'dual') {
        const single = reconstructPlan(planLayer(layer, { ...config, dualScale: false }, ranges?.get(layer.name), scales?.get(layer.name)), w, stats, options, shifts?.single);
        const choice = { single: single.reconstruction!.errorCorrected, dual: plan.reconstruction!.errorCorrected };
        // Ties keep the single quantizer: a split that does not help only costs a second MatMul.
        plan = choice.dual < choice.single ? plan : single;
        plan.splitChoice = choice;
      }
    }
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
  // Q/DQ in the default domain: per-axis weights need 13, 4-bit types and blocked weights 21.
  const needed = config.wBits === 4 || config.blockSize > 0 ? 21 : 13;
  raiseOpset(model, needed, config.blockSize > 0 ? 'blocked DequantizeLinear' : config.wBits === 4 ? 'DequantizeLinear of int4 weights' : 'per-channel DequantizeLinear');
  // Weight-only weights are written blocked (opset 21), the form onnxruntime fuses into
  // MatMulNBits with the fast block size (forms.ts), when the opset can be raised; otherwise
  // they stay per channel at 13, which onnxruntime still fuses, with blocks of 32.
  if (config.aBits === null && (model.opset('') ?? 1) < 21) {
    try {
      raiseOpset(model, 21, 'blocked DequantizeLinear');
    } catch {
      // An operator changed meaning between the model's opset and 21: keep the per-channel form.
    }
  }
}

function weightBytes(model: Model): number {
  let total = 0;
  for (const v of model.graph.initializers.values()) total += v.initializer!.byteLength;
  return total;
}
