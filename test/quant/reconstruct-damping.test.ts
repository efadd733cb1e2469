// The damping a layer's reconstruction runs at, on synthetic two-channel layers (the arithmetic
// is the subject; tiny-arvd's damp 0 runs are in test/calibration/reconstruction.test.ts):
// the requested damping is kept wherever H (or H̃) factors with it, and raised, as GPTQ raises
// it, only where it does not — for the asymmetric objective's target as well (found by review:
// a correction dropped at damp 0.01 was resized at damp 1, and the asymmetric target threw
// "not positive definite" where GPTQ would have raised its damping).
import { describe, expect, it } from 'vitest';
import type { ActivationMoments } from '../../src/kernels/activation-objective.ts';
import type { ReconStats } from '../../src/passes/calibration/gram.ts';
import type { LayerPlan } from '../../src/passes/quant/plan.ts';
import { reconstructPlan, type ReconstructOptions } from '../../src/passes/quant/reconstruct.ts';

const K = 2;
const N = 1;
const w = Float32Array.from([0.3, -0.2]);
/** One 4-bit branch over both channels, per output channel. */
const plan = {
  layer: { name: 'L', K, N },
  mode: 'single',
  outliers: {},
  branches: [{ K, wScales: Float32Array.from([0.05]), wZeroPoints: new Int32Array(1), wType: 'int4' }],
  weightError: { single: 0 },
} as unknown as LayerPlan;

const statsOf = (h: number[]): ReconStats => ({ K, h: Float64Array.from(h), mean: new Float64Array(K), weight: 1 });
const options = (objective: 'quantized' | 'asymmetric', damp: number): ReconstructOptions => ({ method: 'gptq', gptq: { damp }, biasCorrection: false, objective }) as ReconstructOptions;

describe('reconstruction damping', () => {
  // A correction estimated from few reservoir rows that no positive scale keeps definite at damp 0.01.
  const indefinite: ActivationMoments = { K, cross: Float64Array.from([0, 750, 750, 0]), square: new Float64Array(4) };

  it('an H that factors with the requested damping keeps it, its correction dropped (t = 0), for both objectives', () => {
    for (const objective of ['quantized', 'asymmetric'] as const) {
      const r = reconstructPlan(plan, w, statsOf([1, 0, 0, 1]), options(objective, 0.01), undefined, indefinite).reconstruction!;
      expect(r.damp, objective).toBe(0.01);
      expect(r.dampRequested, objective).toBeUndefined();
      expect(r.correctionScale, objective).toBe(0);
    }
  });

  it('a singular H at damp 0: the asymmetric target is built, and GPTQ runs, at the first damping that factors', () => {
    const none: ActivationMoments = { K, cross: new Float64Array(4), square: new Float64Array(4) };
    for (const objective of ['quantized', 'asymmetric'] as const) {
      // One distinct input row, as float32 sums leave it: indefinite at 1e-7 of the diagonal.
      const r = reconstructPlan(plan, w, statsOf([1, 1 + 1e-7, 1 + 1e-7, 1]), options(objective, 0), undefined, none).reconstruction!;
      expect(r.dampRequested, objective).toBe(0);
      expect(r.damp, objective).toBe(1e-6);
    }
  });
});
