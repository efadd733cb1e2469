// S1 keeps fp32's final results of its rollouts for dual-scale auto's split check
// (src/passes/calibration/sensitivity.ts, `fp32Results`): the results of the first samples, in
// sample order, while they fit the cap; past it, none (the check rolls those samples out with
// fp32 itself). On the bundled tiny ARVD, two calibration prompts; the quantized model S1
// compares with is tiny-arvd itself (the curve is not what this test reads).
import { describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { openCalibrationSession } from '../../src/passes/calibration/collect.ts';
import { checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { measureSensitivity } from '../../src/passes/calibration/sensitivity.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { plainFp32Results } from '../helpers/arvd-eval.ts';

describe("S1's fp32 results for the split check", () => {
  it('keeps the first samples in order while they fit the cap, and equal what a plain fp32 rollout returns', async () => {
    const calib = checkCalibrationModule({ rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 2) });
    const model = loadModel(MODEL_PATH);
    const session = await openCalibrationSession(model, findLinearLayers(model.graph).layers, calib, 1);
    // fp32 rolled out plainly, as the split check would.
    const expected = await plainFp32Results(MODEL_PATH, calib, 2);
    const bytes = expected[0]!.reduce((n, x) => n + x.byteLength, 0);
    try {
      const all: Float64Array[][] = [];
      await measureSensitivity(session, MODEL_PATH, calib, [0, 1, 2, 3, 4, 5], { threads: 1, fp32Results: all });
      expect(all).toHaveLength(2);
      // The calibration session's model (with observation outputs) computes the same function.
      for (let s = 0; s < 2; s++) for (let t = 0; t < all[s]!.length; t++) {
        const a = all[s]![t]!;
        const b = expected[s]![t]!;
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        expect(worst, `sample ${s}`).toBeLessThan(1e-5);
      }
      // A cap that holds one sample's results: the first only.
      const first: Float64Array[][] = [];
      await measureSensitivity(session, MODEL_PATH, calib, [0, 1, 2, 3, 4, 5], { threads: 1, fp32Results: first, fp32ResultsMaxBytes: bytes + bytes / 2 });
      expect(first).toHaveLength(1);
      expect(first[0]).toEqual(all[0]);
      // One that holds none: nothing.
      const none: Float64Array[][] = [];
      await measureSensitivity(session, MODEL_PATH, calib, [0, 1, 2, 3, 4, 5], { threads: 1, fp32Results: none, fp32ResultsMaxBytes: bytes - 1 });
      expect(none).toHaveLength(0);
    } finally {
      await session.dispose();
    }
  }, 300_000);
});
