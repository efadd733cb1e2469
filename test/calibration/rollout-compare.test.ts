// The split check's whole-model comparison (src/passes/calibration/rollout-compare.ts) on the
// bundled ARVD with its rollout module. A candidate that diverges must lose, not end the
// conversion: the model here is tiny-arvd with one float weight set to NaN (made in the test:
// no real model diverges on demand), so its first call's output is NaN and the rollout feeds
// that back to the model, which the feed check refuses.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { compareRollouts } from '../../src/passes/calibration/rollout-compare.ts';
import { plainFp32Results } from '../helpers/arvd-eval.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('rollout-compare');
afterAll(() => removeDir(dir));

describe('compareRollouts', () => {
  it('scores the fp32 model itself 0 and a diverging candidate Infinity, naming it and the sample', async () => {
    const model = loadModel(MODEL_PATH);
    const weight = [...model.graph.initializers.values()].map((v) => v.initializer!).find((t) => t.dataType === DataType.FLOAT && t.size >= 64)!;
    const values = weight.toFloat32().slice();
    values.fill(Number.NaN);
    weight.setBytes(new Uint8Array(values.buffer));
    const broken = join(dir, 'nan.onnx');
    saveModel(model, broken);
    const calib = checkCalibrationModule({ rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 2) });
    const result = await compareRollouts(MODEL_PATH, [broken, MODEL_PATH], ['with a NaN weight', 'fp32 again'], calib, { threads: 1 });
    expect(result.samples).toBe(2);
    expect(result.mse[0]).toBe(Infinity);
    expect(result.mse[1]).toBe(0);
    expect(result.failed).toHaveLength(1);
    // Per sample: none for the candidate that failed on the first, both for fp32 itself.
    expect(result.perSample).toEqual([[], [0, 0]]);
    expect(result.failed[0]).toMatch(/^with a NaN weight, sample 0: .*NaN/);
  }, 120_000);

  it("takes fp32's results when given (S1's rollouts): the same scores, and the fp32 file is not opened for those samples", async () => {
    // A candidate a little off fp32: one weight scaled by 1.01 (made in the test).
    const model = loadModel(MODEL_PATH);
    const weight = [...model.graph.initializers.values()].map((v) => v.initializer!).find((t) => t.dataType === DataType.FLOAT && t.size >= 64)!;
    const values = weight.toFloat32().map((v) => v * 1.01);
    weight.setBytes(new Uint8Array(values.buffer));
    const nudged = join(dir, 'nudged.onnx');
    saveModel(model, nudged);
    const calib = checkCalibrationModule({ rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 2) });
    const scratch = await compareRollouts(MODEL_PATH, [nudged], ['nudged'], calib, { threads: 1 });
    expect(scratch.mse[0]).toBeGreaterThan(0);
    // fp32's results rolled out here as S1 does (same contexts, judged values).
    const fp32Results = await plainFp32Results(MODEL_PATH, calib, 2);
    const missing = join(dir, 'no-such-fp32.onnx');
    const reused = await compareRollouts(missing, [nudged], ['nudged'], calib, { threads: 1, fp32Results });
    expect(reused.mse).toEqual(scratch.mse);
    // Fewer results than samples: the rest are rolled out with fp32 (the file is needed then).
    await expect(compareRollouts(missing, [nudged], ['nudged'], calib, { threads: 1, fp32Results: fp32Results.slice(0, 1) })).rejects.toThrow(/cannot load the model before quantization/);
    expect((await compareRollouts(MODEL_PATH, [nudged], ['nudged'], calib, { threads: 1, fp32Results: fp32Results.slice(0, 1) })).mse).toEqual(scratch.mse);
  }, 120_000);
});
