import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeJsonAtomic } from '../write-json.ts';
import type { Model } from '../../graph/ir/model.ts';
import { calibrate, type CalibrateOptions, type CalibrationResult } from '../calibration/calibrate.ts';
import { type CalibrationModule, checkCalibrationModule, loadCalibrationModule, type LoadedCalibration } from '../calibration/module.ts';
import { firstSamples } from '../calibration/samples.ts';
import { type CalibrationTable, checkSequentialTable, checkTableFolds, checkTableSplitAuto, readCalibrationTable, scalesFromTable, type SequentialRecord } from '../calibration/table.ts';
import type { PassContext, PassResult } from '../pass.ts';
import { bitsLabel, type QuantConfig } from './config.ts';
import { constantWeightConvs, findLinearLayers, type LayerScope, type LayerSelection, nothingSelectedReason, NOT_CONSTANT } from './linear-layers.ts';
import { type ActivationRanges, type CalibratedScales, quantizeLinearLayersThreaded, type Reconstruction } from './quantize-layers.ts';
import { defaultThreads } from './plan-pool.ts';
import { addCalibrationTable, KEPT_FP32, type QuantReport } from './report.ts';
import { splitAuto, toQuantConfig, type SharedQuantValues } from './quant-options.ts';
import { DAMP_CANDIDATES, type ReconstructOptions } from './reconstruct.ts';
import { ACTIVATION_OBJECTIVES, type ActivationObjective } from '../../kernels/activation-objective.ts';
import type { ReconLookup, ReconStats } from '../calibration/gram.ts';
import type { ActivationShift } from '../calibration/activation-shift.ts';
import type { SensitivityCurve } from '../calibration/sensitivity.ts';
import { unmatchedPatternWarnings } from './unmatched-globs.ts';
import { readReconFile, ReconFileWriter, reconFileOf } from '../calibration/recon-file.ts';
import { DEFAULT_STATISTICS_MEMORY_TEXT, parseBytes, type StatisticsByGroup } from '../calibration/grouped.ts';
import { openOrtMatMul } from '../calibration/ort-matmul.ts';
import { simdMatrixProduct } from '../calibration/simd-product.ts';
import { applySmoothing, DEFAULT_SMOOTH_ALPHA, type Smoothing, smoothingOfTable, smoothingSummary } from './smooth.ts';
import { withSmoothedCopy } from './smooth-calibration.ts';
import { calibrateSequentially } from './sequential.ts';
import { foldSplits, logFolds } from './fold-split.ts';
import { quantizeWithSplitCheck, samplesFavouring, SPLIT_CHECK_LEVEL, SPLIT_CHECK_MIN_SAMPLES, type SplitCheck, splitCheckUnavailable, splitCheckVerdict } from './split-check.ts';
import type { LayerPlan } from './plan.ts';
import { refuseNonFiniteWeights } from './finite-weights.ts';
import { LateThrows } from '../calibration/supervise.ts';
import { refuseSubgraphLayers } from '../../hf/subgraph-check.ts';
import { textCalibration } from '../../hf/text-calibration.ts';

/** What the split check compares with: S1's fp32 rollouts of this run, as many as it kept. */
function fp32Reused(results: readonly unknown[] | undefined, samples: number): string {
  const reused = Math.min(results?.length ?? 0, samples);
  if (reused === samples) return "against S1's fp32 rollouts of them";
  return reused ? `against S1's fp32 rollouts of the first ${reused} and fp32's of the rest` : 'and with fp32';
}

/** Statistics both quantization passes declare. */
export const QUANT_STATISTICS = {
  layersQuantized: 'linear layers quantized',
  dualScale: 'layers split into outlier and normal branches (S2)',
  singleScale: 'layers with one quantizer',
  skipped: 'candidate layers left in float (reasons in the report)',
  floatCompute: 'quantized layers kept in float compute, too small for integer kernels (reasons in the report)',
  outlierChannels: 'input channels in outlier branches, summed over layers',
  weightBytesBefore: 'weight bytes before: initializers and Constant tensors, as convert diff counts them',
  weightBytesAfter: 'weight bytes after: initializers and Constant tensors, as convert diff counts them',
} as const;

/**
 * Runs a quantization pass. When activations are quantized: loads the calibration table
 * (`load-calibration`; no module, no onnxruntime) or calibrates with the module — ranges
 * only for `minmax` and `scale-search false`, else ranges, S1 and the scale search — then
 * rewrites the layers and writes the report and the table (`save-calibration`). Nothing is
 * written, and the model is not changed, when calibration fails.
 * @param calibration a module object (API use), instead of the `calib` or `prompts` option
 */
export async function runQuantPass(model: Model, ctx: PassContext, options: SharedQuantValues, method: string, calibration?: CalibrationModule): Promise<PassResult> {
  calibration ??= ctx.calibration;
  // The object used to win without a word, the calib or prompts given beside it left unread (found by a user trial of quantize()).
  if (calibration && (options.calib || options.prompts)) {
    const other = options.calib ? `calib ${options.calib}` : `prompts ${options.prompts}`;
    throw new Error(`${other} and calibration (a calibration module object) are both given: give one of them`);
  }
  const config: QuantConfig = toQuantConfig(options);
  const selection: LayerSelection = { include: options.include, exclude: options.exclude, minK: options.minK, scope: scopeOf(options.scope) };
  refuseSubgraphLayers(model, selection);
  const scaleSearch = options.scaleSearch ?? false;
  const reconstructOptions = reconstructOptionsOf(options);
  // Reconstruction and bias correction need the Gram matrices and mean rows of calibration.
  const wantStats = reconstructOptions.method !== 'none' || reconstructOptions.biasCorrection;
  const hasData = Boolean(options.calib || calibration || options.prompts);
  let ranges: ActivationRanges | undefined;
  let scales: CalibratedScales | undefined;
  let table: CalibrationTable | undefined;
  let recon: ReconLookup & Iterable<[string, ReconStats]> | undefined;
  let grouped: StatisticsByGroup | undefined;
  let activation: Map<string, ActivationShift> | undefined;
  /** The file the reconstruction statistics came from, for errors naming it. */
  let statsSource: string | undefined;
  let calibrationInfo: QuantReport['calibration'];
  let smoothing: Smoothing | undefined;
  // S1's curve, for the report when no calibration table carries it (weight-only reconstruction).
  let curve: { sensitivity: SensitivityCurve; alpha: number[] } | undefined;
  /** fp32's final results of the first samples, kept from S1's rollouts for the split check. */
  let fp32Results: Float64Array[][] | undefined;
  let calibrated = false;
  /** The calibration data this run rolled out (dual-scale auto's split check rolls it out again). */
  let calibData: LoadedCalibration | undefined;
  let calibrationTimings: CalibrationResult['timings'] | undefined;
  if (options.smoothQuant && config.aBits === null) throw new Error('smooth-quant moves activation range into the weights; it needs quantized activations (a-bits 8 or 6), not a-bits none');
  const found = findLinearLayers(model.graph, selection);
  if (options.include?.length || options.exclude?.length) {
    // Attention's activation products are not layers: a pattern matching only those selects nothing.
    // Layers inside If/Loop subgraphs count: excluding them is what refuseSubgraphLayers advises.
    const layerNames = [...found.layers, ...found.skipped.filter((s) => s.reason !== NOT_CONSTANT)].map((l) => l.name);
    for (const n of model.graph) for (const g of n.subgraphs()) for (const inner of g.allNodes()) if (inner.name && (inner.opType === 'MatMul' || inner.opType === 'Gemm')) layerNames.push(inner.name);
    const others = [...model.graph].filter((n) => n.name && n.opType !== 'MatMul' && n.opType !== 'Gemm').map((n) => ({ name: n.name, opType: n.opType }));
    for (const line of unmatchedPatternWarnings(layerNames, options.include ?? [], options.exclude ?? [], others)) ctx.log.warn(line);
  }
  // A Conv is a linear map too (Wan2.1's Conv3d patch embedding), but not one these passes
  // quantize: say so, or a reader of the report would take the model as fully quantized.
  const convs = constantWeightConvs(model.graph);
  if (convs.length) ctx.log.info(`${convs.length} Conv/ConvTranspose node(s) with constant weights stay float: the passes quantize MatMul and Gemm layers only (first: ${convs[0]!.label()})`);
  // Writing the model unchanged would look like success: say what kept every layer float. A
  // folder's graph is still written (the variant set needs every graph), with the reason.
  const nothing = nothingSelectedReason(found, model.graph);
  if (nothing && !ctx.partOfSet) throw new Error(`${nothing}; nothing was written`);
  if (nothing) ctx.log.warn(`${nothing}; this graph's variant is written unquantized`);
  let { layers } = found;
  if (config.integerKernels === 'never' && config.blockSize > 0) {
    // Float compute dequantizes per channel; blocked weights have no such form (small-layers.ts).
    ctx.log.warn(`integer-kernels never changes nothing here: blocked weights (block-size ${config.blockSize}) keep their integer form`);
  }
  // Only when asked for: float is q-arvd's default, moot on a model without repeated blocks.
  if (config.outerActivations === 'float' && ctx.given?.has('outer-activations') && config.aBits !== null && !layers.some((l) => l.wBits)) {
    ctx.log.warn(`outer-activations float changes nothing here: ${selection.scope === 'outer-w8' ? 'no repeated blocks were found, so no layer is outside them' : `it applies to scope outer-w8's layers, and this run has scope ${selection.scope ?? 'all'}`}`);
  }
  if (found.stacks) logScope(ctx, found, selection.scope!, config);
  // Every later search (S1's copy, fold-split's, sequential stages) marks the same layers.
  if (selection.scope === 'outer-w8') selection.outer = new Set(layers.filter((l) => l.wBits).map((l) => l.name));
  const calibrateNow = layers.length > 0 && (config.aBits !== null || (wantStats && hasData));
  // Before calibration runs the model: there a non-finite weight would be blamed on the feeds.
  if (calibrateNow && !options.loadCalibration) refuseNonFiniteWeights(layers);
  // Before anything reads the model: calibration, the table and the plans all see the permuted channels.
  const fold = options.foldSplit && layers.length > 0 ? foldSplits(model, layers, config) : undefined;
  // The permuted weights are new tensors: describe the layers again.
  if (fold?.folds.length) ({ layers } = findLinearLayers(model.graph, selection));
  // Installed from the module's import until calibration has fully finished (see supervise.ts).
  let late: LateThrows | undefined;
  let rollsOutAgain = false;
  /** How dual-scale auto's splits are checked (split-check.ts), decided once calibration has run. */
  let check: SplitCheckPlan = { plan: 'none' };
  // The model as given comes back if anything before the rewrite fails (the fold's permutations).
  try {
    if (layers.length > 0 && config.aBits === null && !options.loadCalibration) checkWeightOnlyData(ctx, options, reconstructOptions, hasData);
    if (layers.length > 0 && config.aBits === null && wantStats && !hasData && !options.loadCalibration) {
      ctx.log.info(`weight-only without calibration data: weights rounded to nearest, no bias correction (give calib or prompts to ${reconstructOptions.method === 'none' ? 'correct the biases' : `reconstruct them with ${METHOD_NAMES[reconstructOptions.method]}`})`);
    }
    if (layers.length > 0 && options.loadCalibration && (config.aBits !== null || wantStats)) {
      if (options.calib || calibration) ctx.log.warn(`load-calibration given: the calibration module is not run`);
      table = readCalibrationTable(options.loadCalibration);
      checkTableFolds(table, fold?.folds ?? [], config.dualScale, options.loadCalibration);
      if (wantStats) checkSequentialTable(table, config, sequentialRecord(options), options.loadCalibration, (line) => ctx.log.warn(line));
      if (wantStats && config.aBits !== null && splitAuto(options)) checkTableSplitAuto(table, layers, options.loadCalibration);
      if (config.aBits === null && table.smoothing) {
        throw new Error(`calibration table ${options.loadCalibration} was made with smooth-quant: its statistics are of the smoothed model, which a weight-only run does not make (smooth-quant needs quantized activations); give this run its calibration data (calib or prompts) instead of load-calibration`);
      }
      smoothing = smoothingOfTable(table, options, options.loadCalibration);
      if (smoothing) applySmoothing(model, layers, smoothing, `calibration table ${options.loadCalibration}`);
      if (config.aBits !== null) scales = scalesFromTable(table, smoothing ? findLinearLayers(model.graph, selection).layers : layers, config, options.loadCalibration);
      if (wantStats) {
        const side = reconFileOf(options.loadCalibration);
        if (!existsSync(side)) throw new Error(`calibration table ${options.loadCalibration} has no reconstruction statistics beside it (${side}); save it again with this version, or quantize with reconstruct none and bias-correction false`);
        const file = readReconFile(side);
        // Tables and side files of earlier builds carry no id (both absent: accepted); this build writes both, so one with and one without is a mismatch too.
        if (file.id !== table.recon) {
          throw new Error(`calibration table ${options.loadCalibration}: its reconstruction statistics ${side} were saved with another table (the table names side file ${table.recon ?? 'none: it is from an earlier build or was edited'}, the file is ${file.id ?? 'from an earlier build'}); keep a table with its own .recon file, or calibrate again (save-calibration)`);
        }
        ({ stats: recon, activation } = file);
        statsSource = `reconstruction statistics ${side}`;
        // Every layer of this run needs its statistics: a table made on other layers (scope, include, exclude) would leave some unreconstructed.
        const uncovered = layers.filter((l) => !file.stats.has(l.name));
        if (uncovered.length) {
          throw new Error(`calibration table ${options.loadCalibration}: its reconstruction statistics (${side}) have none for ${uncovered[0]!.name} (${uncovered.length} of this run's ${layers.length} layers); the table was made on other layers (scope, include or exclude): use the table's, or calibrate again with these (save-calibration)`);
        }
        // A table calibrated with quantized activations, read by a weight-only run: its activation-quantizer shifts are not this run's.
        if (config.aBits === null) activation = undefined;
        if (config.aBits !== null && reconstructOptions.objective !== 'fp32' && ![...(activation?.values() ?? [])].some((a) => a.moments)) {
          throw new Error(`option activation-objective ${reconstructOptions.objective}: ${side} has no activation error moments (it was saved with activation-objective fp32); save the calibration again with activation-objective ${reconstructOptions.objective}`);
        }
      }
      calibrationInfo = { origin: options.loadCalibration, kind: table.source.kind, samples: table.source.samples, scaleSearch: table.scaleSearch, chunks: table.chunks, dualAlphaOne: table.dualAlphaOne };
      ctx.log.info(`using calibration table ${options.loadCalibration} (${Object.keys(table.layers).length} layers, made from ${table.source.samples} sample(s) of ${table.source.origin})`);
    } else if (calibrateNow) {
      late = new LateThrows(options.calib || 'the calibration module');
      const calib = options.prompts && !options.calib && !calibration ? await textCalibration(model, options.prompts, ctx.modelDir) : await resolveCalibration(options, calibration, config, method);
      late.origin = calib.origin;
      calibData = calib;
      calib.supervision = { timeoutSeconds: options.calibTimeout, timeoutOption: `--${method}.calib-timeout`, log: ctx.log, late };
      const calibrateOptions: CalibrateOptions = {
        selection,
        // Weight-only has no activation scales to search.
        scaleSearch: scaleSearch && config.aBits !== null,
        // minmax declares no frame weighting: its calibration never runs S1.
        frameWeighting: options.frameWeighting ?? false,
        sensitivityFile: options.sensitivity || undefined,
        sensitivitySamples: options.sensitivitySamples,
        dualAlphaOne: options.dualAlphaOne,
        reservoirRows: options.reservoirRows,
        threads: options.calibThreads,
        reconstruct: wantStats,
        gramStride: options.gramStride,
        statisticsMemory: parseBytes(options.statisticsMemory ?? DEFAULT_STATISTICS_MEMORY_TEXT, 'statistics-memory'),
        splitAuto: wantStats && splitAuto(options),
        // Only what the split check reads (splitCheckPlan, below, decides whether it runs).
        keepFp32Results: wantStats && splitAuto(options) && (options.splitCheck ?? 'none') === 'rollout' && !options.sequential && firstSamples(calib, options.sensitivitySamples) >= SPLIT_CHECK_MIN_SAMPLES,
        activationMoments: wantStats && config.aBits !== null && reconstructOptions.objective !== 'fp32',
        saveStatistics: options.saveStatistics || undefined,
        loadStatistics: options.loadStatistics || undefined,
        saveSensitivity: options.saveSensitivity || undefined,
        log: ctx.log,
      };
      if ((options.sequential || options.smoothQuant) && (calibrateOptions.saveStatistics || calibrateOptions.loadStatistics)) {
        throw new Error(`options save-statistics and load-statistics keep one collection of the model as given; ${options.sequential ? 'sequential collects once per stage on partly quantized copies' : 'smooth-quant collects on a smoothed copy'}`);
      }
      let result: CalibrationResult;
      if (options.sequential) {
        if (!wantStats) throw new Error('option sequential collects reconstruction statistics stage by stage: it needs reconstruct gptq or bias-correction true');
        if (options.smoothQuant) throw new Error('option sequential cannot be combined with smooth-quant (the smoothed copy is calibrated in one stage)');
        result = await calibrateSequentially(model, layers, calib, config, calibrateOptions, { selection, log: ctx.log });
      } else if (options.smoothQuant) {
        const alpha = options.smoothAlpha ?? DEFAULT_SMOOTH_ALPHA;
        // The smoothed copy is gone when the callback returns: its statistics cannot be collected later, group by group.
        ({ smoothing, result } = await withSmoothedCopy(model, layers, calib, config, { selection, alpha, threads: options.calibThreads, log: ctx.log }, (copy, copyLayers) =>
          calibrate(copy, copyLayers, calib, config, { ...calibrateOptions, grouping: false }),
        ));
        // Calibration succeeded: now the user's model takes the same smoothing.
        applySmoothing(model, layers, smoothing, 'smooth-quant');
      } else result = await calibrate(model, layers, calib, config, calibrateOptions);
      // Sessions are released by now: a throw from a timer after the last sample is reported here.
      late.check();
      ({ ranges, scales, table, recon, activation, grouped } = result);
      if (calibrateOptions.loadStatistics) statsSource = `statistics file ${calibrateOptions.loadStatistics}`;
      calibrated = true;
      curve = result.sensitivity ? { sensitivity: result.sensitivity, alpha: result.alpha } : undefined;
      fp32Results = result.fp32Results;
      if (options.saveSensitivity && !curve) ctx.log.warn(`save-sensitivity: this run has no S1 curve (frame weighting off, or a module without rollouts); ${options.saveSensitivity} not written`);
      if (table && smoothing) table.smoothing = smoothing;
      if (table && fold?.folds.length) table.folds = fold.folds;
      if (table && options.sequential) table.config.sequential = sequentialRecord(options);
      calibrationTimings = result.timings;
      calibrationInfo = {
        origin: calib.origin,
        kind: calib.module.rollout ? 'rollout' : 'feeds',
        samples: calib.samples,
        scaleSearch: calibrateOptions.scaleSearch!,
        chunks: result.chunks,
        ...(calibrateOptions.scaleSearch ? { dualAlphaOne: options.dualAlphaOne ?? true } : {}),
        seconds: secondsOf(result.timings),
      };
    }
    // Grouped statistics, sequential stages and the split check run the module again while the
    // layers are quantized: their late throws are caught until that has finished (below).
    check = splitCheckPlan(options, config, model, calibData, table, Boolean(grouped), splitAuto(options) && Boolean(recon ?? grouped));
    // Kept for the check only (up to 256 MiB): not held through quantization when it does not run.
    if (check.plan !== 'rollout') fp32Results = undefined;
    rollsOutAgain = Boolean(grouped) || check.plan === 'rollout';
    if (!rollsOutAgain) late?.stop(false);
  } catch (e) {
    fold?.restore();
    late?.stop(true);
    throw e;
  }
  if (!calibrated && (options.saveStatistics || options.loadStatistics)) ctx.log.warn(`${options.saveStatistics ? 'save-statistics' : 'load-statistics'} ignored: this run does not calibrate with a module (${options.loadCalibration ? 'load-calibration given' : 'no calibration data or nothing to quantize'})`);
  const t0 = performance.now();
  // The reconstruction's large float64 products (Cholesky of H, GPTQ's batch updates, the
  // weighted errors) run in onnxruntime; its worker starts only if a product is large enough.
  const stats: ReconLookup | undefined = grouped ?? recon;
  // Grouped statistics come group by group: nothing here may keep the first group's alive.
  if (grouped) recon = undefined;
  const products = stats ? openOrtMatMul({ threads: options.calibThreads ?? 0 }) : undefined;
  // The side file is written as the statistics come (grouped: one group at a time, then released).
  const saveRecon = Boolean(options.saveCalibration && table && stats);
  let reconWriter: ReconFileWriter | undefined;
  try {
    reconWriter = saveRecon ? new ReconFileWriter(reconFileOf(options.saveCalibration!)) : undefined;
  } catch (e) {
    products?.close();
    if (rollsOutAgain) late?.stop(true);
    throw e;
  }
  const reconstruction: Reconstruction | undefined = stats
    ? { stats, options: { ...reconstructOptions, gptq: { ...reconstructOptions.gptq, matmul: products!.matmul } }, splitAuto: splitAuto(options), ...(statsSource ? { source: statsSource } : {}), ...(activation ? { activation } : {}), ...(grouped ? { prepare: (layer) => grouped!.prepare(layer) } : {}) }
    : undefined;
  const threads = options.threads || defaultThreads();
  let report: QuantReport;
  /** Milliseconds of the split check (its rollouts), reported apart from the reconstruction's. */
  let checkMs = 0;
  try {
    if (reconWriter) {
      const writer = reconWriter;
      if (grouped) grouped.onGroup((stats) => writer.add(stats));
      else writer.add(recon!);
    }
    // `off`: the same layers with every split layer in its unsplit form; `extra`: the split check's recording or replay of those plans.
    const quantize = (m: Model, form: 'auto' | 'off', extra: Partial<Reconstruction> = {}) =>
      quantizeLinearLayersThreaded(threads, m, form === 'auto' ? config : { ...config, dualScale: false }, selection, ranges, method, scales, reconstruction && { ...reconstruction, ...(form === 'off' ? { splitAuto: false } : {}), ...extra }, ctx.spill);
    if (check.plan === 'off') {
      const c = table!.splitCheck!;
      ctx.log.info(`calibration table ${options.loadCalibration}: its split check (${c.samples} rollouts, ${c.mse.auto.toExponential(3)} with the splits, ${c.mse.off.toExponential(3)} without) kept the model without splits: every layer single-scale, as in that run`);
      report = await quantize(model, 'off');
    } else if (check.plan === 'rollout') {
      // Auto reconstructs both forms of a layer it may split: the model without the splits is
      // emitted from the unsplit plans it recorded, not reconstructed again.
      const unsplit = new Map<string, LayerPlan>();
      const quantizers = { auto: (m: Model) => quantize(m, 'auto', { recordUnsplit: unsplit }), off: (m: Model) => quantize(m, 'off', { given: unsplit }) };
      const starting = (splits: number, samples: number) =>
        ctx.log.info(`split check: dual-scale auto kept ${splits} split(s); rolling out ${samples} calibration sample(s) with the splits and without them, ${fp32Reused(fp32Results, samples)} (split-check none skips this)`);
      const checked = await quantizeWithSplitCheck(model, calibData!, quantizers, { samples: options.sensitivitySamples, threads: options.calibThreads, starting, fp32Results });
      report = checked.report;
      checkMs = checked.ms;
      if (checked.check) {
        const c = checked.check;
        report.splitCheck = c;
        if (table) table.splitCheck = { ...c, run: splitCheckRun(options, config) };
        for (const f of c.failed ?? []) ctx.log.warn(`split check: the rollout of the model ${f}; that model scores Infinity`);
        const favour = samplesFavouring(c);
        const bySample = favour && favour.of > 0 ? `; nearer fp32 with the splits on ${favour.auto} of the ${favour.of} samples both finished, without on ${favour.off}` : '';
        const test = c.p === undefined ? '' : `; signed-rank p = ${c.p.toPrecision(3)} (the splits are undone only below ${SPLIT_CHECK_LEVEL})`;
        ctx.log.info(`split check: ${c.samples} calibration rollout(s) with auto's ${c.splits} split(s) and without them, final result's mean squared difference from fp32 ${c.mse.auto.toExponential(3)} and ${c.mse.off.toExponential(3)}${bySample}${test}: ${c.kept === 'auto' ? 'the splits stay' : 'every layer single-scale'} (${(checkMs / 1000).toFixed(1)} s)`);
      }
    } else {
      report = await quantize(model, 'auto');
      const kept = report.layers.filter((l) => l.splitChoice && l.mode === 'dual').length;
      if (check.why && kept) ctx.log.info(`split-check rollout skipped: ${check.why}; dual-scale auto's ${kept} split(s) stand on the layers' errors alone`);
    }
    // A loaded table's check is this model's too: it was reproduced from the table.
    if (check.fromTable) report.splitCheck = check.fromTable;
    reconWriter?.finish(activation);
  } catch (e) {
    if (rollsOutAgain) late?.stop(true);
    throw e;
  } finally {
    products?.close();
    reconWriter?.dispose();
    await grouped?.dispose();
  }
  if (rollsOutAgain && late) {
    // A throw from a timer after the last group's samples (or the check's rollouts) is reported here, as after calibrate.
    try {
      late.check();
    } catch (e) {
      late.stop(true);
      throw e;
    }
    late.stop(false);
  }
  if (stats) ctx.log.info(`${reconstructOptions.method === 'none' ? 'round to nearest' : `${METHOD_NAMES[reconstructOptions.method]} reconstruction`}${reconstructOptions.biasCorrection ? ' with bias correction' : ''} of ${report.totals.layers.dual + report.totals.layers.single} layers in ${((performance.now() - t0 - checkMs) / 1000).toFixed(2)} s${checkMs ? ` (the split check's ${(checkMs / 1000).toFixed(1)} s not counted)` : ''}${reconstructionSummary(report)}`);
  const raised = report.layers.filter((l) => l.reconstruction?.dampRequested !== undefined);
  if (raised.length) {
    const used = raised.map((l) => l.reconstruction!.damp as number);
    const lo = Math.min(...used);
    const hi = Math.max(...used);
    const range = lo === hi ? `${lo.toExponential(0)}` : `${lo.toExponential(0)} to ${hi.toExponential(0)}`;
    ctx.log.warn(`GPTQ: damp ${raised[0]!.reconstruction!.dampRequested} leaves H not positive definite on ${raised.length} layer(s) (fewer calibration rows than input channels, collinear channels, or float32 roundoff in H; first: ${raised[0]!.name}): those layers are damped with ${range} instead (the next decade from 1e-6 that factors; each layer's damp is in the report)`);
  }
  // Sequential stages are calibrated while the quantizer runs: their collections count too.
  if (calibrationInfo?.seconds && calibrationTimings) calibrationInfo.seconds = secondsOf(calibrationTimings);
  if (calibrationInfo) report.calibration = calibrationInfo;
  if (smoothing) report.smoothing = smoothingSummary(smoothing);
  if (fold) {
    // Refusals matter where a layer was split: the others read no channels.
    const split = new Set(report.layers.filter((l) => l.mode === 'dual').map((l) => l.name));
    const notFolded = fold.skipped.filter((s) => split.has(s.consumer));
    logFolds(ctx.log, { folds: fold.folds, skipped: notFolded }, everyReason(options.report, method));
    if (fold.folds.length || notFolded.length) report.foldSplit = { folded: fold.folds, notFolded };
  }
  if (table) addCalibrationTable(report, table);
  else if (curve) {
    report.sensitivity = curve.sensitivity.normalized;
    report.alpha = curve.alpha;
  }
  if (options.saveCalibration) {
    if (!table) ctx.log.warn(`save-calibration: nothing to save (${config.aBits === null ? 'weight-only' : 'scale-search is off'}); ${options.saveCalibration} not written`);
    else {
      // A side file an earlier save left would be read with this table: only this run's may
      // stay (or the loaded table's own, when it is written back in place).
      const inPlace = Boolean(options.loadCalibration) && resolve(options.loadCalibration!) === resolve(options.saveCalibration);
      if (reconWriter) table.recon = reconWriter.id;
      else if (!inPlace) delete table.recon;
      writeJsonAtomic(options.saveCalibration, table);
      if (!saveRecon && !inPlace) rmSync(reconFileOf(options.saveCalibration), { force: true });
    }
  }
  if (options.report) writeJsonAtomic(options.report, report);
  const outlierChannels = report.layers.reduce((s, l) => s + (l.mode === 'dual' ? l.outliers : 0), 0);
  const floatCompute = report.layers.filter((l) => l.compute === 'float');
  // int4 storage needs opset 21; a model whose operators changed meaning on the way keeps its opset and int8 storage.
  const opset = model.opset('') ?? 1;
  // (Weight-only qoperator packs its integer layers' 4-bit weights into MatMulNBits at any opset; its float-compute layers store int4 too.)
  const int4Wanted = config.aBits !== null || config.format === 'qdq' || floatCompute.length > 0;
  if (config.wBits === 4 && config.int4Storage && int4Wanted && opset < 21 && report.totals.layers.dual + report.totals.layers.single > 0) {
    ctx.log.info(`int4-storage: the model keeps opset ${opset}, below the 21 int4 initializers need (qdq-domain com.microsoft does not raise it; a raise is skipped where an operator would change meaning), so the 4-bit weights are stored as int8: the same values, twice the bytes`);
  }
  if (floatCompute.length) {
    // Layers with float inputs by design (outer-activations float) lose no activation quantizer by float compute; say which do.
    const lost = config.aBits === null ? 0 : floatCompute.filter((l) => l.aBits !== null).length;
    const byDesign = config.aBits === null ? 0 : floatCompute.length - lost;
    const inputs: string[] = [];
    if (lost) inputs.push(`${lost === floatCompute.length ? 'inputs' : `${lost} of them with inputs`} not quantized: they run with float activations in this A${config.aBits} model`);
    if (byDesign) inputs.push(`${byDesign === floatCompute.length ? 'all' : byDesign} weight-only by outer-activations float`);
    ctx.log.info(`${floatCompute.length} layer(s) kept fp32 (quantized weights dequantized at load, float MatMul${inputs.map((t) => `, ${t}`).join('')}): ${floatCompute[0]!.computeReason!.slice(KEPT_FP32.length)}${floatCompute.length > 1 ? ` (first; ${everyReason(options.report, method)})` : ''}`);
  }
  ctx.log.info(`${method} ${bitsLabel(config)} ${config.format}: ${report.totals.layers.dual} dual-scale, ${report.totals.layers.single} single-scale, ${report.totals.layers.skipped} skipped; weights ${report.totals.bytesBefore} → ${report.totals.bytesAfter} bytes`);
  return {
    modified: report.totals.layers.dual + report.totals.layers.single > 0,
    stats: {
      layersQuantized: report.totals.layers.dual + report.totals.layers.single,
      dualScale: report.totals.layers.dual,
      singleScale: report.totals.layers.single,
      skipped: report.totals.layers.skipped,
      outlierChannels,
      floatCompute: floatCompute.length,
      weightBytesBefore: report.totals.bytesBefore,
      weightBytesAfter: report.totals.bytesAfter,
    },
    report,
  };
}

/** How `dual-scale auto`'s splits are checked on the whole model (split-check.ts). */
interface SplitCheckPlan {
  /** `rollout`: rolled out with and without them; `off`: a loaded table's check undid them; `none`: not checked. */
  plan: 'rollout' | 'off' | 'none';
  /** Why a check the options ask for cannot run (logged when auto keeps splits). */
  why?: string;
  /** A loaded table's verdict that applies to this run (for the report). */
  fromTable?: SplitCheck;
}

function splitCheckPlan(options: SharedQuantValues, config: QuantConfig, model: Model, calib: LoadedCalibration | undefined, table: CalibrationTable | undefined, grouped: boolean, auto: boolean): SplitCheckPlan {
  if (!auto || (options.splitCheck ?? 'none') === 'none') return { plan: 'none' };
  if (options.loadCalibration) {
    // A loaded table reproduces the model its run kept, without rolling out (there is no
    // module), but only for the run it was measured on: a W4A8 table's verdict says nothing
    // of a weight-only W4 run reading the same table (found by review).
    const verdict = table?.splitCheck;
    if (!verdict) return { plan: 'none', why: `calibration table ${options.loadCalibration} holds no split check (saved with split-check none, without a rollout module, or by an earlier build), and a loaded table has no module to roll out` };
    const run = splitCheckRun(options, config);
    if (verdict.run !== run) return { plan: 'none', why: `the split check in calibration table ${options.loadCalibration} was measured for ${verdict.run ?? 'a run this build cannot identify'}, not for this run (${run}), and a loaded table has no module to roll out` };
    if (verdict.kept === 'off' && verdict.p === undefined && !verdict.failed?.length) return earlierRuleVerdict(verdict, options.loadCalibration);
    return { plan: verdict.kept === 'off' ? 'off' : 'none', fromTable: verdict };
  }
  const why = grouped
    ? 'the statistics are collected group by group (over statistics-memory), and the check quantizes the layers twice'
    : options.sequential
      ? 'sequential calibrates stage by stage on partly quantized copies'
      : splitCheckUnavailable(model, calib, options.sensitivitySamples);
  return why ? { plan: 'none', why } : { plan: 'rollout' };
}

/**
 * A table's "off" saved by a build before the signed-rank rule (no `p`: the lower mean decided,
 * on any number of samples): judged again from its per-sample errors where it has at least
 * the samples the test needs; otherwise the splits stay, unchecked, and the log says why.
 */
function earlierRuleVerdict(verdict: SplitCheck, table: string): SplitCheckPlan {
  const per = verdict.perSample;
  if (per && per.auto.length >= SPLIT_CHECK_MIN_SAMPLES && per.auto.length === per.off.length) {
    const judged: SplitCheck = { ...verdict, ...splitCheckVerdict(verdict.mse, per) };
    if (judged.kept === 'off') return { plan: 'off', fromTable: judged };
    return { plan: 'none', fromTable: judged, why: `calibration table ${table} undid the splits by an earlier build's rule (the lower mean); judged again from its ${per.auto.length} samples' errors by the signed-rank test (p = ${judged.p!.toPrecision(3)}), the splits stay` };
  }
  return { plan: 'none', why: `calibration table ${table} undid the splits by an earlier build's rule (the lower mean) on ${per ? `${per.auto.length} sample(s)` : 'samples whose errors it did not keep'}, too few for the signed-rank test that decides now (${SPLIT_CHECK_MIN_SAMPLES}), and a loaded table has no module to roll out` };
}

/** The options a split check's verdict holds for: what changes the two models it compared. */
function splitCheckRun(options: SharedQuantValues, config: QuantConfig): string {
  const r = reconstructOptionsOf(options);
  const parts = [
    `${bitsLabel(config)} ${config.format}`,
    config.blockSize ? `block-size ${config.blockSize}` : '',
    `reconstruct ${r.method}`,
    `bias-correction ${r.biasCorrection}`,
    r.method === 'none' ? '' : `activation-objective ${r.objective}`,
    r.method === 'gptq' ? `damp ${options.damp ?? 'auto'} act-order ${options.actOrder ?? true}` : '',
    r.method === 'adaround' ? `iterations ${options.iterations ?? 'default'}` : '',
    `integer-kernels ${config.integerKernels}`,
    `scope ${options.scope ?? 'all'}`,
  ];
  return parts.filter(Boolean).join(', ');
}

/** Calibration's step times in seconds, to the millisecond. */
function secondsOf(t: CalibrationResult['timings']): { collect: number; sensitivity: number; search: number } {
  const s = (ms: number) => Math.round(ms) / 1000;
  return { collect: s(t.collect), sensitivity: s(t.sensitivity), search: s(t.search) };
}

const METHOD_NAMES = { gptq: 'GPTQ', adaround: 'AdaRound' } as const;

/**
 * A weight-only run's calibration options against each other: an option asked for explicitly
 * that needs calibration data the run does not have is refused (its default is moot, and says
 * so in the log), and calibration data the run will not use is said to be unused, with the
 * options that make it so (both were silent: found by a user trial).
 */
function checkWeightOnlyData(ctx: PassContext, options: SharedQuantValues, recon: ReconstructOptions, hasData: boolean): void {
  const asked = [
    ...(recon.biasCorrection && ctx.given?.has('bias-correction') ? ['bias-correction true'] : []),
    ...(recon.method !== 'none' && ctx.given?.has('reconstruct') ? [`reconstruct ${recon.method}`] : []),
  ];
  if (!hasData && asked.length) {
    throw new Error(`option ${asked.join(' and ')} needs calibration data, and this weight-only run has none: give calib or prompts (or load-calibration), or drop the option`);
  }
  const source = options.calib ? `calib ${options.calib}` : options.prompts ? `prompts ${options.prompts}` : ctx.calibration ? 'the calibration module given' : undefined;
  if (source && recon.method === 'none' && !recon.biasCorrection) {
    // minmax declares no reconstruct option: name only the options the pass has.
    const off = ['a-bits none', ...(options.reconstruct === undefined ? [] : ['reconstruct none']), 'bias-correction false'];
    const uses = ['activation ranges', ...(options.reconstruct === undefined ? [] : ['reconstruction'])];
    ctx.log.warn(`${source} is not used: with ${off.join(', ')} this run needs no calibration data (it serves ${uses.join(', ')} or bias correction); it is not read`);
  }
}

/** The reconstruction options of a pass (`minmax` declares only bias-correction: it rounds to nearest). */
function reconstructOptionsOf(options: SharedQuantValues): ReconstructOptions {
  const auto = options.damp === undefined || options.damp.trim() === 'auto';
  const damp = auto ? undefined : Number(options.damp!.trim());
  if (!auto && !(options.damp!.trim() !== '' && damp! >= 0 && Number.isFinite(damp))) throw new Error(`option damp must be auto or a number ≥ 0, got ${options.damp}`);
  const objective = options.activationObjective ?? 'fp32';
  if (!(ACTIVATION_OBJECTIVES as readonly string[]).includes(objective)) throw new Error(`option activation-objective must be one of ${ACTIVATION_OBJECTIVES.join(', ')}, got ${objective}`);
  return {
    method: options.reconstruct ?? 'none',
    objective: objective as ActivationObjective,
    gptq: { damp, actOrder: options.actOrder },
    ...(auto ? { dampCandidates: DAMP_CANDIDATES } : {}),
    adaround: { iterations: options.iterations, product: simdMatrixProduct() },
    biasCorrection: options.biasCorrection ?? false,
  };
}

/** `; layer output error …`: the mean over layers of the weighted error per row, before and after. */
function reconstructionSummary(report: QuantReport): string {
  const recs = report.layers.map((l) => l.reconstruction).filter((r) => r !== undefined);
  if (!recs.length) return '';
  const mean = (f: (r: (typeof recs)[number]) => number) => (recs.reduce((s, r) => s + f(r), 0) / recs.length).toExponential(2);
  const auto = report.layers.filter((l) => l.splitChoice);
  const kept = auto.filter((l) => l.mode === 'dual').length;
  const objective = recs.find((r) => r.objective)?.objective;
  const shrunk = recs.filter((r) => r.correctionScale !== undefined).length;
  const objectiveNote = objective ? ` (activation objective ${objective}${shrunk ? `; its correction of H shrunk on ${shrunk} layer(s) to keep H̃ positive definite` : ''})` : '';
  return `; mean layer error per row ${mean((r) => r.error.rtn)} (round to nearest) → ${mean((r) => r.errorCorrected)}${objectiveNote}${auto.length ? `; dual-scale auto kept ${splitsKept(report, kept, auto.length)}` : ''}`;
}

/** `N of M splits`, and when the split check undid them, what auto's layer errors had kept. */
function splitsKept(report: QuantReport, kept: number, candidates: number): string {
  const check = report.splitCheck;
  if (check?.kept !== 'off') return `${kept} of ${candidates} splits`;
  return `0 of ${candidates} splits (the layers' errors kept ${check.splits}; the split check undid them)`;
}

async function resolveCalibration(options: SharedQuantValues, given: CalibrationModule | undefined, config: QuantConfig, method: string): Promise<LoadedCalibration> {
  if (given) return checkCalibrationModule(given);
  if (options.prompts) throw new Error(`give calib or prompts, not both (calib ${options.calib}, prompts ${options.prompts})`);
  if (!options.calib) {
    throw new Error(`A${config.aBits} needs activation ranges: give a calibration module with calib (e.g. --${method}.calib ./calib.mjs), a prompt list for a text model with prompts, a saved table with load-calibration, or use a-bits none for weight-only`);
  }
  return loadCalibrationModule(options.calib);
}

export type { QuantReport };

/** The `scope` option's value (absent: all). */
function scopeOf(scope: string | undefined): LayerScope {
  return scope === 'blocks' || scope === 'outer-w8' ? scope : 'all';
}

/** One line for `scope blocks` / `outer-w8`: the stacks found and what becomes of the layers outside them, or that none was found. */
function logScope(ctx: PassContext, found: ReturnType<typeof findLinearLayers>, scope: LayerScope, config: QuantConfig): void {
  const floatInputs = config.outerActivations === 'float' && config.aBits !== null;
  // outer-w8 is the q-arvd default: at w-bits 8 it changes no weight bits, and the float inputs
  // of the layers around the blocks (outer-activations float, also a default) are in the report
  // and the calibration table; a line on every 8-bit run would only come before its output
  // (or its refusal). Without blocks it is scope all (info, not a warning).
  if (scope === 'outer-w8' && config.wBits === 8) return;
  if (!found.stacks?.length) {
    const none = `scope ${scope}: no repeated blocks found in the linear layers' node names (numbered segments like /blocks.N/ with the same layers in each); every layer is quantized at w-bits ${config.wBits}`;
    if (scope === 'blocks') ctx.log.warn(none);
    else ctx.log.info(none);
    return;
  }
  const outside = scope === 'blocks' ? found.skipped.filter((s) => s.reason.startsWith('outside the repeated blocks')).length : found.layers.filter((l) => l.wBits).length;
  const inside = found.layers.length - (scope === 'blocks' ? 0 : outside);
  const what = scope === 'blocks' ? 'stay float' : floatInputs ? 'take 8-bit weights and keep float inputs (outer-activations float)' : 'take 8-bit weights';
  ctx.log.info(`scope ${scope}: ${inside} layer(s) in the repeated blocks (${found.stacks.map((s) => `${s}N`).join(', ')}); ${outside} outside them ${what}`);
}

/** What a sequential table records of the run that collected it (table.ts SequentialRecord). */
function sequentialRecord(options: SharedQuantValues): SequentialRecord {
  const r = reconstructOptionsOf(options);
  return { reconstruct: r.method, biasCorrection: r.biasCorrection };
}

/** Where a log line that names only the first of several reasons sends the reader: the report, or the option that writes one (none was asked for). */
function everyReason(report: string | undefined, pass: string): string {
  return report ? 'every reason is in the report' : `--${pass}.report <file> writes every reason`;
}
