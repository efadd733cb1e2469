// Reconstructing a layer's split and single forms together (dual-scale auto), as the pass does:
// each form comes out exactly as reconstructed alone, while the Cholesky factorisations of H and
// of the folds' H are made once for both. Synthetic plans and statistics: the
// arithmetic is the subject (the pass on tiny-arvd: test/calibration/reconstruction.test.ts).
import { describe, expect, it } from 'vitest';
import { type MatMul64, matmul64 } from '../../src/kernels/matmul.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import type { ReconStats } from '../../src/passes/calibration/gram.ts';
import type { LayerPlan, LayerReconstruction } from '../../src/passes/quant/plan.ts';
import { comparableError, DAMP_CANDIDATES, reconstructPlan, reconstructPlans, type ReconstructOptions } from '../../src/passes/quant/reconstruct.ts';

/** H, μ and weight of `rows` random rows (a few channels noisier), as GramStats.combine gives them with α = 1. */
function rowStats(K: number, rows: number, seed: number): ReconStats {
  const rng = seededRandom(seed);
  // Correlated channels (rank 8 plus noise), where GPTQ's error feedback pays.
  const mix = seededRandom(7).normalArray(8 * K);
  const h = new Float64Array(K * K);
  const mean = new Float64Array(K);
  const x = new Float64Array(K);
  const z = new Float64Array(8);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < 8; p++) z[p] = rng.normal();
    for (let k = 0; k < K; k++) {
      x[k] = 0.3 * rng.normal() * (k % 37 === 5 ? 6 : 1) + 0.2;
      for (let p = 0; p < 8; p++) x[k] += z[p]! * mix[p * K + k]!;
    }
    for (let i = 0; i < K; i++) {
      mean[i] += x[i]! / rows;
      for (let j = 0; j < K; j++) h[i * K + j] += x[i]! * x[j]!;
    }
  }
  return { K, h, mean, weight: rows };
}

/** The two folds and their sum, as a collection over two calibration samples gives them. */
function foldedStats(K: number, rows: number): ReconStats {
  const a = rowStats(K, rows, 1);
  const b = rowStats(K, rows + 7, 2);
  const w = a.weight + b.weight;
  return { K, h: a.h.map((v, i) => v + b.h[i]!), mean: a.mean.map((v, i) => (v * a.weight + b.mean[i]! * b.weight) / w), weight: w, folds: [a, b] };
}

/** Per-output-channel 4-bit min/max scales of the rows `rows` of a `[K, N]` weight. */
function branch(w: Float32Array, N: number, rows: number[], whole: boolean) {
  const wScales = new Float32Array(N);
  const wZeroPoints = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let lo = 0;
    let hi = 0;
    for (const k of rows) {
      lo = Math.min(lo, w[k * N + n]!);
      hi = Math.max(hi, w[k * N + n]!);
    }
    wScales[n] = (hi - lo) / 15 || 1;
    wZeroPoints[n] = Math.round(-lo / wScales[n]!);
  }
  return { K: rows.length, ...(whole ? {} : { indices: Int32Array.from(rows) }), wScales, wZeroPoints, wType: 'uint4' };
}

/** A layer's split plan (rows with large weights as the outlier branch) and its single plan. */
function forms(K: number, N: number, seed: number) {
  const rng = seededRandom(seed);
  const w = Float32Array.from(rng.normalArray(K * N), (v, i) => v * (Math.floor(i / N) % 41 === 3 ? 8 : 1));
  const outliers = Array.from({ length: K }, (_, k) => k).filter((k) => k % 41 === 3);
  const normal = Array.from({ length: K }, (_, k) => k).filter((k) => k % 41 !== 3);
  const layer = { name: 'L', K, N };
  const common = { layer, outliers: {}, weightError: { single: 0 } };
  const dual = { ...common, mode: 'dual', branches: [branch(w, N, outliers, false), branch(w, N, normal, false)] } as unknown as LayerPlan;
  const single = { ...common, mode: 'single', branches: [branch(w, N, Array.from({ length: K }, (_, k) => k), true)] } as unknown as LayerPlan;
  return { w, dual, single };
}

/** A product that counts its calls (the Cholesky factorisation's and GPTQ's bulk). */
function counting(): { matmul: MatMul64; calls: () => number } {
  let calls = 0;
  return {
    matmul: (a, b, m, k, n) => {
      calls++;
      return matmul64(a, b, m, k, n);
    },
    calls: () => calls,
  };
}

const options = (matmul: MatMul64): ReconstructOptions => ({ method: 'gptq', gptq: { actOrder: true, matmul }, dampCandidates: DAMP_CANDIDATES, biasCorrection: true });

describe('reconstructing a layer\'s forms together', () => {
  // K over 256: the blocked Cholesky factorisation sends its panels through the product.
  const K = 300;
  const N = 24;
  const stats = foldedStats(K, 600);

  it('each form is what reconstructPlan makes of it alone (integers, bias shift, errors, held-out errors), with fewer products', () => {
    const { w, dual, single } = forms(K, N, 3);
    const apart = counting();
    const alone = [reconstructPlan(dual, w, stats, options(apart.matmul)), reconstructPlan(single, w, stats, options(apart.matmul))];
    const together = counting();
    const both = reconstructPlans([{ plan: dual }, { plan: single }], w, stats, options(together.matmul));
    for (const [i, plan] of both.entries()) {
      expect(plan.mode).toBe(alone[i]!.mode);
      expect(plan.reconstruction).toEqual(alone[i]!.reconstruction);
      expect(plan.biasShift).toEqual(alone[i]!.biasShift);
      plan.branches.forEach((b, j) => expect(b.wq).toEqual(alone[i]!.branches[j]!.wq));
    }
    // The held-out errors were measured (damp auto ran) and GPTQ beat round to nearest on the fitting samples.
    expect(Object.keys(both[0]!.reconstruction!.heldOut!).sort()).toEqual(['0.01', '0.1', '1', 'rtn']);
    for (const p of both) expect(p.reconstruction!.error.final).toBeLessThan(p.reconstruction!.error.rtn);
    // The six fold factorisations (three dampings on two folds) made once for both forms: 8 or 7 in all instead of 14.
    expect(together.calls()).toBeLessThan(apart.calls());
  });
});

describe('dual-scale auto\'s score of a form', () => {
  it('is the held-out error of the damping damp auto chose, also where the refit had to raise it (found by review: the raised damping has no held-out score, and the split was never kept)', () => {
    const r = { method: 'gptq', error: { rtn: 3, final: 2 }, errorCorrected: 2, meanShift: 0, dead: 0, damp: 1e-6, dampRequested: 0, heldOut: { rtn: 4, '0': 1.5 } } as unknown as LayerReconstruction;
    expect(comparableError(r)).toBe(1.5);
    expect(comparableError({ ...r, damp: 0.1, dampRequested: undefined, heldOut: { rtn: 4, '0.1': 2.5 } } as LayerReconstruction)).toBe(2.5);
    expect(comparableError({ ...r, heldOut: undefined } as LayerReconstruction)).toBe(2);
  });
});
