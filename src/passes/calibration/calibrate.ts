/**
 * Calibration, augment → collect → compute (the only code that runs onnxruntime-node):
 *
 * 1. Augment: the layers' inputs become extra graph outputs of a temporary copy of the model.
 * 2. Collect: every sample of the module runs through it; per layer input and per chunk, the
 *    exact per-channel min/max and a seeded reservoir of rows (bounded memory).
 * 3. S1 (rollout modules, frame weighting on, scale search on): the chunk sensitivity curve,
 *    measured with a plainly quantized copy (min/max, same options) — or read from a file —
 *    gives the per-chunk loss weights α (mean 1). Feeds modules get α = 1 unless a curve
 *    is given.
 * 4. Compute: per layer, S2's plan, then the α-weighted scale search of weights and
 *    activations per branch (see search.ts); dual-scale layers use α = 1 under dual-alpha-one.
 * The result holds the min/max ranges (what `minmax` and scale-search false use), the
 * searched scales, and the calibration table that records every decision.
 */
import { join } from 'node:path';
import type { Model } from '../../graph/ir/model.ts';
import type { Value } from '../../graph/ir/value.ts';
import { saveModel } from '../../graph/serde/io.ts';
import { withModelCopy } from '../../graph/serde/model-copy.ts';
import { type Logger, silentLogger } from '../log.ts';
import { weightMatrix } from '../quant/layer-weights.ts';
import type { LayerSelection, LinearLayer } from '../quant/linear-layers.ts';
import { type BranchScales, planLayer } from '../quant/plan.ts';
import { keepsFloatInputs, type QuantConfig } from '../quant/config.ts';
import { type ActivationRanges, type CalibratedScales, quantizeLinearLayers } from '../quant/quantize-layers.ts';
import { collectStatistics, type CollectedStats, DEFAULT_RESERVOIR_ROWS, observedInputs, openCalibrationSession, rangesOf, readersOf } from './collect.ts';
import { writeJsonAtomic } from '../write-json.ts';
import { readStatsFile, type StatsIdentity, writeStatsFile } from './stats-file.ts';
import { CalibrationError, type LoadedCalibration } from './module.ts';
import type { ReconStats } from './gram.ts';
import { checkEachLayerFits, combineGrams, DEFAULT_STATISTICS_MEMORY, fittingPrefix, gib, GroupedStatistics, type StatisticsByGroup, statisticsBytes, statisticsGroups } from './grouped.ts';
import { type ActivationShift, activationShift } from './activation-shift.ts';
import { progressReporter, seconds } from './progress.ts';
import { type LayerSearch, rowSample, type RowSample, searchLayer } from './search.ts';
import { alphaFromSensitivity, measureSensitivity, readSensitivityFile, type SensitivityCurve } from './sensitivity.ts';
import { type CalibrationTable, TABLE_FORMAT, TABLE_VERSION, tableConfig, tableLayer } from './table.ts';

/** How to calibrate. */
export interface CalibrateOptions {
  /** The layer selection of the pass (S1's quantized copy uses it too). */
  selection?: LayerSelection;
  /** Error-based scale search (q-arvd); false: ranges only, plain min/max quantizers. */
  scaleSearch?: boolean;
  /** S1 frame weighting: measure (rollout modules) or read the sensitivity curve; false: α = 1. */
  frameWeighting?: boolean;
  /** A sensitivity curve file to use instead of measuring it. */
  sensitivityFile?: string;
  /** A sensitivity curve already measured (sequential stages reuse the first stage's); its chunks must be the collected ones. */
  sensitivityCurve?: SensitivityCurve;
  /** Rollouts S1 averages over (the first n samples); 0 or undefined: all. */
  sensitivitySamples?: number;
  /**
   * Keep fp32's final results of S1's rollouts ({@link CalibrationResult.fp32Results}) for the
   * split check; off by default, since they take up to 256 MiB (sensitivity.ts) until the
   * pass ends. Not kept with grouped statistics, where the check does not run.
   */
  keepFp32Results?: boolean;
  /** α = 1 on dual-scale layers (the reference code's choice; default true). */
  dualAlphaOne?: boolean;
  /** A later stage of one run (sequential): the run-wide warnings were given by the first. */
  laterStage?: boolean;
  /** Rows kept per layer input and chunk. Default {@link DEFAULT_RESERVOIR_ROWS}. */
  reservoirRows?: number;
  /** onnxruntime intra-op threads (0: its default). */
  threads?: number;
  /** Also collect the per-chunk Gram matrices and mean rows of the layer inputs, combined with α into {@link CalibrationResult.recon}. */
  reconstruct?: boolean;
  /** Gram matrices from one call in this many per chunk (default 1: every call). */
  gramStride?: number;
  /** `dual-scale auto`: search the unsplit form of split layers too (its scales under role `all`). */
  splitAuto?: boolean;
  /**
   * Bytes the reconstruction statistics may take (grouped.ts); default
   * {@link DEFAULT_STATISTICS_MEMORY}. Over it the layers' statistics are collected group by
   * group ({@link CalibrationResult.grouped}).
   */
  statisticsMemory?: number;
  /** False: refuse, rather than group, statistics over the budget (a caller that cannot hold the session open). Default true. */
  grouping?: boolean;
  /** Collect reconstruction statistics of these layers only (by name; default all): sequential's first stage. */
  statisticsFor?: ReadonlySet<string>;
  /** Also the activation quantizers' error moments `E[eᵀx]`, `E[eᵀe]` per layer and form (activation objectives `quantized`, `asymmetric`). */
  activationMoments?: boolean;
  /** Write the collect step's statistics to this file (stats-file.ts) as soon as they are collected. */
  saveStatistics?: string;
  /** Read the collect step's statistics from this file instead of running the collection (S1 still runs the module). */
  loadStatistics?: string;
  /** Write the S1 curve to this JSON file as soon as it is known (`{ "sensitivity": curve }`, what `sensitivityFile` reads). */
  saveSensitivity?: string;
  log?: Logger;
}

/** What calibration produced. */
export interface CalibrationResult {
  /** Per-layer per-channel min/max over all chunks. */
  ranges: ActivationRanges;
  /** The searched scales (scale search on). */
  scales?: CalibratedScales;
  /** The table recording every decision (scale search on). */
  table?: CalibrationTable;
  chunks: number[];
  sensitivity: SensitivityCurve | null;
  alpha: number[];
  /**
   * Per layer (by name; layers sharing an input share the object): `H = Σ_c α_c G_c` and the
   * weighted mean row (with `reconstruct`); with {@link grouped}, those of its first group only.
   */
  recon?: Map<string, ReconStats>;
  /**
   * The statistics group by group, when they do not fit `statisticsMemory` together: it holds
   * the calibration session open; the caller reconstructs through it and disposes it.
   */
  grouped?: StatisticsByGroup;
  /** Per layer: the activation quantizers' mean error per channel, for bias correction (with `reconstruct` and the scale search's rows). */
  activation?: Map<string, ActivationShift>;
  /** Wall time of each step, in ms. */
  timings: { collect: number; sensitivity: number; search: number };
  /** fp32's final result of the first samples, as S1 rolled them out (when it measured the curve here): the split check reuses them. */
  fp32Results?: Float64Array[][];
}

/**
 * Below this many calibration samples the scale search's activation clipping is warned about:
 * on tiny-arvd-l (16 held-out prompts, W8A8) it made the per-call error worse than min/max's
 * with 2 and 4 rollouts and better from 8 on (docs/calibration.md, "How many samples").
 */
export const FEW_SAMPLES_FOR_CLIPPING = 8;

/** Calibrates the given layers of `model` with a loaded calibration module (see the module doc). */
export async function calibrate(model: Model, layers: LinearLayer[], calib: LoadedCalibration, config: QuantConfig, options: CalibrateOptions = {}): Promise<CalibrationResult> {
  const log = options.log ?? silentLogger;
  const scaleSearch = options.scaleSearch ?? true;
  const reservoirRows = scaleSearch ? options.reservoirRows ?? DEFAULT_RESERVOIR_ROWS : 0;
  if (!Number.isInteger(reservoirRows) || reservoirRows < (scaleSearch ? 1 : 0)) throw new Error(`reservoir-rows must be a positive integer, got ${reservoirRows}`);
  const threads = options.threads ?? 0;
  const progress = progressReporter(log);
  const timings = { collect: 0, sensitivity: 0, search: 0 };
  const session = await openCalibrationSession(model, layers, calib, threads);
  let handedOver = false;
  try {
    let t0 = performance.now();
    const reconstruct = options.reconstruct ?? false;
    const budget = options.statisticsMemory ?? DEFAULT_STATISTICS_MEMORY;
    const grouping = (options.grouping ?? true) && !options.saveStatistics && !options.loadStatistics;
    const statLayers = options.statisticsFor ? layers.filter((l) => options.statisticsFor!.has(l.name)) : layers;
    // Grouped, a layer's statistics are α-weighted, whatever the chunk count; in one collection, one chunk is the least any input needs.
    if (reconstruct) checkEachLayerFits(statLayers, grouping ? null : 1, budget);
    // The first collection keeps the per-chunk Gram sums of the longest prefix of layers that fits.
    let prefix = statLayers.length;
    const keep = (chunks: number) => {
      prefix = Math.min(prefix, fittingPrefix(statLayers, chunks, budget));
      if (!grouping && prefix < statLayers.length) throw new Error(`reconstruction needs ${gib(statisticsBytes(statLayers, chunks))} of statistics for ${observedInputs(statLayers).length} layer inputs with ${chunks} chunk(s), more than statistics-memory ${gib(budget)}; ${options.saveStatistics || options.loadStatistics ? 'save-statistics and load-statistics keep every input in one collection' : 'this calibration cannot be split into groups'}: raise --q-arvd.statistics-memory or quantize fewer layers at a time (include/exclude)`);
      return new Set(observedInputs(statLayers.slice(0, prefix)));
    };
    const gramStride = options.gramStride ?? 1;
    // Hashing the model costs a read of it: only when a statistics file is written or read.
    const identity = (): StatsIdentity => ({ model: session.fingerprint(), origin: calib.origin, ...(calib.source ? { source: calib.source } : {}), samples: calib.samples, reservoirRows, gramStride: reconstruct ? gramStride : null });
    const stats = options.loadStatistics
      ? readStatsFile(options.loadStatistics, { ...identity(), inputs: observedInputs(layers), readers: readersOf(layers), grams: reconstruct })
      : await collectStatistics(session, layers, { reservoirRows, progress, ...(reconstruct ? { gram: { threads, stride: gramStride, keep } } : {}) });
    if (options.loadStatistics && reconstruct) keep(stats.chunks.length);
    if (options.saveStatistics) writeStatsFile(options.saveStatistics, stats, identity());
    timings.collect = performance.now() - t0;
    if (options.loadStatistics) log.info(`collect step read from ${options.loadStatistics} in ${seconds(timings.collect)} (made from ${calib.samples} sample(s) of ${calib.origin})`);
    const ranges = rangesOf(stats, layers);
    checkFiniteRanges(ranges, calib);
    const { chunks } = stats;
    if (!scaleSearch && !reconstruct) {
      log.info(`calibrated ${layers.length} layers on ${calib.samples} sample(s) from ${calib.origin} in ${seconds(timings.collect)} (min/max ranges)`);
      return { ranges, chunks, sensitivity: null, alpha: chunks.map(() => 1), timings };
    }
    const groups = reconstruct && prefix < statLayers.length ? [statLayers.slice(0, prefix), ...statisticsGroups(statLayers.slice(prefix), budget)].filter((g) => g.length > 0) : undefined;
    if (groups) log.info(`reconstruction statistics of ${statLayers.length} layers take ${gib(statisticsBytes(statLayers, chunks.length))} with ${chunks.length} chunk(s), more than statistics-memory ${gib(budget)}: collected in ${groups.length} groups (one more run of the ${calib.samples} calibration sample(s) per group${prefix > 0 ? ' after the first' : ''}; collected after S1, α-weighted, the ${statLayers.length - prefix} layers of those groups take ${gib(statisticsBytes(statLayers.slice(prefix), null))} in all, whatever the chunk count)`);

    t0 = performance.now();
    let sensitivity: SensitivityCurve | null = null;
    let fp32Results: Float64Array[][] | undefined;
    const frameWeighting = options.frameWeighting ?? true;
    if (frameWeighting && options.sensitivityCurve) {
      sensitivity = options.sensitivityCurve;
      if (sensitivity.chunks.join() !== chunks.join()) throw new CalibrationError(calib.origin, `the calibration ran chunks ${chunks.join(', ')}, but the sensitivity curve given covers chunks ${sensitivity.chunks.join(', ')}`);
    } else if (frameWeighting && options.sensitivityFile) {
      sensitivity = readSensitivityFile(options.sensitivityFile, chunks);
    } else if (frameWeighting && calib.module.rollout) {
      // A forgotten tag is the likely cause: S1 then measures one chunk and weighs nothing.
      if (chunks.length === 1) log.warn(`${calib.origin}: every model call of the rollouts was chunk ${chunks[0]} (untagged calls count as chunk 0), so S1 has one chunk to weigh and frame weighting changes nothing; pass { chunk } with each run call (run(feeds, { chunk: i }), README "Calibration modules"), or --q-arvd.frame-weighting false to skip its rollouts`);
      // Grouped statistics skip the split check: nothing would read them.
      if (options.keepFp32Results && !groups) fp32Results = [];
      const kept = fp32Results;
      sensitivity = await withPlainCopy(model, config, options.selection ?? {}, ranges, (path) =>
        measureSensitivity(session, path, calib, chunks, { samples: options.sensitivitySamples, threads, progress, warn: (m) => log.warn(m), fp32Results: kept }),
      );
    } else if (frameWeighting && chunks.length > 1) {
      log.info(`frame weighting needs a rollout module or a sensitivity file; the ${chunks.length} chunks get α = 1`);
    } else if (!frameWeighting && options.sensitivityFile) {
      log.warn('sensitivity file ignored: frame weighting is off');
    }
    timings.sensitivity = performance.now() - t0;
    if (options.saveSensitivity && sensitivity) writeJsonAtomic(options.saveSensitivity, { sensitivity });
    const alpha = sensitivity ? alphaFromSensitivity(sensitivity.normalized) : chunks.map(() => 1);
    // Only the first group's layers: a later group's layer reading a kept input (the text context) gets its statistics with its group.
    const recon = stats.grams ? combineGrams(stats.grams, statLayers.slice(0, prefix), chunks, alpha) : undefined;
    // The per-chunk matrices are not needed once combined.
    delete stats.grams;
    if (!scaleSearch) {
      log.info(`calibrated ${layers.length} layers on ${calib.samples} sample(s) from ${calib.origin}: collect ${seconds(timings.collect)}${sensitivity ? `, S1 ${seconds(timings.sensitivity)} (α ${fmt(alpha)})` : ''} (min/max ranges, reconstruction statistics)`);
      return { ranges, chunks, sensitivity, alpha, timings, ...(recon ? { recon } : {}), ...(fp32Results ? { fp32Results } : {}), ...handOver() };
    }

    if (calib.samples < FEW_SAMPLES_FOR_CLIPPING && !options.laterStage) {
      log.warn(`the scale search chooses activation clipping from ${calib.samples} calibration sample(s); a range clipped to fit so few may not hold for other inputs (tiny-arvd-l at W8A8: per-call error 1.06–1.19× minmax's with 2 or 4 rollouts, 0.66–0.91× with 8, 0.53–0.64× with 16; docs/calibration.md): give at least ${FEW_SAMPLES_FOR_CLIPPING} samples, or --q-arvd.scale-search false for plain min/max`);
    }
    t0 = performance.now();
    const dualAlphaOne = options.dualAlphaOne ?? true;
    const { scales, table } = searchAll(layers, stats, config, alpha, dualAlphaOne, sensitivity, calib, reservoirRows, options.splitAuto ?? false);
    const activation = recon ? activationShifts(layers, stats, chunks, alpha, config, ranges, scales, options.splitAuto ?? false, options.activationMoments ?? false) : undefined;
    timings.search = performance.now() - t0;
    log.info(summary(layers, calib, stats, sensitivity, alpha, table, timings));
    return { ranges, scales, table, chunks, sensitivity, alpha, timings, ...(recon ? { recon } : {}), ...(activation ? { activation } : {}), ...(fp32Results ? { fp32Results } : {}), ...handOver() };

    /** The grouped statistics, which take over the session (it stays open for their collections). */
    function handOver(): { grouped?: StatisticsByGroup } {
      if (!groups) return {};
      handedOver = true;
      return { grouped: new GroupedStatistics(session, groups, recon ?? new Map(), { chunks, alpha, rowCounts: stats.rowCounts!, threads, stride: gramStride, log }) };
    }
  } finally {
    if (!handedOver) await session.dispose();
  }
}

/**
 * The exact per-channel ranges see every value (the sampled overflow check in the session
 * does not): an Inf or NaN anywhere names the layer and the module here, before any quantizer
 * is built from it.
 */
export function checkFiniteRanges(ranges: ActivationRanges, calib: LoadedCalibration): void {
  for (const [name, r] of ranges) {
    for (let k = 0; k < r.min.length; k++) {
      const lo = r.min[k]!;
      const hi = r.max[k]!;
      // A channel that saw no row keeps [+Inf, −Inf]; one that saw values has lo ≤ hi.
      if (lo <= hi && (!Number.isFinite(lo) || !Number.isFinite(hi))) {
        throw new CalibrationError(calib.origin, `the input of layer ${name} reached [${lo}, ${hi}] in channel ${k}: not finite (an Inf in the model's activations on the calibration samples)`);
      }
    }
  }
}

/** Each layer's activation-quantizer mean error (and with `moments` its second moments), over its input's rows weighted by α (as H is). */
function activationShifts(layers: LinearLayer[], stats: CollectedStats, chunks: number[], alpha: number[], config: QuantConfig, ranges: ActivationRanges, scales: CalibratedScales, bothForms: boolean, moments: boolean): Map<string, ActivationShift> {
  const out = new Map<string, ActivationShift>();
  let rows: RowSample | undefined;
  let input: Value | undefined;
  for (const layer of layers) {
    if (layer.input !== input) {
      input = layer.input;
      rows = rowSample(stats.tensors.get(layer.input)!, chunks, alpha);
    }
    // A layer that keeps float inputs (outer-activations float) has no activation quantizer to correct for.
    if (keepsFloatInputs(config, layer)) continue;
    out.set(layer.name, activationShift(layer, rows!, config, ranges.get(layer.name), scales.get(layer.name), bothForms, moments));
  }
  return out;
}

const fmt = (xs: number[]) => `[${xs.map((x) => x.toFixed(3)).join(', ')}]`;

function searchAll(layers: LinearLayer[], stats: CollectedStats, config: QuantConfig, alpha: number[], dualAlphaOne: boolean, sensitivity: SensitivityCurve | null, calib: LoadedCalibration, reservoirRows: number, splitAuto: boolean) {
  const { chunks } = stats;
  const ones = chunks.map(() => 1);
  const rowCache = new Map<string, RowSample>();
  const inputIds = new Map<Value, number>();
  const gramCache = new Map<unknown, Float32Array>();
  const sharedWeights = new Set<Value>();
  const seen = new Set<Value>();
  for (const l of layers) (seen.has(l.weightValue) ? sharedWeights : seen).add(l.weightValue);
  const scales: CalibratedScales = new Map();
  const table: CalibrationTable = {
    format: TABLE_FORMAT,
    version: TABLE_VERSION,
    config: tableConfig(config, layers),
    source: { origin: calib.origin, kind: calib.module.rollout ? 'rollout' : 'feeds', samples: calib.samples, reservoirRows, calls: chunks.map((c) => stats.calls.get(c) ?? 0) },
    scaleSearch: true,
    chunks,
    sensitivity,
    alpha,
    dualAlphaOne,
    layers: {},
  };
  let previousInput: Value | undefined;
  for (const layer of layers) {
    // Layers sharing an input (q, k, v) come together: the per-input caches live that long.
    if (layer.input !== previousInput) {
      gramCache.clear();
      rowCache.clear();
      previousInput = layer.input;
    }
    // A layer that keeps float inputs (outer-activations float) is what a weight-only run makes of
    // it: no activation quantizer to search, and min/max weight scales before reconstruction.
    if (keepsFloatInputs(config, layer)) continue;
    const plan = planLayer(layer, config);
    const kind = plan.mode === 'dual' && dualAlphaOne ? 'one' : 'chunk';
    const tensorStats = stats.tensors.get(layer.input)!;
    if (!inputIds.has(layer.input)) inputIds.set(layer.input, inputIds.size);
    const key = `${inputIds.get(layer.input)}|${kind}`;
    let rows = rowCache.get(key);
    if (!rows) {
      rows = rowSample(tensorStats, chunks, kind === 'one' ? ones : alpha);
      rowCache.set(key, rows);
    }
    const w = weightMatrix(layer);
    const searchOptions = { search: true, weights: !sharedWeights.has(layer.weightValue), gramCache };
    const search: LayerSearch = searchLayer(plan, w, tensorStats, rows, config, { ...searchOptions, gramKey: key });
    const layerScales = Object.fromEntries(search.branches.map((b) => [b.role, branchScales(b)]));
    table.layers[layer.name] = tableLayer(layer, plan.mode, plan.outliers.indices.length, search, kind);
    if (splitAuto && plan.mode === 'dual') {
      // The unsplit form, searched as an unsplit layer is (α per chunk), for dual-scale auto to compare.
      const singleKey = `${inputIds.get(layer.input)}|chunk`;
      let singleRows = rowCache.get(singleKey);
      if (!singleRows) {
        singleRows = rowSample(tensorStats, chunks, alpha);
        rowCache.set(singleKey, singleRows);
      }
      const single = searchLayer(planLayer(layer, { ...config, dualScale: false }), w, tensorStats, singleRows, config, { ...searchOptions, gramKey: singleKey });
      layerScales.all = branchScales(single.branches[0]!);
      table.layers[layer.name]!.unsplit = tableLayer(layer, 'single', plan.outliers.indices.length, single, 'chunk');
    }
    scales.set(layer.name, layerScales);
  }
  return { scales, table };
}

function branchScales(b: LayerSearch['branches'][number]): BranchScales {
  return { act: b.act, ...(b.weight ? { weight: { scales: b.weight.scales, zeroPoints: b.weight.zeroPoints } } : {}) };
}

/**
 * Runs `fn` with the path of a plainly quantized copy of the model (min/max from `ranges`,
 * the same options); the user's model is not touched: the copy is loaded from a saved file.
 */
async function withPlainCopy<T>(model: Model, config: QuantConfig, selection: LayerSelection, ranges: ActivationRanges, fn: (path: string) => Promise<T>): Promise<T> {
  return withModelCopy(model, 'qarvd-s1-', async (copy, dir) => {
    quantizeLinearLayers(copy, config, selection, ranges, 'q-arvd (S1, plain min/max)');
    saveModel(copy, join(dir, 'quantized.onnx'), { externalData: 'auto' });
    return fn(join(dir, 'quantized.onnx'));
  });
}

function summary(layers: LinearLayer[], calib: LoadedCalibration, stats: CollectedStats, sensitivity: SensitivityCurve | null, alpha: number[], table: CalibrationTable, t: CalibrationResult['timings']): string {
  const calls = [...stats.calls.values()].reduce((a, b) => a + b, 0);
  const picks = new Map<string, number>();
  let before = 0;
  let after = 0;
  let n = 0;
  for (const l of Object.values(table.layers)) {
    for (const b of l.branches) picks.set(b.activation.candidate, (picks.get(b.activation.candidate) ?? 0) + 1);
    if (l.outputError) {
      before += l.outputError.before.reduce((a, b) => a + b, 0) / l.outputError.before.length;
      after += l.outputError.after.reduce((a, b) => a + b, 0) / l.outputError.after.length;
      n++;
    }
  }
  const s1 = sensitivity ? `, S1 ${seconds(t.sensitivity)} (sensitivity ${fmt(sensitivity.normalized)}${sensitivity.source === 'measured' ? '' : ` from ${sensitivity.source}`}, α ${fmt(alpha)})` : '';
  return (
    `calibrated ${layers.length} layers on ${calib.samples} sample(s) from ${calib.origin} (${calls} calls, ${stats.chunks.length} chunk(s)): ` +
    `collect ${seconds(t.collect)}${s1}, search ${seconds(t.search)}; activation scales ${[...picks].map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
    `mean relative layer output error ${n ? (before / n).toExponential(2) : '-'} → ${n ? (after / n).toExponential(2) : '-'}`
  );
}
