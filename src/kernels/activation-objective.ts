/**
 * The reconstruction objective with quantized activations (issue 14 item 2; METHOD.md
 * "Reconstruction"). A layer whose input `x` is quantized to `Q(x) = x + e` computes
 * `Q(x)·Ŵ`, not `x·Ŵ`. With the per-row sums over the calibration rows (α-weighted as H is)
 *
 *     H = Σ xᵀx,   B = Σ eᵀx,   E = Σ eᵀe      (K×K; B is not symmetric)
 *
 * the Gram matrix of the quantized inputs is `H̃ = Σ Q(x)ᵀQ(x) = H + B + Bᵀ + E` and their
 * cross moment with the float inputs is `C = Σ Q(x)ᵀx = H + B`. Two objectives follow:
 *
 * - `quantized`: `‖Q(X)·(Ŵ − W)‖² = tr(ΔᵀH̃Δ)`: GPTQ of W on H̃.
 * - `asymmetric`: `‖Q(X)·Ŵ − X·W‖² = tr(ŴᵀH̃Ŵ) − 2·tr(ŴᵀC·W) + tr(WᵀHW)`, whose minimiser over
 *   real Ŵ is `W* = H̃⁻¹·C·W`, and `= tr((Ŵ − W*)ᵀH̃(Ŵ − W*)) + const`: GPTQ of W* on H̃.
 *
 * Damping. GPTQ adds `λI` to the Hessian (λ = damp·mean diag); on the asymmetric objective
 * that is consistent only with the proximal objective `‖Q(X)Ŵ − XW‖² + λ‖Ŵ − W‖²`, whose
 * minimiser is `W*_λ = (H̃ + λI)⁻¹·(C + λI)·W` ({@link asymmetricTarget}): the damping pulls
 * the target towards W where the calibration rows say little (without it, noise in the
 * estimated B and E is amplified by H̃⁻¹ in those directions), and large damping gives back W.
 *
 * Pure functions on typed arrays; the products go through an injectable {@link MatMul64}.
 */
import { choleskyLowerInPlace } from './cholesky.ts';
import { quadraticError } from './gptq.ts';
import { type MatMul64, matmul64 } from './matmul.ts';

/** Which objective drives the weights (`--q-arvd.activation-objective`). */
export type ActivationObjective = 'fp32' | 'quantized' | 'asymmetric';

/** The objectives, today's first. */
export const ACTIVATION_OBJECTIVES: readonly ActivationObjective[] = ['fp32', 'quantized', 'asymmetric'];

/**
 * The activation quantizer's error moments of one layer form, per calibration row (sums
 * divided by the rows' total weight): multiply by a statistics' `weight` to put them on H's
 * scale.
 */
export interface ActivationMoments {
  K: number;
  /** `E[eᵀx]`, row-major K×K (row: the error's channel). */
  cross: Float64Array;
  /** `E[eᵀe]`, row-major K×K, symmetric. */
  square: Float64Array;
}

/**
 * `H̃ = H + t·rows·(B̄ + B̄ᵀ + Ē)`: the Gram matrix of the quantized inputs (a new array); `t`
 * (default 1) scales the correction (see {@link correctionScale}).
 */
export function quantizedGram(h: Float64Array, rows: number, m: ActivationMoments, t = 1): Float64Array {
  const { K, cross, square } = m;
  const out = new Float64Array(K * K);
  const f = t * rows;
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      const at = i * K + j;
      out[at] = h[at]! + f * (cross[at]! + cross[j * K + i]! + square[at]!);
    }
  }
  return out;
}

/** `C = H + t·rows·B̄`: the cross moment `Σ Q(x)ᵀx` (a new array). */
export function crossGram(h: Float64Array, rows: number, m: ActivationMoments, t = 1): Float64Array {
  const out = new Float64Array(h.length);
  const f = t * rows;
  for (let i = 0; i < h.length; i++) out[i] = h[i]! + f * m.cross[i]!;
  return out;
}

/** The scales {@link correctionScale} tries, in order: 1, ½, …, 2⁻¹⁰, then none. */
const CORRECTION_SCALES = [...Array.from({ length: 11 }, (_, i) => 2 ** -i), 0];

/**
 * The largest `t ∈ {1, ½, ¼, …, 2⁻¹⁰, 0}` for which `H + t·rows·(B̄ + B̄ᵀ + Ē)`, damped by
 * `damp`·mean diag as GPTQ damps it, is positive definite. H is summed over every calibration
 * row and the moments are estimated from a sample of them, so their sum need not be positive
 * semi-definite as the exact `Σ Q(x)ᵀQ(x)` is: a few clipped rows of the uniform reservoir,
 * each standing for many rows, can outweigh what H holds of that channel. Shrinking the
 * correction towards H (t = 0: the fp32 objective) keeps the objective a valid least-squares
 * problem there; the report says where it was needed. Undefined when H itself (t = 0) is not
 * positive definite with this damping (GPTQ will raise it).
 */
export function correctionScale(h: Float64Array, rows: number, m: ActivationMoments, damp: number, matmul: MatMul64 = matmul64): number | undefined {
  const { K } = m;
  for (const t of CORRECTION_SCALES) {
    const a = t > 0 ? quantizedGram(h, rows, m, t) : Float64Array.from(h);
    const lambda = dampingOf(a, K, damp);
    for (let k = 0; k < K; k++) a[k * K + k] = a[k * K + k] === 0 ? 1 : a[k * K + k]! + lambda;
    try {
      choleskyLowerInPlace(a, K, { matmul });
      return t;
    } catch {
      // Not positive definite: try half the correction, then none.
    }
  }
  return undefined;
}

/**
 * GPTQ's damping `λ = damp·mean(diag H)`, a never-seen channel (zero diagonal) counting 1 as
 * GPTQ counts it (gptq.ts `prepare`).
 */
export function dampingOf(h: Float64Array, K: number, damp: number): number {
  let mean = 0;
  for (let k = 0; k < K; k++) mean += h[k * K + k] === 0 ? 1 : h[k * K + k]!;
  return (damp * mean) / K;
}

/**
 * The target of the asymmetric objective at damping fraction `damp`:
 * `W*_λ = (H̃ + λI)⁻¹·(C·W + λ·W)` for a row-major `[K, N]` weight (see the module doc). A
 * channel with a zero diagonal in H̃ (dead) keeps its row of W. λ is floored at 1e-9 of the
 * mean diagonal so that `damp 0` still factors a singular H̃.
 */
export function asymmetricTarget(w: Float32Array, hq: Float64Array, c: Float64Array, K: number, N: number, damp: number, matmul: MatMul64 = matmul64): Float32Array {
  if (w.length !== K * N || hq.length !== K * K || c.length !== K * K) throw new RangeError(`asymmetricTarget: shapes ${w.length}, ${hq.length}, ${c.length} are not ${K}×${N}, ${K}×${K}, ${K}×${K}`);
  const lambda = Math.max(dampingOf(hq, K, damp), dampingOf(hq, K, 1e-9));
  const a = Float64Array.from(hq);
  const w64 = Float64Array.from(w);
  const rhs = matmul(c, w64, K, K, N);
  for (let k = 0; k < K; k++) {
    const dead = hq[k * K + k] === 0;
    if (dead) {
      // Nothing reaches this channel: keep W's row (GPTQ zeroes it anyway).
      for (let j = 0; j < K; j++) a[k * K + j] = a[j * K + k] = 0;
      a[k * K + k] = 1;
      for (let n = 0; n < N; n++) rhs[k * N + n] = w64[k * N + n]!;
      continue;
    }
    a[k * K + k] += lambda;
    for (let n = 0; n < N; n++) rhs[k * N + n] += lambda * w64[k * N + n]!;
  }
  choleskyLowerInPlace(a, K, { matmul });
  // L·Y = rhs, then Lᵀ·X = Y, over all N columns at once.
  for (let i = 0; i < K; i++) {
    const ri = i * N;
    for (let j = 0; j < i; j++) {
      const f = a[i * K + j]!;
      if (f === 0) continue;
      const rj = j * N;
      for (let n = 0; n < N; n++) rhs[ri + n] -= f * rhs[rj + n]!;
    }
    const d = a[i * K + i]!;
    for (let n = 0; n < N; n++) rhs[ri + n] /= d;
  }
  for (let i = K - 1; i >= 0; i--) {
    const ri = i * N;
    for (let j = i + 1; j < K; j++) {
      const f = a[j * K + i]!;
      if (f === 0) continue;
      const rj = j * N;
      for (let n = 0; n < N; n++) rhs[ri + n] -= f * rhs[rj + n]!;
    }
    const d = a[i * K + i]!;
    for (let n = 0; n < N; n++) rhs[ri + n] /= d;
  }
  return Float32Array.from(rhs);
}

/**
 * `‖Q(X)·Ŵ − X·W‖²` summed over the rows: with `Δ = Ŵ − W` and `Q(x)Ŵ − xW = xΔ + eŴ`,
 * `tr(ΔᵀHΔ) + 2·tr(Δᵀ·rows·B̄ᵀ·Ŵ) + rows·tr(ŴᵀĒŴ)`.
 */
export function asymmetricError(deq: Float32Array, w: Float32Array, h: Float64Array, rows: number, m: ActivationMoments, K: number, N: number, matmul: MatMul64 = matmul64): number {
  const plain = quadraticError(deq, w, h, K, N, matmul);
  const bt = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) bt[i * K + j] = m.cross[j * K + i]!;
  const btw = matmul(bt, Float64Array.from(deq), K, K, N);
  let mixed = 0;
  for (let i = 0; i < K * N; i++) mixed += (deq[i]! - w[i]!) * btw[i]!;
  const noise = quadraticError(deq, new Float32Array(K * N), m.square, K, N, matmul);
  return plain + rows * (2 * mixed + noise);
}
