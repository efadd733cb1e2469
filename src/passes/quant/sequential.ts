/**
 * Sequential calibration (`sequential true`, issue 14 item 6): the statistics of each stage of
 * the network are collected with the stages before it already quantized and reconstructed, so
 * that what a layer is fitted to includes the error upstream of it — during an autoregressive
 * rollout that error also reaches later chunks through the generated context, and the
 * calibration rollouts of a partly quantized model carry it there too.
 *
 * 1. Stages: the selected layers in graph order, cut wherever the repeated-block part of the
 *    node name changes (`blocks.3`, `layers.12`, `h.0`: {@link blockOf}); layers outside any
 *    block (embeddings, the head) form stages of their own between the blocks. A model whose
 *    names show no block is one stage (the plain calibration).
 * 2. Stage 0 is calibrated on the float model as usual: ranges, S1's sensitivity, scales and
 *    statistics for every layer. Each later stage is calibrated again (ranges, scale search,
 *    Gram matrices, activation errors) on a working copy whose earlier stages are quantized
 *    exactly as the output will be, with S1's curve from stage 0 (S1 measures the whole
 *    quantized model once; measuring it per stage would cost a rollout per chunk per stage).
 * 3. The caller quantizes the model once with the merged statistics; the copy is discarded.
 *    The copy's quantization of each stage equals the output's (same plans, same
 *    statistics), so every stage is fitted to the upstream the output really has.
 *
 * Cost: one collection (and scale search) per stage on top of the usual calibration, and each
 * layer's reconstruction twice (once in the copy).
 */
import { withModelCopy } from '../../graph/serde/model-copy.ts';
import type { Model } from '../../graph/ir/model.ts';
import type { Logger } from '../log.ts';
import { calibrate, type CalibrateOptions, type CalibrationResult } from '../calibration/calibrate.ts';
import type { LoadedCalibration } from '../calibration/module.ts';
import type { QuantConfig } from './config.ts';
import { findLinearLayers, type LayerSelection, type LinearLayer } from './linear-layers.ts';
import { quantizeLinearLayers, type Reconstruction } from './quantize-layers.ts';

/**
 * The repeated block a node name belongs to: the last path component of the form
 * `<word>.<index>` or `<word>_<index>` whose word names a block (`blocks.3`, `layers.12`,
 * `h.0`, `layer_7`), or undefined. Sub-module indices inside a block (`ffn.2`) do not count.
 */
export function blockOf(name: string): string | undefined {
  const parts = name.split('/');
  for (const part of parts) if (/^(blocks?|layers?|h|transformer_blocks|encoder_layers?|decoder_layers?)[._]\d+$/i.test(part)) return part;
  return undefined;
}

/** The stages of {@link blockOf}'s rule 1: consecutive layers (graph order) with the same block. */
export function sequentialStages(layers: readonly LinearLayer[]): LinearLayer[][] {
  const stages: LinearLayer[][] = [];
  let key: string | undefined | null = null;
  for (const l of layers) {
    const k = blockOf(l.name);
    if (stages.length === 0 || k !== key) stages.push([]);
    stages.at(-1)!.push(l);
    key = k;
  }
  return stages;
}

/** What the stages need besides calibration: how the copy quantizes a finished stage. */
export interface SequentialContext {
  selection: LayerSelection;
  method: string;
  reconstruction: Omit<Reconstruction, 'stats' | 'activation'>;
  log: Logger;
}

/**
 * Calibrates `layers` of `model` stage by stage (see the module doc) and returns one result
 * covering every layer, as {@link calibrate} would: stage 0's chunks, sensitivity and α, the
 * per-layer maps merged, the table's layers merged, the timings summed.
 */
export async function calibrateSequentially(model: Model, layers: LinearLayer[], calib: LoadedCalibration, config: QuantConfig, options: CalibrateOptions, ctx: SequentialContext): Promise<CalibrationResult> {
  const stages = sequentialStages(layers);
  const first = await calibrate(model, layers, calib, config, options);
  if (stages.length === 1) {
    ctx.log.info('sequential: the layer names show no repeated blocks (blocks.N, layers.N, h.N); calibrated as one stage');
    return first;
  }
  if (!first.recon) throw new Error('internal: sequential calibration without reconstruction statistics');
  const merged: CalibrationResult = { ...first, ranges: new Map(first.ranges), recon: new Map(first.recon), timings: { ...first.timings } };
  if (first.scales) merged.scales = new Map(first.scales);
  if (first.activation) merged.activation = new Map(first.activation);
  if (first.table) merged.table = { ...first.table, layers: { ...first.table.layers } };
  const stageOptions: CalibrateOptions = { ...options, ...(first.sensitivity ? { sensitivityCurve: first.sensitivity } : {}), sensitivityFile: undefined };
  await withModelCopy(model, 'qarvd-sequential-', async (copy) => {
    for (let s = 1; s < stages.length; s++) {
      const done = new Set(stages[s - 1]!.map((l) => l.name));
      const reconstruction: Reconstruction = { ...ctx.reconstruction, stats: merged.recon!, ...(merged.activation ? { activation: merged.activation } : {}) };
      quantizeLinearLayers(copy, config, { ...ctx.selection, names: done }, merged.ranges, ctx.method, merged.scales, reconstruction);
      const names = new Set(stages[s]!.map((l) => l.name));
      const stageLayers = findLinearLayers(copy.graph, { ...ctx.selection, names }).layers;
      if (stageLayers.length !== names.size) throw new Error(`internal: sequential stage ${s} found ${stageLayers.length} of its ${names.size} layers in the working copy`);
      ctx.log.info(`sequential: stage ${s + 1} of ${stages.length} (${stageLayers.length} layers from ${stageLayers[0]!.name}), upstream quantized`);
      const r = await calibrate(copy, stageLayers, calib, config, stageOptions);
      for (const [name, v] of r.ranges) merged.ranges.set(name, v);
      for (const [name, v] of r.recon ?? []) merged.recon!.set(name, v);
      for (const [name, v] of r.scales ?? []) merged.scales?.set(name, v);
      for (const [name, v] of r.activation ?? []) merged.activation?.set(name, v);
      if (merged.table && r.table) Object.assign(merged.table.layers, r.table.layers);
      merged.timings.collect += r.timings.collect;
      merged.timings.search += r.timings.search;
    }
  });
  return merged;
}
