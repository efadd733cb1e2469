/**
 * `dual-scale auto`'s check of its splits on the whole model (`split-check rollout`).
 *
 * Auto keeps a split where it lowers the layer's α-weighted output error. On two
 * autoregressive models that lowered every split layer's error and the one-step error of the
 * model, and still made the final video worse on held-out prompts (tiny-arvd-l at W4A8 by 5%
 * over four calibration draws, a Wan-like model by 12%; docs/benchmarks.md): the split's
 * weights, not its activation ranges, and no per-layer objective saw it. So the splits are
 * checked where the harm shows: the model with auto's splits and the model without them are
 * rolled out on the calibration samples, each sample's final result compared with fp32's.
 *
 * Those final results are chaotic: on tiny-arvd-l at W8A8 a model whose float parameters
 * moved by one ulp (the same function to float rounding) scored 0.32–1.77× the model's own
 * error over 16 prompts (copies of one model up to 3.1× apart), and the means of a check
 * differ by that much between models equally good. So the mean alone does not decide: the
 * splits are undone only when the samples show them worse beyond their spread — Wilcoxon's
 * signed-rank test of the per-sample log ratios, two-sided, at the conventional 5%
 * ({@link SPLIT_CHECK_LEVEL}; a standard level, not one fitted to the measurements). Otherwise the layers' errors, which auto's splits lowered and
 * which are not chaotic, stand. With fewer than {@link SPLIT_CHECK_MIN_SAMPLES} samples no
 * difference can reach that level, and the check does not run.
 *
 * Both candidates are the same reconstruction, one form or the other per split layer: auto
 * reconstructs both forms of such a layer, and the model without the splits is emitted from
 * the unsplit plans it recorded. The check costs that emission, three saves (fp32 before
 * quantizing, made on every run: the model is changed in place) and two rollouts per sample,
 * three where S1 did not roll fp32 out on it in this run (its curve read from a file, frame
 * weighting off, or a sample past the 256 MiB of fp32 results S1 keeps).
 */
import { join } from 'node:path';
import type { Model } from '../../graph/ir/model.ts';
import { loadModel, saveModel } from '../../graph/serde/io.ts';
import { makeProcessTempDir } from '../../graph/serde/stale-temps.ts';
import { trackTemp } from '../../graph/serde/temp-files.ts';
import { weightBytes } from '../../graph/weight-bytes.ts';
import { type CompareOptions, compareRollouts } from '../calibration/rollout-compare.ts';
import type { LoadedCalibration } from '../calibration/module.ts';
import { firstSamples } from '../calibration/samples.ts';
import { signedRankTest } from '../../kernels/signed-rank.ts';
import type { QuantReport } from './report.ts';

/** What the split check measured and kept (in the report and the calibration table). */
export interface SplitCheck {
  /** Calibration samples rolled out with each model. */
  samples: number;
  /** Layers auto split. */
  splits: number;
  /** Mean squared difference of the final result from fp32's: with auto's splits, and with none (Infinity, `null` in JSON: a rollout failed or diverged). */
  mse: { auto: number; off: number };
  /**
   * Each sample's mean squared difference, per model (a failed model's list ends before the
   * sample that failed): how far the verdict rests on a few rollouts. Absent in tables of earlier builds.
   */
  perSample?: { auto: number[]; off: number[] };
  /**
   * Two-sided p-value of the signed-rank test of the per-sample log ratios (auto ÷ off) on the
   * samples both models finished; absent when a rollout failed (the failed model loses) and in
   * tables of earlier builds, whose verdict was the lower mean.
   */
  p?: number;
  /** The model kept: `auto` (the splits stand) or `off` (every layer single-scale: the samples showed the splits worse, p below {@link SPLIT_CHECK_LEVEL}). */
  kept: 'auto' | 'off';
  /** In a calibration table: the options the verdict was measured with (a run loading the table with others does not take it). */
  run?: string;
  /** Why a candidate scored Infinity (its rollout failed or diverged), when one did. */
  failed?: string[];
}

/**
 * Above this many bytes of weights the check is skipped: it holds a second copy of the model
 * in memory, and rolls out three models per sample (at Wan2.1-1.3B's size, hours).
 */
export const SPLIT_CHECK_MAX_BYTES = 1024 ** 3;

/** The splits are undone only when the signed-rank test's two-sided p-value is below this (the conventional 5%). */
export const SPLIT_CHECK_LEVEL = 0.05;

/** Fewest samples with which the signed-rank test can reach {@link SPLIT_CHECK_LEVEL} (all six one way: p = 2/64). */
export const SPLIT_CHECK_MIN_SAMPLES = 6;

/**
 * Which model the check keeps, from each model's errors: a model whose rollout failed (Infinity)
 * loses; otherwise `off` only where the samples favour it beyond their spread (module doc) and
 * its mean error is the lower.
 */
export function splitCheckVerdict(mse: SplitCheck['mse'], perSample: NonNullable<SplitCheck['perSample']>): Pick<SplitCheck, 'kept' | 'p'> {
  const failedAuto = !Number.isFinite(mse.auto);
  if (failedAuto || !Number.isFinite(mse.off)) return { kept: failedAuto && Number.isFinite(mse.off) ? 'off' : 'auto' };
  // Both rollouts finished on every sample (a failed one scored Infinity above).
  if (perSample.auto.length !== perSample.off.length) throw new Error(`internal: split check with finite errors on ${perSample.auto.length} and ${perSample.off.length} samples`);
  const n = perSample.auto.length;
  // Log ratios: each sample counts by how many times nearer fp32 one model was, not by its own scale (a rollout that ran away is one sample).
  const logRatios = Array.from({ length: n }, (_, i) => logRatio(perSample.auto[i]!, perSample.off[i]!));
  const { p, wPlus, wMinus } = signedRankTest(logRatios);
  // Both the ranks and the mean must say off: a kept model is never the one with the higher mean.
  return { kept: p < SPLIT_CHECK_LEVEL && wPlus > wMinus && mse.off < mse.auto ? 'off' : 'auto', p };
}

/** ln(a ÷ b), with equal errors (zeros included) 0 and one zero error ±Infinity. */
function logRatio(a: number, b: number): number {
  if (a === b) return 0;
  return Math.log(a) - Math.log(b);
}

/** On how many samples each model's result was nearer fp32's (ties counted for neither): the samples both models finished. */
export function samplesFavouring(check: Pick<SplitCheck, 'perSample'>): { auto: number; off: number; of: number } | undefined {
  if (!check.perSample) return undefined;
  const { auto, off } = check.perSample;
  const of = Math.min(auto.length, off.length);
  let a = 0;
  let o = 0;
  for (let i = 0; i < of; i++) {
    if (auto[i]! < off[i]!) a++;
    else if (off[i]! < auto[i]!) o++;
  }
  return { auto: a, off: o, of };
}

/** Why the split check cannot run on this model, or undefined when it can (`samples`: the option saying how many calibration samples it rolls out). */
export function splitCheckUnavailable(model: Model, calib: LoadedCalibration | undefined, samples: number | undefined): string | undefined {
  if (!calib?.module.rollout) return 'it rolls out the calibration samples, and the calibration data given is not a rollout module';
  const n = firstSamples(calib, samples);
  if (n < SPLIT_CHECK_MIN_SAMPLES) return `it would roll out ${n} calibration sample(s), and with fewer than ${SPLIT_CHECK_MIN_SAMPLES} no difference between the two models can reach the ${SPLIT_CHECK_LEVEL * 100}% level of its signed-rank test`;
  const bytes = weightBytes(model.graph);
  if (bytes > SPLIT_CHECK_MAX_BYTES) return `the model's weights (${(bytes / 1024 ** 3).toFixed(1)} GiB) are over the ${SPLIT_CHECK_MAX_BYTES / 1024 ** 3} GiB it holds a second copy of`;
  return undefined;
}

/** The two ways of quantizing the model's layers: as the pass does (`auto`), and with every split layer single-scale (`off`). */
export interface SplitCheckQuantizers {
  auto: (model: Model) => Promise<QuantReport>;
  off: (model: Model) => Promise<QuantReport>;
}

/**
 * Quantizes `model` with auto's splits, and when it kept any, checks them (see the module
 * doc): the model ends as the better of the two, with that one's report (its `splitCheck`
 * says what was measured; layers whose split was undone keep their `splitChoice`).
 * @param options.samples calibration samples to roll out (the first n; 0 or absent: all)
 * @param options.starting called when the check starts (auto kept splits), before its rollouts:
 *   they take two or three rollouts per sample, a long silence in a log otherwise
 * @param options.fp32Results fp32's final results of the first samples (S1's reference
 *   rollouts, same contexts): those samples are rolled out with the two candidates only
 */
export async function quantizeWithSplitCheck(
  model: Model,
  calib: LoadedCalibration,
  quantize: SplitCheckQuantizers,
  options: CompareOptions & { starting?: (splits: number, samples: number) => void },
): Promise<{ report: QuantReport; check?: SplitCheck; ms: number }> {
  const dir = makeProcessTempDir('qarvd-split-');
  const remove = trackTemp(dir);
  try {
    const fp32Path = join(dir, 'fp32.onnx');
    // Below the size limit the file is one protobuf, so the copy read back holds every weight in memory.
    saveModel(model, fp32Path, { externalData: 'auto' });
    const auto = await quantize.auto(model);
    const splits = auto.layers.filter((l) => l.splitChoice && l.mode === 'dual').length;
    if (splits === 0) return { report: auto, ms: 0 };
    const started = performance.now();
    options.starting?.(splits, firstSamples(calib, options.samples));
    const copy = loadModel(fp32Path);
    const off = await quantize.off(copy);
    const autoPath = join(dir, 'auto.onnx');
    const offPath = join(dir, 'off.onnx');
    saveModel(model, autoPath, { externalData: 'auto' });
    saveModel(copy, offPath, { externalData: 'auto' });
    const { samples, threads, fp32Results } = options;
    const measured = await compareRollouts(fp32Path, [autoPath, offPath], ['quantized with the splits', 'quantized without the splits'], calib, { samples, threads, fp32Results });
    const [mseAuto, mseOff] = measured.mse as [number, number];
    const [perAuto, perOff] = measured.perSample as [number[], number[]];
    const check: SplitCheck = {
      samples: measured.samples,
      splits,
      mse: { auto: mseAuto, off: mseOff },
      perSample: { auto: perAuto, off: perOff },
      ...splitCheckVerdict({ auto: mseAuto, off: mseOff }, { auto: perAuto, off: perOff }),
      ...(measured.failed.length ? { failed: measured.failed } : {}),
    };
    if (check.kept === 'auto') return { report: auto, check, ms: performance.now() - started };
    adoptQuantized(model, copy);
    return { report: withSplitChoices(off, auto), check, ms: performance.now() - started };
  } finally {
    remove();
  }
}

/** `model` becomes `quantized` (a copy of it read back from a file and quantized): its graph and the opsets the quantizer imported. */
function adoptQuantized(model: Model, quantized: Model): void {
  model.graph = quantized.graph;
  model.opsetImports.clear();
  for (const [d, v] of quantized.opsetImports) model.opsetImports.set(d, v);
  model.opsetImportProtos.clear();
  for (const [d, p] of quantized.opsetImportProtos) model.opsetImportProtos.set(d, p);
}

/** The unsplit model's report, each layer auto had split keeping the errors auto compared. */
function withSplitChoices(off: QuantReport, auto: QuantReport): QuantReport {
  const choices = new Map(auto.layers.filter((l) => l.splitChoice).map((l) => [l.name, l.splitChoice!]));
  return { ...off, layers: off.layers.map((l) => (choices.has(l.name) ? { ...l, splitChoice: choices.get(l.name)! } : l)) };
}
