import type { Model } from '../../graph/ir/model.ts';
import { bitsLabel, keepsFloatInputs, layerConfig, type QuantConfig } from './config.ts';
import { emitLayer, type WeightCache } from './emit.ts';
import { findLinearLayers, type LayerSelection, type LinearLayer, type SkippedLayer } from './linear-layers.ts';
import { ensureDomain, qdqDomainAdvice, raiseOpset } from './opset.ts';
import { planLayer, planWeights, type ChannelRanges, type LayerPlan, type LayerScales, type WeightPlan } from './plan.ts';
import { type ExternalWeight, PlanPool, readWeightInto } from './plan-pool.ts';
import { weightLabel } from './finite-weights.ts';
import { weightBytes } from '../../graph/weight-bytes.ts';
import { foldedExternalSource } from './fold-split.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import { SpillFile, type SpillPlace } from '../../graph/serde/spill-file.ts';
import { letSignalsRun } from '../../graph/serde/temp-files.ts';
import { EXTERNAL_THRESHOLD_BYTES } from '../../graph/serde/data-layout.ts';
import { layerEntry, type QuantReport, skippedEntry, totals } from './report.ts';
import { keepBetterForm, reconstructPlan, reconstructPlans, type ReconstructOptions } from './reconstruct.ts';
import type { ReadBuffer } from '../../graph/ir/tensor.ts';
import { weightMatrix, weightMatrixView } from './layer-weights.ts';
import { replaceLayer } from './rewire.ts';
import { floatComputeReason } from './small-layers.ts';
import { branchForm } from './forms.ts';
import type { ReconLookup, ReconStats } from '../calibration/gram.ts';
import type { ActivationShift } from '../calibration/activation-shift.ts';
import type { Value } from '../../graph/ir/value.ts';

/** Per-layer activation ranges from calibration, keyed by the layer's node name. */
export type ActivationRanges = Map<string, ChannelRanges>;

/** Per-layer calibrated scales (the search, or a calibration table), keyed by the layer's node name. */
export type CalibratedScales = Map<string, LayerScales>;

/** Calibration statistics and how to use them (see reconstruct.ts). */
export interface Reconstruction {
  /** α-combined statistics by layer name. */
  stats: ReconLookup;
  /**
   * Awaited before each layer is quantized, in layer order: grouped statistics
   * (calibration/grouped.ts) collect the layer's group there, after the previous group's
   * layers are done. Only {@link quantizeLinearLayersThreaded} calls it.
   */
  prepare?: (layer: LinearLayer) => Promise<void>;
  options: ReconstructOptions;
  /** `dual-scale auto`: keep a split only where it lowers the layer's weighted error. */
  splitAuto: boolean;
  /** Per layer and form, the activation quantizers' mean error `E[Q(x) − x]` (quantized activations; bias correction). */
  activation?: Map<string, ActivationShift>;
  /** The file the statistics were read from ("statistics file x.bin"), named when a layer's reconstruction fails. */
  source?: string;
  /**
   * Filled with each layer's final plan in its unsplit form (under `splitAuto`, the single
   * form it compared a kept split with), by layer name, quantized weights included: what
   * `dual-scale auto`'s split check emits as the model without the splits (split-check.ts).
   */
  recordUnsplit?: Map<string, LayerPlan>;
  /** Plans to emit as they are, by layer name (recorded by {@link recordUnsplit} on another copy of the model): nothing is planned or reconstructed. */
  given?: Map<string, LayerPlan>;
}

/**
 * Quantizes every eligible linear layer of the main graph: find → decide (S2) → emit →
 * swap, recording the decision in the report and in the final node's metadata
 * (`qarvd.decision`), where `convert diff` reads it. A layer's activation quantizers come from
 * `scales` when it has an entry there, else from its min/max `ranges`. With `recon`, each
 * layer's weights are reconstructed from its input's statistics (weights shared by several
 * layers are rounded to nearest, since one integer tensor cannot fit two inputs) and, under
 * `splitAuto`, a split layer is compared with its unsplit form. One layer at a time, on this
 * thread; {@link quantizeLinearLayersThreaded} does the same with worker threads.
 */
export function quantizeLinearLayers(model: Model, config: QuantConfig, selection: LayerSelection, ranges?: ActivationRanges, method = 'q-arvd', scales?: CalibratedScales, recon?: Reconstruction): QuantReport {
  if (recon?.prepare) throw new Error('internal: statistics collected group by group need quantizeLinearLayersThreaded');
  const q = new LayerQuantizer(model, config, selection, ranges, method, scales, recon);
  for (const layer of q.layers) q.quantize(layer);
  return q.finish();
}

/**
 * {@link quantizeLinearLayers} with each layer's weight-only work (outliers, min/max
 * quantization, errors: `planWeights`) on `threads` worker threads, a few layers ahead of the
 * layer being emitted; the graph is rewritten on this thread in layer order. The plans are
 * pure functions of the weights, so the output is the same for any number of threads.
 * @param threads worker threads; 1 (or a single layer) runs everything on this thread
 * @param spillPlace where every quantized tensor of 1 KiB or more waits for the save: beside the
 *   output, for the save to take over (spill-file.ts); none: only streamed layers' wait, in the
 *   OS temp folder
 */
export async function quantizeLinearLayersThreaded(threads: number, model: Model, config: QuantConfig, selection: LayerSelection, ranges?: ActivationRanges, method = 'q-arvd', scales?: CalibratedScales, recon?: Reconstruction, spillPlace?: SpillPlace): Promise<QuantReport> {
  const q = new LayerQuantizer(model, config, selection, ranges, method, scales, recon, spillPlace);
  const layers = q.layers;
  const prepare = recon?.prepare;
  // Given plans need no weight-only work: the workers would plan what is not used.
  if (threads <= 1 || layers.length <= 1 || recon?.given) {
    // Weights in a data file are read into one buffer reused from layer to layer, as the workers do.
    const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
    for (const layer of layers) {
      // One turn of the event loop per layer, so that Ctrl-C is heard during a long conversion.
      await letSignalsRun();
      await prepare?.(layer);
      const source = recon?.given ? undefined : externalWeight(layer);
      q.quantize(layer, source ? planWeights(readWeightInto(source, layer.K, layer.N, scratch), layer.K, layer.N, layerConfig(config, layer), weightLabel(layer)) : undefined);
    }
    return q.finish();
  }
  const pool = new PlanPool(threads);
  try {
    // Enough layers in flight to keep every worker busy while this thread emits and writes a
    // layer: each holds its quantized rows until it is emitted, which bounds the memory. Plans
    // come back in layer order and a block's layers differ up to 6× in size, so with two per
    // worker one could wait for the other's large layer; eight per worker made q-arvd 7–8%
    // faster on the 30-block Wan-shaped model (docs/speed.md). The imbalance does not grow
    // with the cores: at most 16 beyond two per worker, so many cores do not hold the output.
    const window = Math.min(8 * threads, 2 * threads + 16) + 1;
    const ahead = new Map<number, Promise<WeightPlan>>();
    const submit = (i: number) => {
      const layer = layers[i];
      if (!layer) return;
      const planned = pool.plan(layerWeightForWorker(layer), layer.K, layer.N, layerConfig(config, layer), weightLabel(layer));
      // A failure is thrown where this layer's plan is awaited, not as an unhandled rejection.
      planned.catch(() => undefined);
      ahead.set(i, planned);
    };
    for (let i = 0; i < window; i++) submit(i);
    for (let i = 0; i < layers.length; i++) {
      const weights = await ahead.get(i)!;
      ahead.delete(i);
      submit(i + window);
      await prepare?.(layers[i]!);
      q.quantize(layers[i]!, weights);
    }
  } finally {
    await pool.close();
  }
  return q.finish();
}

/** Where a float32 `[K, N]` weight in a data file is (with fold-split's reordering, when it made one), or undefined. */
function externalWeight(layer: LinearLayer): ExternalWeight | undefined {
  const t = layer.weight;
  // A weight fold-split reordered is read from its data file and reordered after the read too.
  const folded = foldedExternalSource(t);
  const location = t.external ?? folded?.location;
  if (location && t.dataType === DataType.FLOAT && !layer.transposed && layer.alpha === 1 && location.length === layer.K * layer.N * 4) return { name: t.name, location, ...(folded ? { permutation: folded.permutation } : {}) };
  return undefined;
}

/** The weight as planWeights reads it, in a buffer of its own that can be moved to a worker, or where the worker reads it. */
function layerWeightForWorker(layer: LinearLayer): Float32Array | ExternalWeight {
  const source = externalWeight(layer);
  if (source) return source;
  const w = weightMatrixView(layer);
  // A view of bytes the model holds must not be moved away from it: copy those.
  return layer.weight.isInMemory && !layer.transposed && layer.alpha === 1 ? w.slice() : w;
}

/** The state of one quantization run over a model's layers, and the work on one layer. */
class LayerQuantizer {
  readonly layers: LinearLayer[];
  private readonly skipped: SkippedLayer[];
  private readonly bytesBefore: number;
  private readonly plans: LayerPlan[] = [];
  private readonly cache: WeightCache = new Map();
  private readonly uses = new Map<Value, number>();
  /** Where quantized weights wait for the save (created on first use). */
  private spill: SpillFile | undefined;
  /** Every initializer the layers' replacements created, in order: they go first in the model (see {@link finish}). */
  private readonly created: Value[] = [];
  /** The widened normal branch of a streamed split layer, until the layer's tensors are spilled. */
  private readonly widenScratch: ReadBuffer = { bytes: new Uint8Array(0) };

  constructor(
    private readonly model: Model,
    private readonly config: QuantConfig,
    selection: LayerSelection,
    private readonly ranges: ActivationRanges | undefined,
    private readonly method: string,
    private readonly scales: CalibratedScales | undefined,
    private readonly recon: Reconstruction | undefined,
    private readonly spillPlace?: SpillPlace,
  ) {
    this.bytesBefore = weightBytes(model.graph);
    ({ layers: this.layers, skipped: this.skipped } = findLinearLayers(model.graph, selection));
    if (config.aBits !== null && this.layers.length > 0) {
      const missing = this.layers.filter((l) => !keepsFloatInputs(config, l) && !ranges?.has(l.name) && !scales?.has(l.name));
      if (missing.length) {
        throw new Error(`activation quantization (A${config.aBits}) needs calibration, and ${missing.length} layer(s) have no activation range (first: ${missing[0]!.name}); give a calibration module, or use a-bits none for weight-only`);
      }
    }
    prepareOpsets(model, config, this.layers.some((l) => !l.wBits), method);
    // Layers outside the blocks at 8 bits (scope outer-w8) may need what 8-bit forms need.
    const outer = this.layers.find((l) => l.wBits);
    if (outer) prepareOpsets(model, layerConfig(config, outer), true, method);
    for (const l of this.layers) this.uses.set(l.weightValue, (this.uses.get(l.weightValue) ?? 0) + 1);
  }

  /** Plans, emits and swaps in one layer; `weights`: its weight-only plan, computed elsewhere. */
  quantize(layer: LinearLayer, weights?: WeightPlan): void {
    const { ranges, scales, recon, model } = this;
    const config = layerConfig(this.config, layer);
    const graph = model.graph;
    const given = recon?.given?.get(layer.name);
    // A given plan was made for the same layer of another copy of the model: it describes this
    // one. A layer without one (no statistics) is planned here.
    let plan = given ? { ...given, layer } : planLayer(layer, config, ranges?.get(layer.name), scales?.get(layer.name), weights);
    const stats = given ? undefined : recon?.stats.get(layer.name);
    if (recon && stats) {
      try {
        plan = this.reconstruct(layer, plan, config, stats, recon);
      } catch (e) {
        // A failure deep in the arithmetic (a Cholesky pivot) says nothing of where it happened:
        // with many layers, and statistics possibly from a file, the user needs both.
        throw new Error(`layer ${layer.name}: reconstruction failed${recon.source ? ` (statistics from ${recon.source})` : ''}: ${(e as Error).message}`, { cause: e });
      }
    }
    // An unsplit plan kept for the split check holds its own branches: this one's are emptied below.
    if (recon?.recordUnsplit && plan.mode === 'single') recon.recordUnsplit.set(layer.name, { ...plan, branches: plan.branches.map((b) => ({ ...b })) });
    plan.floatCompute = floatComputeReason(plan, config);
    // A streamed layer's tensors are spilled right below, so its widened normal branch can be
    // written into one buffer reused from layer to layer (no K × N buffer to fault in per layer).
    const streamed = !layer.weight.isInMemory;
    const { builder, output } = emitLayer(plan, config, graph, this.cache, model.opset(''), streamed && layer.K * layer.N >= SPILL_MIN_BYTES ? this.widenScratch : undefined);
    const old = [...(layer.bias?.addNode ? [layer.bias.addNode] : []), layer.node];
    replaceLayer(graph, layer.node, builder.nodes, layer.output, output, old);
    output.producer()!.metadata.set('qarvd.decision', JSON.stringify(decisionOf(plan, config, this.method)));
    // A weight streamed from a data file streams out: its quantized form waits for the save
    // in the spill file, not in memory. The plan keeps only what the report needs.
    // With a place beside the output every new tensor goes there, streamed or not (a smoothed
    // copy of a weight is in memory): the save takes that file over only when it holds all of them.
    if (streamed || this.spillPlace) this.spillNew(builder.created);
    this.created.push(...builder.created);
    for (const b of plan.branches) b.wq = EMPTY;
    this.plans.push(plan);
  }

  /** `plan` fitted to the layer's statistics (and, with `dual-scale auto`, the better of split and unsplit). */
  private reconstruct(layer: LinearLayer, plan: LayerPlan, config: QuantConfig, stats: ReconStats, recon: Reconstruction): LayerPlan {
    const options: ReconstructOptions = this.uses.get(layer.weightValue)! > 1 ? { ...recon.options, method: 'none' } : recon.options;
    const w = weightMatrix(layer);
    const shifts = config.aBits === null ? undefined : recon.activation?.get(layer.name);
    const form = { plan, activationShift: shifts?.[plan.mode], moments: shifts?.moments?.[plan.mode] };
    if (!(recon.splitAuto && plan.mode === 'dual')) return reconstructPlan(form.plan, w, stats, options, form.activationShift, form.moments);
    // Both forms in one call: they share H, so each Cholesky factorisation serves both.
    const singlePlan = planLayer(layer, { ...config, dualScale: false }, this.ranges?.get(layer.name), this.scales?.get(layer.name));
    const [dual, single] = reconstructPlans([form, { plan: singlePlan, activationShift: shifts?.single, moments: shifts?.moments?.single }], w, stats, options) as [LayerPlan, LayerPlan];
    const kept = keepBetterForm(dual, single);
    if (kept === dual) recon.recordUnsplit?.set(layer.name, single);
    return kept;
  }

  /** Spills the tensors a layer's replacement created, in the order they were created (the order {@link finish} gives them). */
  private spillNew(created: readonly Value[]): void {
    for (const v of created) {
      const t = v.initializer!;
      if (t.byteLength >= SPILL_MIN_BYTES) t.spillTo((this.spill ??= this.spillPlace?.open() ?? new SpillFile()));
    }
  }

  /**
   * Puts the initializers the replacements created first in the model, in the order they were
   * created, and returns the report. A save writes a data file in initializer order, so the
   * quantized weights then start it, in the order a streamed conversion spilled them: the save
   * can take the spill file over as the data file (spill-file.ts). The in-memory conversion
   * gives the same order, so both write the same bytes.
   */
  finish(): QuantReport {
    this.model.graph.moveInitializersFirst(this.created);
    return this.report();
  }

  private report(): QuantReport {
    const { config, method } = this;
    const entries = this.plans.map((p) => layerEntry(p, layerConfig(config, p.layer))).concat(this.skipped.map((s: SkippedLayer) => skippedEntry(s)));
    return { method, bits: bitsLabel(config), format: config.format, layers: entries, totals: totals(entries, this.bytesBefore, weightBytes(this.model.graph)) };
  }
}

/** Tensors that a save with external data would keep inline stay in memory. */
const SPILL_MIN_BYTES = EXTERNAL_THRESHOLD_BYTES;
/** What a plan's branches hold once their quantized weights are in the graph. */
const EMPTY = new Int8Array(0);

function decisionOf(plan: LayerPlan, config: QuantConfig, method: string) {
  const { layer } = plan;
  return { method, layer: layer.name, op: layer.op, K: layer.K, N: layer.N, mode: plan.mode, outliers: plan.mode === 'dual' ? plan.outliers.indices.length : 0, bits: bitsLabel(config), format: config.format, ...(plan.floatCompute ? { compute: 'float' } : {}) };
}

/** `pass`: the pass whose options the refusals name. */
function prepareOpsets(model: Model, config: QuantConfig, any: boolean, pass: string): void {
  if (!any) return;
  // QOperator form: MatMulIntegerToFloat or (weight-only) MatMulNBits, both onnxruntime's own.
  if (config.format === 'qoperator') {
    // The integer op is onnxruntime's own; below opset 10 its QuantizeLinear is too.
    ensureDomain(model, 'com.microsoft');
    // Layers kept in float compute store 4-bit weights as int4 behind a Cast, which needs 21; so
    // do the integer kernels' 4-bit weights with int4-storage.
    if (config.wBits === 4 && (config.integerKernels !== 'always' || config.int4Storage)) tryRaiseOpset(model, 21);
    return;
  }
  if (branchForm(config).op === 'dynamic') {
    // DynamicQuantizeLinear (opset 11) and MatMulInteger (10), default domain; no DequantizeLinear.
    // qdq-domain does not help here: this form has no Q/DQ (the chain is DynamicQuantizeLinear → MatMulInteger).
    raiseOpset(model, 11, 'w8-kernel dynamic (format qdq: DynamicQuantizeLinear)', `use --${pass}.format qoperator (com.microsoft.DynamicQuantizeMatMul, any opset) or --${pass}.w8-kernel nbits`);
    return;
  }
  if (config.qdqDomain === 'com.microsoft') {
    ensureDomain(model, 'com.microsoft');
    return;
  }
  // Q/DQ in the default domain: per-axis weights need 13, blocked weights and a DequantizeLinear
  // of 4-bit types (weight-only W4) 21. W4A8/W4A6 dequantize int8 (forms.ts).
  const int4Dq = config.wBits === 4 && config.aBits === null;
  const needed = int4Dq || config.blockSize > 0 ? 21 : 13;
  raiseOpset(model, needed, config.blockSize > 0 ? 'blocked DequantizeLinear' : int4Dq ? 'DequantizeLinear of int4 weights' : 'per-channel DequantizeLinear', qdqDomainAdvice(pass));
  // Weight-only weights are written blocked (opset 21), the form onnxruntime fuses into
  // MatMulNBits with the fast block size (forms.ts), when the opset can be raised; otherwise
  // they stay per channel at 13, which onnxruntime still fuses, with blocks of 32. W4A8/W4A6
  // store their weights as int4 behind a Cast (int4-storage, and layers kept fp32) from 21;
  // below it, as int8.
  if (config.aBits === null || config.wBits === 4) tryRaiseOpset(model, 21);
}

/** Raises the default opset to `to` when no operator of the model changed meaning on the way; else leaves it. */
function tryRaiseOpset(model: Model, to: number): void {
  if ((model.opset('') ?? 1) >= to) return;
  try {
    raiseOpset(model, to, 'blocked DequantizeLinear or an int4 Cast');
  } catch {
    // An operator changed meaning between the model's opset and `to`: keep the lower opset (per-channel DQ, int8 storage).
  }
}
