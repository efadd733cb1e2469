// Final-video error of quantized tiny-arvd models against fp32, for the calibration tests:
// the fp32 videos of a few held-out prompts (with their own noise seeds) are rolled out once,
// then each model file is rolled out with the same prompts and seeds. One onnxruntime thread.
import * as ort from 'onnxruntime-node';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import type { SeededPrompt } from '../../examples/tiny-arvd/prompts.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import type { LoadedCalibration, RunFn } from '../../src/passes/calibration/module.ts';
import { contextFor, drawSample, resultValues } from '../../src/passes/calibration/samples.ts';

const ONE_THREAD: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** The fp32 reference videos of `prompts`, and the mean squared error of a model file against them. */
export async function videoReference(prompts: readonly SeededPrompt[]): Promise<(path: string) => Promise<number>> {
  const fp32 = await ort.InferenceSession.create(MODEL_PATH, ONE_THREAD);
  const references: Float32Array[] = [];
  for (const p of prompts) references.push(await tinyArvd.generateVideo(fp32, p.prompt, p.seed));
  await fp32.release();
  return async (path: string) => {
    const s = await ort.InferenceSession.create(path, ONE_THREAD);
    let sum = 0;
    let n = 0;
    for (let i = 0; i < prompts.length; i++) {
      const v = await tinyArvd.generateVideo(s, prompts[i]!.prompt, prompts[i]!.seed);
      for (let j = 0; j < v.length; j++) sum += (v[j]! - references[i]![j]!) ** 2;
      n += v.length;
    }
    await s.release();
    return sum / n;
  };
}

/**
 * fp32's final results of the first `samples` samples of `calib`, rolled out plainly with
 * onnxruntime (one thread) with the contexts calibration gives them and judged as S1 judges
 * its reference: what the split check compares with.
 */
export async function plainFp32Results(modelPath: string, calib: LoadedCalibration, samples: number): Promise<Float64Array[][]> {
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const results: Float64Array[][] = [];
  try {
    for (let sample = 0; sample < samples; sample++) {
      const run: RunFn = async (feeds) => (await session.run(feeds)) as Record<string, ort.Tensor>;
      results.push(resultValues(await drawSample(calib, contextFor(calib, sample), run), calib, sample, {}));
    }
  } finally {
    await session.release();
  }
  return results;
}
