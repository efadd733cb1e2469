/**
 * Whole-model comparison on the calibration rollouts: each candidate model (a quantized file)
 * is rolled out on the same samples, with the same contexts, as the fp32 model, and scored
 * by the mean squared difference of its final result from fp32's — the quantity S1's curve
 * stands in for chunk by chunk. `dual-scale auto` uses it to check its splits as a whole
 * (quant/split-check.ts): a layer's own error can fall while the video gets worse.
 */
import type * as ort from 'onnxruntime-node';
import { importOnnxruntime } from '../../runtime/optional-import.ts';
import { type LoadedCalibration, type RunFn } from './module.ts';
import { contextFor, drawSample, firstSamples, resultValues } from './samples.ts';
import { checkFeeds, openTemporaryCopy } from './session.ts';
import { meanSquaredDifference } from './sensitivity.ts';

/** What {@link compareRollouts} measured. */
export interface RolloutComparison {
  /** Samples rolled out (the first n of the module's). */
  samples: number;
  /** Per candidate (in the order given): the final result's mean squared difference from fp32's, averaged over the samples. */
  mse: number[];
  /** Per candidate, per sample: that sample's mean squared difference (ending before the sample whose rollout failed, if one did). */
  perSample: number[][];
  /** Per candidate that scored Infinity: why (its rollout threw, fed the model NaN, or ended non-finite). */
  failed: string[];
}

/** Options of {@link compareRollouts}. */
export interface CompareOptions {
  /** Samples to roll out (the first n of the module's); default all. */
  samples?: number;
  threads?: number;
  /**
   * fp32's final results of the first samples, rolled out already with the same contexts (S1's
   * reference rollouts): those samples are not rolled out with fp32 again.
   */
  fp32Results?: readonly Float64Array[][];
}

/**
 * Rolls out the first `samples` samples of a rollout module with the fp32 model and with each
 * candidate, and returns each candidate's mean squared difference from fp32's final result.
 * Every rollout of a sample gets the same context (the same prompt and seed), as S1's do.
 * @param fp32Path the model before quantization, as a file (not opened when `fp32Results` covers every sample)
 * @param candidates the quantized models, as files
 * @param labels what each file is, for onnxruntime's load errors
 */
export async function compareRollouts(fp32Path: string, candidates: readonly string[], labels: readonly string[], calib: LoadedCalibration, options: CompareOptions = {}): Promise<RolloutComparison> {
  if (!calib.module.rollout) throw new Error('internal: a rollout comparison needs a rollout module');
  const samples = firstSamples(calib, options.samples);
  const given = options.fp32Results ?? [];
  const { InferenceSession } = await importOnnxruntime();
  const threads = options.threads ?? 0;
  const sessions: ort.InferenceSession[] = [];
  let fp32: ort.InferenceSession | undefined;
  try {
    if (given.length < samples) fp32 = await openTemporaryCopy(InferenceSession, fp32Path, threads, 'before quantization (a temporary copy, for the split check)');
    for (let i = 0; i < candidates.length; i++) sessions.push(await openTemporaryCopy(InferenceSession, candidates[i]!, threads, `${labels[i]} (a temporary copy, for the split check)`));
    const sums = new Float64Array(candidates.length);
    const perSample: number[][] = candidates.map(() => []);
    const failed: string[] = [];
    for (let sample = 0; sample < samples; sample++) {
      const rollout = async (session: ort.InferenceSession, judged: boolean) => {
        const run: RunFn = async (feeds) => {
          checkFeeds(feeds, session.inputNames, calib.origin, sample);
          return (await session.run(feeds)) as Record<string, ort.Tensor>;
        };
        return resultValues(await drawSample(calib, contextFor(calib, sample), run), calib, sample, judged ? {} : undefined);
      };
      const reference = given[sample] ?? (await rollout(fp32!, true));
      // A candidate whose rollout fails or diverges (a NaN fed back into the model is refused as
      // a feed) scores Infinity: it loses, and the conversion goes on with the other.
      for (let c = 0; c < candidates.length; c++) {
        if (sums[c] === Infinity) continue;
        try {
          const mse = meanSquaredDifference(await rollout(sessions[c]!, false), reference, calib, sample);
          if (!Number.isFinite(mse)) throw new Error(`its final result holds ${mse}`);
          sums[c]! += mse;
          perSample[c]!.push(mse);
        } catch (e) {
          sums[c] = Infinity;
          failed.push(`${labels[c]}, sample ${sample}: ${(e as Error).message}`);
        }
      }
    }
    return { samples, mse: Array.from(sums, (s) => s / samples), perSample, failed };
  } finally {
    for (const s of [...(fp32 ? [fp32] : []), ...sessions]) await s.release();
  }
}
