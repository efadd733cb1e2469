// The activation objectives' kernels (src/kernels/activation-objective.ts) against a plain
// float64 reference on a synthetic layer (test/helpers/synthetic-layer.ts: generated weights
// with planted outlier rows and a dead channel, correlated activations; no real layer is
// small enough for the explicit references), its inputs quantized to 6 bits with clipping by
// a per-tensor quantizer per branch, as a split layer's are. The reference forms Q(x) row by
// row and sums Q(x)ᵀQ(x), Q(x)ᵀx and ‖Q(x)Ŵ − xW‖² directly, and solves for W* by Gaussian
// elimination; the kernels get H and the error moments instead.
import { describe, expect, it } from 'vitest';
import { type ActivationMoments, asymmetricError, asymmetricTarget, correctionScale, crossGram, dampingOf, quantizedGram } from '../../src/kernels/activation-objective.ts';
import { gptq, quadraticError, roundToNearest } from '../../src/kernels/gptq.ts';
import { makeLayer, type SyntheticLayerCase } from '../helpers/synthetic-layer.ts';

const CASE: SyntheticLayerCase = { name: 'int4 dual-scale, 6-bit activations', K: 96, N: 16, type: 'int4', outliers: [3, 40, 41], dead: [77], block: 0, seed: 21 };
const { K, N } = CASE;
const { w, h, x, rows: M, quantizers } = makeLayer(CASE);

/** A 6-bit per-tensor quantizer over [lo, hi] (zero included), float64 arithmetic. */
function quantizer(lo: number, hi: number) {
  const scale = (Math.max(hi, 0) - Math.min(lo, 0)) / 63;
  const zero = Math.round(-Math.min(lo, 0) / scale);
  return (v: number) => (Math.min(63, Math.max(0, Math.round(v / scale) + zero)) - zero) * scale;
}

// The outlier channels get their own quantizer (a split layer's branches); each range is
// clipped to 70% of the channels' extent, so the error has a clipping part, not only rounding.
const outlier = new Set(CASE.outliers);
const extent = (pick: (k: number) => boolean) => {
  let lo = Infinity;
  let hi = -Infinity;
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) if (pick(k)) ((lo = Math.min(lo, x[m * K + k]!)), (hi = Math.max(hi, x[m * K + k]!)));
  return quantizer(0.7 * lo, 0.7 * hi);
};
const qOut = extent((k) => outlier.has(k));
const qNorm = extent((k) => !outlier.has(k));
const xq = Float64Array.from(x, (v, i) => (outlier.has(i % K) ? qOut(v) : qNorm(v)));

/** Σ_rows aᵀb for row-major [M, K] a and b. */
function cross(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(K * K);
  for (let m = 0; m < M; m++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) out[i * K + j] += a[m * K + i]! * b[m * K + j]!;
  return out;
}
const e = Float64Array.from(xq, (v, i) => v - x[i]!);
const moments: ActivationMoments = { K, cross: cross(e, x).map((v) => v / M), square: cross(e, e).map((v) => v / M) };
const hqRef = cross(xq, xq);
const cRef = cross(xq, x);

/** ‖Q(X)·Ŵ − X·W‖² summed over the rows, directly. */
function asymmetricLoss(deq: Float32Array): number {
  let total = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let y = 0;
      for (let k = 0; k < K; k++) y += xq[m * K + k]! * deq[k * N + n]! - x[m * K + k]! * w[k * N + n]!;
      total += y * y;
    }
  }
  return total;
}

/** (A + λI)⁻¹·(C + λI)·W by Gaussian elimination with partial pivoting; a dead channel (zero diagonal) keeps W's row. */
function targetReference(a: Float64Array, c: Float64Array, lambda: number): Float64Array {
  const aug = new Float64Array(K * (K + N));
  const width = K + N;
  for (let i = 0; i < K; i++) {
    const dead = a[i * K + i] === 0;
    for (let j = 0; j < K; j++) aug[i * width + j] = dead ? (i === j ? 1 : 0) : a[i * K + j]! + (i === j ? lambda : 0);
    for (let n = 0; n < N; n++) {
      let s = 0;
      if (dead) s = w[i * N + n]!;
      else {
        for (let j = 0; j < K; j++) s += c[i * K + j]! * w[j * N + n]!;
        s += lambda * w[i * N + n]!;
      }
      aug[i * width + K + n] = s;
    }
  }
  for (let col = 0; col < K; col++) {
    let p = col;
    for (let r = col + 1; r < K; r++) if (Math.abs(aug[r * width + col]!) > Math.abs(aug[p * width + col]!)) p = r;
    for (let j = 0; j < width; j++) [aug[col * width + j], aug[p * width + j]] = [aug[p * width + j]!, aug[col * width + j]!];
    for (let r = 0; r < K; r++) {
      if (r === col) continue;
      const f = aug[r * width + col]! / aug[col * width + col]!;
      if (f !== 0) for (let j = col; j < width; j++) aug[r * width + j] -= f * aug[col * width + j]!;
    }
  }
  const out = new Float64Array(K * N);
  for (let i = 0; i < K; i++) for (let n = 0; n < N; n++) out[i * N + n] = aug[i * width + K + n]! / aug[i * width + i]!;
  return out;
}

const maxRelative = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) ((diff = Math.max(diff, Math.abs(a[i]! - b[i]!))), (scale = Math.max(scale, Math.abs(b[i]!))));
  return diff / scale;
};

describe('activation objective kernels (synthetic layer, 6-bit clipped activations)', () => {
  it('H + moments gives ΣQ(x)ᵀQ(x) and ΣQ(x)ᵀx of the reference', () => {
    expect(maxRelative(quantizedGram(h, M, moments), hqRef)).toBeLessThan(1e-12);
    expect(maxRelative(crossGram(h, M, moments), cRef)).toBeLessThan(1e-12);
    // The activation error is not negligible here: H̃ differs from H by more than rounding.
    expect(maxRelative(hqRef, h)).toBeGreaterThan(1e-3);
  });

  it('the asymmetric target is the reference least-squares solution, and W itself under strong damping', () => {
    const hq = quantizedGram(h, M, moments);
    const c = crossGram(h, M, moments);
    for (const damp of [0.01, 0.1]) {
      const t = asymmetricTarget(w, hq, c, K, N, damp);
      expect(maxRelative(t, targetReference(hqRef, cRef, dampingOf(hqRef, K, damp)))).toBeLessThan(1e-5);
    }
    expect(maxRelative(asymmetricTarget(w, hq, c, K, N, 1e6), w)).toBeLessThan(1e-5);
  });

  it('asymmetricError is ‖Q(X)Ŵ − XW‖² summed over the rows', () => {
    const deq = roundToNearest(w, K, N, quantizers).deq;
    expect(asymmetricError(deq, w, h, M, moments, K, N) / asymmetricLoss(deq) - 1).toBeLessThan(1e-9);
    expect(asymmetricError(deq, w, h, M, moments, K, N) / asymmetricLoss(deq) - 1).toBeGreaterThan(-1e-9);
  });

  it('GPTQ of W* on H̃ has a lower asymmetric loss than GPTQ of W on H (fp32) or on H̃ (quantized), and than rounding', () => {
    const hq = quantizedGram(h, M, moments);
    const c = crossGram(h, M, moments);
    const damp = 0.01;
    const asym = gptq(asymmetricTarget(w, hq, c, K, N, damp), hq, K, N, quantizers, { damp });
    const fp32 = gptq(w, h, K, N, quantizers, { damp });
    const quant = gptq(w, hq, K, N, quantizers, { damp });
    const rtn = roundToNearest(w, K, N, quantizers);
    const [eA, eF, eQ, eR] = [asym, fp32, quant, rtn].map((r) => asymmetricLoss(r.deq));
    console.log(`asymmetric loss: asym ${eA}, fp32 ${eF}, quantized ${eQ}, rtn ${eR}`);
    expect(eA).toBeLessThan(eF);
    expect(eA).toBeLessThan(eQ);
    expect(eA).toBeLessThan(eR);
    // Each objective's own minimiser wins under its own loss: fp32's under tr(ΔᵀHΔ).
    expect(quadraticError(fp32.deq, w, h, K, N)).toBeLessThan(quadraticError(asym.deq, w, h, K, N));
    expect(asym.dead).toBe(1);
  });

  it('correctionScale keeps exact moments whole and shrinks an estimate that would make H̃ indefinite', () => {
    expect(correctionScale(h, M, moments, 0.01)).toBe(1);
    // A correction of −1.5·H (as an estimate from few heavily weighted clipped rows can be):
    // H̃ = −0.5·H at t = 1, 0.25·H at t = ½.
    const bad: ActivationMoments = { K, cross: new Float64Array(K * K), square: h.map((v) => (-1.5 * v) / M) };
    expect(correctionScale(h, M, bad, 0.01)).toBe(0.5);
  });

  it('correctionScale: 0 when only H itself factors at the damping, undefined when even H does not (a review: both were 0, and 0 sent the search to damp 1)', () => {
    // An indefinite correction estimated from a few reservoir rows: 1500 off the diagonal.
    const one = Float64Array.from([1, 0, 0, 1]);
    const indefinite: ActivationMoments = { K: 2, cross: Float64Array.from([0, 750, 750, 0]), square: new Float64Array(4) };
    expect(correctionScale(one, 1, indefinite, 0.01)).toBe(0);
    expect(correctionScale(one, 1, indefinite, 1)).toBeGreaterThan(0);
    // A singular H (inputs with one distinct row) undamped: not even t = 0 factors.
    const singular = Float64Array.from([1, 1, 1, 1]);
    const none: ActivationMoments = { K: 2, cross: new Float64Array(4), square: new Float64Array(4) };
    expect(correctionScale(singular, 1, none, 0)).toBeUndefined();
    expect(correctionScale(singular, 1, none, 1e-6)).toBe(1);
  });
});
