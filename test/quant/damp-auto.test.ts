// damp auto: the held-out error of weights fitted on one fold, measured on the other fold's
// statistics, against the same quantity computed row by row; and the choice among the
// candidates. Synthetic rows and weights (the arithmetic is the subject; the end-to-end effect
// on tiny-arvd is in test/calibration/reconstruction.test.ts).
import { describe, expect, it } from 'vitest';
import { roundToNearest, type RowQuantizers } from '../../src/kernels/gptq.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import type { ReconStats } from '../../src/passes/calibration/gram.ts';
import { chooseDamping, DAMP_CANDIDATES, heldOutError } from '../../src/passes/quant/reconstruct.ts';

/** H, μ and weight of explicit rows `[rows, K]`, as GramStats.combine gives them with α = 1. */
function statsOf(x: Float64Array, K: number): ReconStats {
  const rows = x.length / K;
  const h = new Float64Array(K * K);
  const mean = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < K; i++) {
      mean[i] += x[r * K + i]! / rows;
      for (let j = 0; j < K; j++) h[i * K + j] += x[r * K + i]! * x[r * K + j]!;
    }
  }
  return { K, h, mean, weight: rows };
}

/** Per-channel 4-bit min/max quantizers of a `[K, N]` weight. */
function quantizers(w: Float32Array, K: number, N: number): RowQuantizers {
  const scales = new Float32Array(N);
  const zeroPoints = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < K; k++) {
      lo = Math.min(lo, w[k * N + n]!);
      hi = Math.max(hi, w[k * N + n]!);
    }
    scales[n] = (hi - lo) / 15;
    zeroPoints[n] = Math.round(-lo / scales[n]!);
  }
  return { group: new Int32Array(K), scales, zeroPoints, type: 'uint4' };
}

const K = 12;
const N = 5;
const rng = seededRandom(11);
const w = rng.normalArray(K * N);
// Fold A's rows live in a 3-dimensional subspace with an offset; fold B's span every channel.
const basis = rng.normalArray(3 * K);
const rowsA = new Float64Array(40 * K);
for (let r = 0; r < 40; r++) for (let k = 0; k < K; k++) rowsA[r * K + k] = 0.5 + basis[k]! * rng.normal() + basis[K + k]! * rng.normal() + basis[2 * K + k]! * rng.normal();
const rowsB = Float64Array.from(rng.normalArray(60 * K), (v) => v - 0.3);
const foldA = statsOf(rowsA, K);
const foldB = statsOf(rowsB, K);
const qz = quantizers(w, K, N);

describe('damp auto', () => {
  it('the held-out error is E‖xΔ − μ_fΔ‖² over the test fold\'s rows (bias from the fitting fold), or E‖xΔ‖² without bias correction', () => {
    const deq = roundToNearest(w, K, N, qz).deq;
    const delta = Float64Array.from(deq, (v, i) => v - w[i]!);
    const shift = new Float64Array(N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) shift[n] += foldA.mean[k]! * delta[k * N + n]!;
    let corrected = 0;
    let plain = 0;
    for (let r = 0; r < 60; r++) {
      for (let n = 0; n < N; n++) {
        let y = 0;
        for (let k = 0; k < K; k++) y += rowsB[r * K + k]! * delta[k * N + n]!;
        corrected += (y - shift[n]!) ** 2;
        plain += y * y;
      }
    }
    expect(heldOutError(deq, w, foldA, foldB, K, N, true)).toBeCloseTo(corrected / 60, 9);
    expect(heldOutError(deq, w, foldA, foldB, K, N, false)).toBeCloseTo(plain / 60, 9);
  });

  it('keeps the candidate with the lowest two-fold held-out error, round to nearest included', () => {
    const rtn = roundToNearest(w, K, N, qz).deq;
    const choice = chooseDamping(w, [foldA, foldB], qz, rtn, { method: 'gptq', gptq: {}, dampCandidates: DAMP_CANDIDATES, biasCorrection: true });
    expect(Object.keys(choice.errors).sort()).toEqual(['rtn', ...DAMP_CANDIDATES.map(String)].sort());
    const best = Math.min(...Object.values(choice.errors));
    expect(choice.errors[String(choice.best)]).toBe(best);
    for (const v of Object.values(choice.errors)) expect(Number.isFinite(v) && v > 0).toBe(true);
    // Both directions count: swapping the folds gives the same errors.
    const swapped = chooseDamping(w, [foldB, foldA], qz, rtn, { method: 'gptq', gptq: {}, dampCandidates: DAMP_CANDIDATES, biasCorrection: true });
    for (const [k, v] of Object.entries(choice.errors)) expect(swapped.errors[k]).toBeCloseTo(v, 9);
  });
});
