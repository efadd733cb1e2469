/**
 * GPTQ (Frantar et al. 2022) as METHOD.md "Reconstruction" states it, for a row-major
 * `[K, N]` weight `W` (K input channels) and the Gram matrix `H = Σ f_i x_iᵀ x_i` (K×K) of the
 * layer's input rows: the rows of W are quantized one at a time, and each row's rounding
 * error is spread over the rows not yet quantized through the upper Cholesky factor of
 * `H⁻¹`, which minimises the growth of `tr((Ŵ − W)ᵀ H (Ŵ − W))`.
 *
 * The quantizers are fixed before the loop: row k uses parameter row `group[k]` of
 * `scales`/`zeroPoints` (`[G, N]`), which covers per output channel (one group), the two
 * branches of a dual-scale layer (two groups) and blocks of input channels (a group per
 * block and branch) alike.
 *
 * - Dead rows (`H[k,k] = 0`: the input channel was always zero) get `W[k,:] = 0`, `H[k,k] = 1`.
 * - Damping: `H += damp·mean(diag H)·I`; where H is still not positive definite (singular H,
 *   float32 roundoff) the damping is raised ({@link RETRY_DAMP_FLOOR}) and the result says which.
 * - Act-order: rows in descending `diag(H)` (ties by index), so the channels that matter most
 *   are quantized while the most rows remain to absorb their error.
 *
 * {@link gptqReference} is the definition, as the GPTQ paper writes it: `U` the upper Cholesky
 * factor of `H⁻¹` (H damped and permuted), and after quantizing row i with error
 * `e_i = (W̃_i − Q_i)/U_ii`, every later row gets `W̃_j −= U_ij·e_i`.
 *
 * {@link gptq} computes the same rows without `U` (without inverting anything). Unrolling the
 * updates gives `W − Q = Uᵀ·E`, so `E = U⁻ᵀ·(W − Q)`; with `R = U⁻¹`, which is upper triangular
 * with `H = R·Rᵀ` (the Cholesky factor of H taken from the last row up), the row quantized at
 * step i is
 *
 *     W̃_i = W_i + (1/R_ii)·Σ_{j<i} R_ji·(W_j − Q_j)
 *
 * — each row is the original row plus a correction from the rounding errors `W_j − Q_j` of the
 * rows before it (Babai's nearest-plane algorithm, which GPTQ is). The cost is one blocked
 * Cholesky factorisation of H (K³/6 multiply-adds) and, in lazy batches of `blockSize` rows,
 * one product `R[0:b0, batch]ᵀ·(W − Q)[0:b0, :]` per batch for the rows before it (K²·N/2 in
 * all) while the rows within the batch are corrected one by one. Both bulks go through
 * {@link GptqOptions.matmul}. Memory: one K×K working copy of H (factored in place) besides the
 * caller's, and the K×N float64 errors.
 */
import { choleskyLowerInPlace, inverseCholeskyUpper } from './cholesky.ts';
import { type MatMul64, matmul64 } from './matmul.ts';
import { quantRange, type QuantType, roundHalfToEven } from './quantize.ts';

/** Fixed quantizers of the rows of a `[K, N]` weight. */
export interface RowQuantizers {
  /** Parameter row of each weight row: row k uses `scales[group[k]·N + n]`. */
  group: Int32Array;
  /** `[G, N]` scales. */
  scales: Float32Array;
  /** `[G, N]` zero points. */
  zeroPoints: Int32Array;
  type: QuantType;
}

/** Options of {@link gptq}. */
export interface GptqOptions {
  /** Damping as a fraction of the mean diagonal of H (default 0.01). */
  damp?: number;
  /** Quantize rows in descending diag(H) (default true). */
  actOrder?: boolean;
  /** Rows per lazy batch (default 128). */
  blockSize?: number;
  /**
   * The matrix product of the Cholesky factorisation and the batch updates (default
   * {@link matmul64}, plain JavaScript; the calibration side passes onnxruntime's).
   */
  matmul?: MatMul64;
}

/** GPTQ's output. */
export interface GptqResult {
  /** Quantized integers `[K, N]`, in the original row order. */
  q: Int32Array;
  /** `(q − z)·s` in float32, as DequantizeLinear computes it. */
  deq: Float32Array;
  /** Rows found dead (`H[k,k] = 0`). */
  dead: number;
  /**
   * GPTQ: the damping fraction used — the requested one, or a larger one where H was not
   * positive definite with it ({@link dampedFactor}). Absent for round to nearest.
   */
  damp?: number;
}

/** Default damping fraction. */
export const DEFAULT_GPTQ_DAMP = 0.01;

/**
 * H prepared for {@link gptqOnFactor}: the act-order, the dead rows, and H damped, permuted in
 * reversed order and factored in place (the K³/6 part of GPTQ). It depends on H and the options
 * only, not on the weight or its quantizers, so one factor serves every form of a layer that
 * shares H and the damping (`dual-scale auto`'s split and single forms).
 */
export interface GptqFactor {
  K: number;
  /** Row quantized at step i. */
  order: Int32Array;
  /** Per step: the row is dead (`H[k,k] = 0`). */
  isDead: Uint8Array;
  dead: number;
  /** The lower Cholesky factor of the damped H permuted in reversed order: R[j][i] = hp[(K−1−j)·K + (K−1−i)]. */
  hp: Float64Array;
  /** The damping used (the requested one or a larger one, {@link withDampingRetry}). */
  damp: number;
}

/** GPTQ with lazy batched updates, through the Cholesky factor of H (see the module doc). `h` is not modified. */
export function gptq(w: Float32Array, h: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: GptqOptions = {}): GptqResult {
  checkShapes(w, K, N, quantizers);
  return gptqOnFactor(w, N, quantizers, gptqFactor(h, K, options), options);
}

/** {@link GptqFactor} of `h` (not modified) with the options' damping and act-order, the damping raised where H does not factor. */
export function gptqFactor(h: Float64Array, K: number, options: GptqOptions = {}): GptqFactor {
  const matmul = options.matmul ?? matmul64;
  return dampedFactor(options, (d) => {
    const p = prepare(h, K, { ...options, damp: d }, true);
    choleskyLowerInPlace(p.hp, K, { matmul });
    return { ...p, K };
  });
}

/** GPTQ's error feedback (K²·N/2) on a factor made by {@link gptqFactor}; `w` is `[K, N]`. */
export function gptqOnFactor(w: Float32Array, N: number, quantizers: RowQuantizers, factor: GptqFactor, options: GptqOptions = {}): GptqResult {
  const { K, order, isDead, dead, hp, damp } = factor;
  checkShapes(w, K, N, quantizers);
  const matmul = options.matmul ?? matmul64;
  const step = Math.max(1, options.blockSize ?? 128);
  const rAt = (j: number, i: number) => (K - 1 - j) * K + (K - 1 - i);
  const qp = new Int32Array(K * N);
  const deqp = new Float32Array(K * N);
  // W − Q of the rows quantized so far, in the permuted order.
  const delta = new Float64Array(K * N);
  const row = new Float64Array(N);
  for (let b0 = 0; b0 < K; b0 += step) {
    const b1 = Math.min(K, b0 + step);
    const m = b1 - b0;
    // acc[t,:] = Σ_{j<b0} R[j, b0+t]·delta[j,:], one product for the batch.
    let acc: Float64Array;
    if (b0 > 0) {
      const rt = new Float64Array(m * b0);
      for (let j = 0; j < b0; j++) {
        const at = rAt(j, b0);
        for (let t = 0; t < m; t++) rt[t * b0 + j] = hp[at - t]!;
      }
      acc = matmul(rt, delta.subarray(0, b0 * N), m, b0, N);
    } else acc = new Float64Array(m * N);
    for (let t = 0; t < m; t++) {
      const i = b0 + t;
      const src = order[i]!;
      const wi = src * N;
      const d = hp[rAt(i, i)]!;
      for (let n = 0; n < N; n++) row[n] = (isDead[i] ? 0 : w[wi + n]!) + acc[t * N + n]! / d;
      quantizeRow(row, 0, quantizers, src, N, qp, deqp, i * N);
      const ri = i * N;
      for (let n = 0; n < N; n++) delta[ri + n] = (isDead[i] ? 0 : w[wi + n]!) - deqp[ri + n]!;
      // The later rows of the batch take this row's error now.
      const at = rAt(i, b0);
      for (let u = t + 1; u < m; u++) {
        const f = hp[at - u]!;
        if (f === 0) continue;
        const ru = u * N;
        for (let n = 0; n < N; n++) acc[ru + n] += f * delta[ri + n]!;
      }
    }
  }
  return { ...unpermute(qp, deqp, order, K, N, dead), damp };
}

/**
 * Damping tried when the requested fraction leaves H not positive definite: H is singular
 * with fewer calibration rows than input channels or collinear channels, and a Gram matrix
 * summed from float32 products is indefinite at about 1e-7 of its diagonal, so `damp 0` (or
 * any fraction below that) cannot be factored. Raised to the next decade from this floor up
 * to 1, as GPTQ implementations advise by hand ("increase damp").
 */
export const RETRY_DAMP_FLOOR = 1e-6;

/** The dampings tried after the requested one, in order (decades, exact as written). */
const RETRY_DAMPS = [RETRY_DAMP_FLOOR, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1];

/** The dampings GPTQ tries for a requested one, in order: it, then the larger of {@link RETRY_DAMPS}. */
export function dampingsFrom(requested: number): number[] {
  return [requested, ...RETRY_DAMPS.filter((d) => d > requested)];
}

/**
 * Runs `factor` (damping fraction → result) with the requested damping, and again with each
 * larger one of {@link dampingsFrom} while a Cholesky factorisation in it finds its matrix not
 * positive definite; returns the result and the damping it took. Other errors, and the last
 * damping's, are thrown.
 */
export function withDampingRetry<T>(requested: number, factor: (damp: number) => T): { value: T; damp: number } {
  const tries = dampingsFrom(requested);
  for (let i = 0; ; i++) {
    try {
      return { value: factor(tries[i]!), damp: tries[i]! };
    } catch (e) {
      if (!(e instanceof RangeError) || !e.message.includes('not positive definite') || i === tries.length - 1) throw e;
    }
  }
}

/** GPTQ's factorisation of H with {@link withDampingRetry}. */
function dampedFactor<T>(options: GptqOptions, factor: (damp: number) => T): T & { damp: number } {
  const { value, damp } = withDampingRetry(options.damp ?? DEFAULT_GPTQ_DAMP, factor);
  return { ...value, damp };
}

/** The unbatched definition through `U` (upper Cholesky factor of H⁻¹): every row's update is applied at once to all rows after it. */
export function gptqReference(w: Float32Array, h: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: GptqOptions = {}): GptqResult {
  checkShapes(w, K, N, quantizers);
  const { order, isDead, dead, u, damp } = dampedFactor(options, (d) => {
    const p = prepare(h, K, { ...options, damp: d }, false);
    return { ...p, u: inverseCholeskyUpper(p.hp, K) };
  });
  const wp = new Float64Array(K * N);
  for (let i = 0; i < K; i++) if (!isDead[i]) for (let n = 0; n < N; n++) wp[i * N + n] = w[order[i]! * N + n]!;
  const qp = new Int32Array(K * N);
  const deqp = new Float32Array(K * N);
  const err = new Float64Array(N);
  for (let i = 0; i < K; i++) {
    quantizeRow(wp, i * N, quantizers, order[i]!, N, qp, deqp, i * N);
    const d = u[i * K + i]!;
    for (let n = 0; n < N; n++) err[n] = (wp[i * N + n]! - deqp[i * N + n]!) / d;
    for (let j = i + 1; j < K; j++) {
      const f = u[i * K + j]!;
      if (f === 0) continue;
      const rj = j * N;
      for (let n = 0; n < N; n++) wp[rj + n] -= f * err[n]!;
    }
  }
  return { ...unpermute(qp, deqp, order, K, N, dead), damp };
}

/** Round-to-nearest with the same quantizers (the baseline GPTQ must not lose to). */
export function roundToNearest(w: Float32Array, K: number, N: number, quantizers: RowQuantizers): GptqResult {
  const q = new Int32Array(K * N);
  const deq = new Float32Array(K * N);
  const row = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) row[n] = w[k * N + n]!;
    quantizeRow(row, 0, quantizers, k, N, q, deq, k * N);
  }
  return { q, deq, dead: 0 };
}

/**
 * `tr(Δᵀ H Δ)` for `Δ = a − b` (`[K, N]`): the weighted output error of a weight change. By
 * the symmetry of H, `2·Σ_i Δ_i·(Σ_{j<i} H_ij·Δ_j + H_ii·Δ_i/2)`: K²·N/2 multiply-adds, as
 * products of strips of H's lower triangle with Δ through `matmul`.
 */
export function quadraticError(a: Float32Array, b: Float32Array, h: Float64Array, K: number, N: number, matmul: MatMul64 = matmul64): number {
  const d = new Float64Array(K * N);
  for (let i = 0; i < d.length; i++) d[i] = a[i]! - b[i]!;
  const strip = 512;
  let total = 0;
  for (let r0 = 0; r0 < K; r0 += strip) {
    const r1 = Math.min(K, r0 + strip);
    const lower = new Float64Array((r1 - r0) * r1);
    for (let r = r0; r < r1; r++) {
      const at = (r - r0) * r1;
      lower.set(h.subarray(r * K, r * K + r), at);
      lower[at + r] = h[r * K + r]! / 2;
    }
    const hd = matmul(lower, d.subarray(0, r1 * N), r1 - r0, r1, N);
    const base = r0 * N;
    for (let i = 0; i < hd.length; i++) total += d[base + i]! * hd[i]!;
  }
  return 2 * total;
}

/** The weight and quantizers fit K×N. */
function checkShapes(w: Float32Array, K: number, N: number, quantizers: RowQuantizers): void {
  if (w.length !== K * N) throw new RangeError(`gptq: weight of ${w.length} values is not ${K}×${N}`);
  if (quantizers.group.length !== K) throw new RangeError(`gptq: ${quantizers.group.length} row groups for ${K} rows`);
}

/**
 * Dead rows, the order, and H permuted (reversed: last row first) with the dead rows' fix and
 * the damping: the one K×K working copy.
 */
function prepare(h0: Float64Array, K: number, options: GptqOptions, reversed: boolean) {
  if (h0.length !== K * K) throw new RangeError(`gptq: H of ${h0.length} values is not ${K}×${K}`);
  const damp = options.damp ?? DEFAULT_GPTQ_DAMP;
  if (!(damp >= 0)) throw new RangeError(`gptq: damping must be ≥ 0, got ${damp}`);
  // Dead rows and the order, from the undamped diagonal.
  const diag = new Float64Array(K);
  let dead = 0;
  for (let k = 0; k < K; k++) {
    diag[k] = h0[k * K + k]!;
    if (diag[k] === 0) dead++;
  }
  const order = Int32Array.from({ length: K }, (_, i) => i);
  if (options.actOrder ?? true) order.sort((a, b) => diag[b]! - diag[a]! || a - b);
  const isDead = Uint8Array.from(order, (k) => (diag[k] === 0 ? 1 : 0));
  let mean = 0;
  for (let k = 0; k < K; k++) mean += diag[k] === 0 ? 1 : diag[k]!;
  mean /= K;
  const hp = new Float64Array(K * K);
  const src = reversed ? Int32Array.from(order).reverse() : order;
  for (let i = 0; i < K; i++) {
    const hr = src[i]! * K;
    const at = i * K;
    for (let j = 0; j < K; j++) hp[at + j] = h0[hr + src[j]!]!;
    if (diag[src[i]!] === 0) hp[at + i] = 1;
    hp[at + i] += damp * mean;
  }
  return { order, isDead, dead, hp };
}

/** The permuted rows' integers and values back in the original row order. */
function unpermute(qp: Int32Array, deqp: Float32Array, order: Int32Array, K: number, N: number, dead: number): GptqResult {
  const q = new Int32Array(K * N);
  const deq = new Float32Array(K * N);
  for (let i = 0; i < K; i++) {
    const dst = order[i]! * N;
    q.set(qp.subarray(i * N, (i + 1) * N), dst);
    deq.set(deqp.subarray(i * N, (i + 1) * N), dst);
  }
  return { q, deq, dead };
}

/** Quantizes one row (values at `src[at…at+N)`) with the quantizers of original row `k`. */
function quantizeRow(src: Float64Array, at: number, quantizers: RowQuantizers, k: number, N: number, q: Int32Array, deq: Float32Array, out: number): void {
  const { qmin, qmax } = quantRange(quantizers.type);
  const p = quantizers.group[k]! * N;
  for (let n = 0; n < N; n++) {
    const s = quantizers.scales[p + n]!;
    const z = quantizers.zeroPoints[p + n]!;
    // As quantizeBlocked: the quotient rounded to float32, then half to even.
    let v = roundHalfToEven(Math.fround(src[at + n]! / s)) + z;
    v = v < qmin ? qmin : v > qmax ? qmax : v;
    q[out + n] = v;
    deq[out + n] = (v - z) * s;
  }
}
