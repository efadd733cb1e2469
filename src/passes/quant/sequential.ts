/**
 * Sequential calibration (`sequential true`, issue 14 item 6): the statistics of each stage of
 * the network are collected with the stages before it already quantized and reconstructed, so
 * that what a layer is fitted to includes the error upstream of it — during an autoregressive
 * rollout that error also reaches later chunks through the generated context, and the
 * calibration rollouts of a partly quantized model carry it there too.
 *
 * 1. Stages: the selected layers in graph order, cut wherever the repeated block of the node
 *    name changes (`/blocks.3/`, `/model/layers.12/`, `layers.12.attention.wq`: the rule of
 *    `scope blocks`, repeated-blocks.ts); layers outside any block (embeddings, the head) form
 *    stages of their own between the blocks. A model whose names show no repeated block is one
 *    stage (the plain calibration).
 * 2. Stage 0 is calibrated on the float model as usual: ranges, S1's sensitivity and scales
 *    for every layer, reconstruction statistics for stage 0's layers.
 * 3. The quantizer then walks the layers of the model itself. When it reaches the first layer
 *    of stage s ≥ 1, the stages before it are quantized and reconstructed in the model (the
 *    output's own layers), and stage s is calibrated again on it (ranges, scale search, Gram
 *    matrices, activation errors) with S1's curve from stage 0 (S1 measures the whole quantized
 *    model once; measuring it per stage would cost a rollout per chunk per stage). The
 *    previous stage's statistics are released first, so memory holds one stage's (or, under
 *    `statistics-memory`, one group of a stage's: calibration/grouped.ts).
 *
 * Cost: one collection (and scale search) per stage on top of the usual calibration. Each
 * layer is reconstructed once. If a stage's calibration fails, the model in memory has the
 * earlier stages quantized (the CLI writes nothing).
 */
import type { Model } from '../../graph/ir/model.ts';
import type { Logger } from '../log.ts';
import { calibrate, type CalibrateOptions, type CalibrationResult } from '../calibration/calibrate.ts';
import type { ReconLookup, ReconStats } from '../calibration/gram.ts';
import type { StatisticsByGroup } from '../calibration/grouped.ts';
import type { LoadedCalibration } from '../calibration/module.ts';
import type { QuantConfig } from './config.ts';
import { findLinearLayers, type LayerSelection, type LinearLayer } from './linear-layers.ts';
import { blockOf, modulePath, repeatedStacks } from './repeated-blocks.ts';

/**
 * Rule 1: consecutive layers (graph order) in the same repeated block, the blocks found as
 * `scope blocks` finds them (repeated-blocks.ts): from `all`, every linear layer of the model
 * (default: `layers`), so that a selection of one layer per block (include ffn.2 only) still
 * cuts a stage per block.
 */
export function sequentialStages(layers: readonly LinearLayer[], all: readonly LinearLayer[] = layers): LinearLayer[][] {
  const stacks = repeatedStacks(all.map((l) => modulePath(l.node, l.name)));
  const stages: LinearLayer[][] = [];
  let key: string | undefined | null = null;
  for (const l of layers) {
    const k = blockOf(modulePath(l.node, l.name), stacks);
    if (stages.length === 0 || k !== key) stages.push([]);
    stages.at(-1)!.push(l);
    key = k;
  }
  return stages;
}

/** What the stages need besides calibration. */
export interface SequentialContext {
  selection: LayerSelection;
  log: Logger;
}

/**
 * Calibrates stage 0 of `layers` (see the module doc) and returns a result covering every
 * layer, as {@link calibrate} would, whose `grouped` statistics calibrate each later stage when
 * the quantizer reaches it; its maps (ranges, scales, activation errors, the table's layers,
 * the timings) are updated then, in place.
 */
export async function calibrateSequentially(model: Model, layers: LinearLayer[], calib: LoadedCalibration, config: QuantConfig, options: CalibrateOptions, ctx: SequentialContext): Promise<CalibrationResult> {
  const stages = sequentialStages(layers, findLinearLayers(model.graph, { minK: 0 }).layers);
  if (stages.length === 1) {
    ctx.log.info('sequential: the layer names show no repeated blocks (numbered segments like /blocks.N/ with the same layers in each); calibrated as one stage');
    return calibrate(model, layers, calib, config, options);
  }
  const first = await calibrate(model, layers, calib, config, { ...options, statisticsFor: new Set(stages[0]!.map((l) => l.name)) });
  if (!first.recon) throw new Error('internal: sequential calibration without reconstruction statistics');
  const merged: CalibrationResult = { ...first, ranges: new Map(first.ranges), timings: { ...first.timings } };
  if (first.scales) merged.scales = new Map(first.scales);
  if (first.activation) merged.activation = new Map(first.activation);
  if (first.table) merged.table = { ...first.table, layers: { ...first.table.layers } };
  const stageOptions: CalibrateOptions = { ...options, ...(first.sensitivity ? { sensitivityCurve: first.sensitivity } : {}), sensitivityFile: undefined, saveSensitivity: undefined, laterStage: true };
  merged.grouped = new SequentialStatistics(model, stages, first, merged, (stageLayers) => calibrate(model, stageLayers, calib, config, stageOptions), ctx);
  return merged;
}

/** The statistics of one stage at a time, each calibrated on the model as the quantizer reaches it. */
class SequentialStatistics implements StatisticsByGroup {
  private stage = 0;
  private current: ReconLookup;
  /** The grouped statistics of the stage at hand, if its statistics are grouped. */
  private inner: StatisticsByGroup | undefined;
  private readonly stageOf = new Map<string, number>();
  private listener: ((stats: Map<string, ReconStats>) => void) | undefined;
  /** Stage 0's statistics, until the quantizer moves on (then nothing here keeps them). */
  private first: { recon?: Map<string, ReconStats>; grouped?: StatisticsByGroup };

  constructor(
    private readonly model: Model,
    private readonly stages: LinearLayer[][],
    first: CalibrationResult,
    private readonly merged: CalibrationResult,
    private readonly calibrateStage: (layers: LinearLayer[]) => Promise<CalibrationResult>,
    private readonly ctx: SequentialContext,
  ) {
    this.first = { ...(first.recon ? { recon: first.recon } : {}), ...(first.grouped ? { grouped: first.grouped } : {}) };
    this.current = first.grouped ?? first.recon!;
    this.inner = first.grouped;
    stages.forEach((st, i) => st.forEach((l) => this.stageOf.set(l.name, i)));
  }

  get(name: string): ReconStats | undefined {
    return this.current.get(name);
  }

  onGroup(fn: (stats: Map<string, ReconStats>) => void): void {
    this.listener = fn;
    if (this.first.grouped) this.first.grouped.onGroup(fn);
    else fn(this.first.recon!);
  }

  async prepare(layer: LinearLayer): Promise<void> {
    const s = this.stageOf.get(layer.name);
    if (s !== undefined && s !== this.stage) await this.calibrateStage_(s);
    await this.inner?.prepare(layer);
  }

  private async calibrateStage_(s: number): Promise<void> {
    await this.inner?.dispose();
    this.inner = undefined;
    this.current = new Map();
    this.first = {};
    delete this.merged.recon;
    this.stage = s;
    const { model, merged, ctx } = this;
    const names = new Set(this.stages[s]!.map((l) => l.name));
    // The layers as the model has them now (the stages before are quantized in it).
    const stageLayers = findLinearLayers(model.graph, { ...ctx.selection, names }).layers;
    if (stageLayers.length !== names.size) throw new Error(`internal: sequential stage ${s} found ${stageLayers.length} of its ${names.size} layers in the model`);
    ctx.log.info(`sequential: stage ${s + 1} of ${this.stages.length} (${stageLayers.length} layers from ${stageLayers[0]!.name}), upstream quantized`);
    const r = await this.calibrateStage(stageLayers);
    for (const [name, v] of r.ranges) merged.ranges.set(name, v);
    for (const [name, v] of r.scales ?? []) merged.scales?.set(name, v);
    for (const [name, v] of r.activation ?? []) merged.activation?.set(name, v);
    if (merged.table && r.table) Object.assign(merged.table.layers, r.table.layers);
    merged.timings.collect += r.timings.collect;
    merged.timings.search += r.timings.search;
    this.inner = r.grouped;
    this.current = r.grouped ?? r.recon!;
    if (this.listener) {
      if (r.grouped) r.grouped.onGroup(this.listener);
      else this.listener(r.recon!);
    }
  }

  async dispose(): Promise<void> {
    await this.inner?.dispose();
    this.inner = undefined;
  }
}
