/**
 * AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization")
 * against the layer objective of METHOD.md "Reconstruction", for a row-major `[K, N]` weight `W`
 * (K input channels) and the Gram matrix `H = Σ f_i x_iᵀ x_i` (K×K) of the layer's input rows.
 *
 * Each weight is rounded down or up, the choice learnt: with `⌊W/s⌋` fixed, the weight is
 * `Ŵ = s·(clamp(⌊W/s⌋ + z + h(V), qmin, qmax) − z)` with the rectified sigmoid
 * `h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1)` (ζ = 1.1, γ = −0.1), and V minimises
 *
 *   `tr((Ŵ − W)ᵀ H (Ŵ − W)) / rows  +  λ·Σ (1 − |2h(V) − 1|^β)`
 *
 * The first term is the mean squared output error per calibration row (AIMET's reconstruction
 * loss, with the rows' frame weights); the regulariser is off for the first `warmup` of the
 * iterations, then β falls from 20 to 2 on a cosine, pushing every h to 0 or 1. At the end h is
 * rounded (`V ≥ 0` rounds up). V starts where h equals the fractional part of `W/s`, so the
 * soft weight starts at W itself (as AdaRound and AIMET start).
 *
 * No autograd: the gradient is closed form. `∂/∂Ŵ = 2·H·(Ŵ − W)/rows`, times `s` where the clamp
 * is inactive, times `h'(V) = σ(V)(1 − σ(V))(ζ − γ)` where the clip of h is inactive; the
 * regulariser adds `−2λβ·|2h − 1|^(β−1)·sign(2h − 1)·h'(V)`. Adam (β₁ 0.9, β₂ 0.999, ε 1e-8,
 * PyTorch's form) takes the steps. λ 0.01, β 20 → 2 and the 20% warm-up are AIMET's defaults;
 * the iteration count defaults to the Q-ARVD paper's 2000 (AIMET's is 10000), and the
 * learning rate to 1e-2 rather than AIMET's 1e-3 (`torch.optim.Adam`'s default): an Adam step
 * moves V by about the learning rate, V starts up to 2.4 from the point where h is decided,
 * and at 1e-3 13–36% of the weights were still undecided after 2000 steps on the GPTQ
 * tests' synthetic layers (docs/adaround.md has the comparison on tiny-arvd).
 *
 * The quantizers are fixed before (the same {@link RowQuantizers} GPTQ uses: per output
 * channel, per branch of a dual-scale split, per block of input channels). The product
 * `H·(Ŵ − W)` (K²·N multiply-adds per iteration) is the whole cost; it goes through an
 * injectable {@link MatrixProduct} so that a faster one (float32 SIMD, onnxruntime) can replace
 * the plain float64 loop. The objective is a sum over output channels, each column's terms
 * depending only on that column, so the columns are optimised in independent batches of
 * `columns` (memory `O(K·columns)`), with the same result for any batch size.
 */
import type { GptqResult, RowQuantizers } from './gptq.ts';
import { quantRange } from './quantize.ts';

/**
 * `A·B` for row-major `A` `[m, k]` and `B` `[k, n]`, a new row-major `[m, n]`. The kernel
 * calls it with `A = H` (the same array every call) and `B` the current `Ŵ − W` of a column
 * batch; an implementation may compute in float32.
 */
export type MatrixProduct = (a: Float64Array, b: Float64Array, m: number, k: number, n: number) => Float64Array;

/** Options of {@link adaround}. */
export interface AdaroundOptions {
  /** Adam steps per layer (default 2000, the paper's). */
  iterations?: number;
  /** λ, the regulariser's weight (default 0.01, AIMET's). */
  regularization?: number;
  /** β at the start and at the end of the annealing (default 20 and 2). */
  betaStart?: number;
  betaEnd?: number;
  /** Fraction of the iterations with the regulariser off (default 0.2). */
  warmup?: number;
  /** Adam's learning rate (default {@link DEFAULT_ADAROUND_LEARNING_RATE}). */
  learningRate?: number;
  /** The (weighted) number of calibration rows H sums over: the reconstruction term is per row (default 1). */
  rows?: number;
  /** Output channels optimised together (default 256; the result does not depend on it). */
  columns?: number;
  /** The product `H·Δ` (default {@link matmulF64}). */
  product?: MatrixProduct;
}

/** What {@link adaround} returns: GPTQ's result shape, with the optimisation's trace. */
export interface AdaroundResult extends GptqResult {
  /** Weights whose rounding differs from round-to-nearest's. */
  flipped: number;
  /** Soft values h still strictly between 0.01 and 0.99 before the final rounding. */
  undecided: number;
}

/** ζ and γ of the rectified sigmoid (the paper's stretch of σ to (−0.1, 1.1)). */
export const ADAROUND_ZETA = 1.1;
export const ADAROUND_GAMMA = -0.1;
/** The paper's iteration count per layer. */
export const DEFAULT_ADAROUND_ITERATIONS = 2000;
/** Adam's learning rate: 10× AIMET's, for 5× fewer steps (see the module doc). */
export const DEFAULT_ADAROUND_LEARNING_RATE = 1e-2;

/** |V| from which h(V) is clipped to 0 or 1: σ(V) = 11/12 at V = ln 11. */
const CLIP_V = Math.log(11);
const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPS = 1e-8;

/** Plain float64 `A·B` (the default {@link MatrixProduct}); zero entries of A are skipped. */
export function matmulF64(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  if (a.length !== m * k || b.length !== k * n) throw new RangeError(`matmulF64: operands of ${a.length} and ${b.length} values are not ${m}×${k} and ${k}×${n}`);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let p = 0; p < k; p++) {
      const f = a[i * k + p]!;
      if (f === 0) continue;
      const r = p * n;
      for (let j = 0; j < n; j++) out[o + j] += f * b[r + j]!;
    }
  }
  return out;
}

/** The rectified sigmoid h(V). */
export function rectifiedSigmoid(v: number): number {
  // σ(V) ≥ 11/12 or ≤ 1/12 is clipped: decided without an exponential (most weights, once the regulariser has acted).
  if (v >= CLIP_V) return 1;
  if (v <= -CLIP_V) return 0;
  const h = (ADAROUND_ZETA - ADAROUND_GAMMA) / (1 + Math.exp(-v)) + ADAROUND_GAMMA;
  return h < 0 ? 0 : h > 1 ? 1 : h;
}

/** β at iteration `t` of `T` after a warm-up of `warmupEnd` iterations (cosine from start to end). */
export function annealedBeta(t: number, T: number, warmupEnd: number, start: number, end: number): number {
  const rel = (t - warmupEnd) / (T - warmupEnd);
  return end + 0.5 * (start - end) * (1 + Math.cos(rel * Math.PI));
}

/** AdaRound of a `[K, N]` weight (see the module doc). `w` and `h` are not modified. */
export function adaround(w: Float32Array, h: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: AdaroundOptions = {}): AdaroundResult {
  if (w.length !== K * N) throw new RangeError(`adaround: weight of ${w.length} values is not ${K}×${N}`);
  if (h.length !== K * K) throw new RangeError(`adaround: H of ${h.length} values is not ${K}×${K}`);
  if (quantizers.group.length !== K) throw new RangeError(`adaround: ${quantizers.group.length} row groups for ${K} rows`);
  const iterations = options.iterations ?? DEFAULT_ADAROUND_ITERATIONS;
  if (!(Number.isInteger(iterations) && iterations >= 0)) throw new RangeError(`adaround: iterations must be a whole number ≥ 0, got ${iterations}`);
  const rows = options.rows ?? 1;
  if (!(rows > 0)) throw new RangeError(`adaround: rows must be > 0, got ${rows}`);
  const columns = Math.max(1, Math.min(N, options.columns ?? 256));
  let dead = 0;
  for (let k = 0; k < K; k++) if (h[k * K + k] === 0) dead++;
  const q = new Int32Array(K * N);
  const deq = new Float32Array(K * N);
  let flipped = 0;
  let undecided = 0;
  for (let n0 = 0; n0 < N; n0 += columns) {
    const n1 = Math.min(N, n0 + columns);
    const problem = roundingProblem(w, h, K, N, n0, n1, quantizers, rows, options.product ?? matmulF64);
    const v = optimise(problem, options, iterations);
    const C = n1 - n0;
    for (let k = 0; k < K; k++) {
      for (let c = 0; c < C; c++) {
        const i = k * C + c;
        const soft = rectifiedSigmoid(v[i]!);
        if (soft > 0.01 && soft < 0.99) undecided++;
        const u = clamp(problem.base[i]! + (v[i]! >= 0 ? 1 : 0), problem.qmin, problem.qmax);
        // Round-to-nearest of the same quotient (ties aside): up when the fraction is ≥ ½.
        const x = problem.quotient[i]!;
        if (clamp(problem.base[i]! + (x - Math.floor(x) >= 0.5 ? 1 : 0), problem.qmin, problem.qmax) !== u) flipped++;
        const o = k * N + n0 + c;
        q[o] = u;
        deq[o] = (u - problem.zero[i]!) * problem.scale[i]!;
      }
    }
  }
  return { q, deq, dead, flipped, undecided };
}

/**
 * The fixed data of one batch of output columns `n0 … n1`, per entry of the `[K, C]` block
 * (row-major): `⌊W/s⌋ + z`, z, s, W and the quotient `W/s` (rounded to float32, as
 * round-to-nearest computes it).
 */
export interface RoundingProblem {
  K: number;
  C: number;
  base: Float64Array;
  zero: Float64Array;
  scale: Float64Array;
  target: Float64Array;
  quotient: Float64Array;
  qmin: number;
  qmax: number;
  h: Float64Array;
  rows: number;
  product: MatrixProduct;
  /** Scratch of {@link lossAndGradient}: h(V) and Δ = Ŵ − W. */
  soft: Float64Array;
  delta: Float64Array;
}

/** The {@link RoundingProblem} of columns `n0 … n1` of a `[K, N]` weight. */
export function roundingProblem(w: Float32Array, h: Float64Array, K: number, N: number, n0: number, n1: number, quantizers: RowQuantizers, rows: number, product: MatrixProduct): RoundingProblem {
  const { qmin, qmax } = quantRange(quantizers.type);
  const C = n1 - n0;
  const p: RoundingProblem = {
    K,
    C,
    base: new Float64Array(K * C),
    zero: new Float64Array(K * C),
    scale: new Float64Array(K * C),
    target: new Float64Array(K * C),
    quotient: new Float64Array(K * C),
    qmin,
    qmax,
    h,
    rows,
    product,
    soft: new Float64Array(K * C),
    delta: new Float64Array(K * C),
  };
  for (let k = 0; k < K; k++) {
    const g = quantizers.group[k]! * N;
    for (let c = 0; c < C; c++) {
      const i = k * C + c;
      const s = quantizers.scales[g + n0 + c]!;
      const x = Math.fround(w[k * N + n0 + c]! / s);
      p.zero[i] = quantizers.zeroPoints[g + n0 + c]!;
      p.base[i] = Math.floor(x) + p.zero[i]!;
      p.scale[i] = s;
      p.target[i] = w[k * N + n0 + c]!;
      p.quotient[i] = x;
    }
  }
  return p;
}

/** V where h(V) is the fractional part of `W/s` (in [0, 1), so σ(V) ∈ [1/12, 11/12): h is not clipped). */
export function initialV(p: RoundingProblem): Float64Array {
  const span = ADAROUND_ZETA - ADAROUND_GAMMA;
  return p.quotient.map((x) => -Math.log(span / (x - Math.floor(x) - ADAROUND_GAMMA) - 1));
}

/**
 * The loss at V (`tr(ΔᵀHΔ)/rows + λ·Σ(1 − |2h − 1|^β)`, the regulariser only when `beta` is
 * given) and its gradient with respect to V into `grad`. Where h is clipped to 0 or 1, or the
 * integer clamped to the range, that path's gradient is 0 (as autograd through clamp gives it).
 */
export function lossAndGradient(p: RoundingProblem, v: Float64Array, lambda: number, beta: number | undefined, grad: Float64Array): { reconstruction: number; regularizer: number } {
  const { base, zero, scale, target, soft, delta, qmin, qmax, rows } = p;
  const L = p.K * p.C;
  const span = ADAROUND_ZETA - ADAROUND_GAMMA;
  for (let i = 0; i < L; i++) {
    const hv = rectifiedSigmoid(v[i]!);
    soft[i] = hv;
    delta[i] = (clamp(base[i]! + hv, qmin, qmax) - zero[i]!) * scale[i]! - target[i]!;
  }
  const hd = p.product(p.h, delta, p.K, p.K, p.C);
  const on = beta !== undefined;
  const b = beta ?? 0;
  let reconstruction = 0;
  let regularizer = 0;
  for (let i = 0; i < L; i++) {
    reconstruction += delta[i]! * hd[i]!;
    const hv = soft[i]!;
    // Clipped h: no gradient, and the regulariser's term 1 − 1^β is 0.
    if (hv <= 0 || hv >= 1) {
      grad[i] = 0;
      continue;
    }
    const y = 2 * hv - 1;
    const a = y < 0 ? -y : y;
    // |2h − 1|^(β − 1), once: the regulariser's value and its derivative both use it.
    const power = on && a > 0 ? Math.pow(a, b - 1) : 0;
    if (on) regularizer += 1 - power * a;
    let g = 0;
    const u = base[i]! + hv;
    if (u >= qmin && u <= qmax) g = ((2 * hd[i]!) / rows) * scale[i]!;
    if (on) g -= y < 0 ? -2 * lambda * b * power : 2 * lambda * b * power;
    // h'(V) = (ζ − γ)·σ(1 − σ), with σ recovered from h.
    const sg = (hv - ADAROUND_GAMMA) / span;
    grad[i] = g * span * sg * (1 - sg);
  }
  return { reconstruction: reconstruction / rows, regularizer: lambda * regularizer };
}

/** Adam on V from {@link initialV} with the warm-up and the β schedule; returns the final V. */
function optimise(p: RoundingProblem, options: AdaroundOptions, iterations: number): Float64Array {
  const lambda = options.regularization ?? 0.01;
  const betaStart = options.betaStart ?? 20;
  const betaEnd = options.betaEnd ?? 2;
  const warmupEnd = (options.warmup ?? 0.2) * iterations;
  const lr = options.learningRate ?? DEFAULT_ADAROUND_LEARNING_RATE;
  const v = initialV(p);
  const L = v.length;
  const grad = new Float64Array(L);
  const m1 = new Float64Array(L);
  const m2 = new Float64Array(L);
  for (let t = 0; t < iterations; t++) {
    const beta = t >= warmupEnd ? annealedBeta(t, iterations, warmupEnd, betaStart, betaEnd) : undefined;
    lossAndGradient(p, v, lambda, beta, grad);
    // PyTorch's Adam: every parameter steps, a zero gradient included (its moments decay).
    const stepSize = lr / (1 - Math.pow(ADAM_BETA1, t + 1));
    const sqrtBc2 = Math.sqrt(1 - Math.pow(ADAM_BETA2, t + 1));
    for (let i = 0; i < L; i++) {
      const g = grad[i]!;
      m1[i] = ADAM_BETA1 * m1[i]! + (1 - ADAM_BETA1) * g;
      m2[i] = ADAM_BETA2 * m2[i]! + (1 - ADAM_BETA2) * g * g;
      v[i] -= (stepSize * m1[i]!) / (Math.sqrt(m2[i]!) / sqrtBc2 + ADAM_EPS);
    }
  }
  return v;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}
