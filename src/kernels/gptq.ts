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
 * - Damping: `H += damp·mean(diag H)·I`.
 * - Act-order: rows in descending `diag(H)` (ties by index), so the channels that matter most
 *   are quantized while the most rows remain to absorb their error.
 * - Lazy batches: within a batch of `blockSize` rows the updates are applied row by row; the
 *   rows after the batch get the batch's accumulated update once, as one matrix product.
 *
 * {@link gptqReference} is the same algorithm with the update applied row by row to every
 * remaining row: the plain definition the batched version is tested against.
 */
import { inverseCholeskyUpper } from './cholesky.ts';
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
}

/** GPTQ's output. */
export interface GptqResult {
  /** Quantized integers `[K, N]`, in the original row order. */
  q: Int32Array;
  /** `(q − z)·s` in float32, as DequantizeLinear computes it. */
  deq: Float32Array;
  /** Rows found dead (`H[k,k] = 0`). */
  dead: number;
}

/** Default damping fraction. */
export const DEFAULT_GPTQ_DAMP = 0.01;

/** GPTQ with lazy batched updates (see the module doc). `h` is not modified. */
export function gptq(w: Float32Array, h: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: GptqOptions = {}): GptqResult {
  return run(w, h, K, N, quantizers, options, options.blockSize ?? 128);
}

/** The unbatched definition: every row's update is applied at once to all rows after it. */
export function gptqReference(w: Float32Array, h: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: GptqOptions = {}): GptqResult {
  return run(w, h, K, N, quantizers, options, 0);
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

/** `tr(Δᵀ H Δ)` for `Δ = a − b` (`[K, N]`): the weighted output error of a weight change. */
export function quadraticError(a: Float32Array, b: Float32Array, h: Float64Array, K: number, N: number): number {
  const d = new Float64Array(K * N);
  for (let i = 0; i < d.length; i++) d[i] = a[i]! - b[i]!;
  const hd = new Float64Array(N);
  let total = 0;
  for (let r = 0; r < K; r++) {
    hd.fill(0);
    const hr = r * K;
    for (let c = 0; c < K; c++) {
      const f = h[hr + c]!;
      if (f === 0) continue;
      const dc = c * N;
      for (let n = 0; n < N; n++) hd[n] += f * d[dc + n]!;
    }
    const dr = r * N;
    for (let n = 0; n < N; n++) total += d[dr + n]! * hd[n]!;
  }
  return total;
}

function run(w: Float32Array, h0: Float64Array, K: number, N: number, quantizers: RowQuantizers, options: GptqOptions, blockSize: number): GptqResult {
  if (w.length !== K * N) throw new RangeError(`gptq: weight of ${w.length} values is not ${K}×${N}`);
  if (h0.length !== K * K) throw new RangeError(`gptq: H of ${h0.length} values is not ${K}×${K}`);
  if (quantizers.group.length !== K) throw new RangeError(`gptq: ${quantizers.group.length} row groups for ${K} rows`);
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
  // Permuted copies: W (float64) and H, with the dead rows' fix and the damping.
  const wp = new Float64Array(K * N);
  const hp = new Float64Array(K * K);
  let mean = 0;
  for (let k = 0; k < K; k++) mean += diag[k] === 0 ? 1 : diag[k]!;
  mean /= K;
  for (let i = 0; i < K; i++) {
    const src = order[i]!;
    if (diag[src] !== 0) for (let n = 0; n < N; n++) wp[i * N + n] = w[src * N + n]!;
    for (let j = 0; j < K; j++) hp[i * K + j] = h0[src * K + order[j]!]!;
    if (diag[src] === 0) hp[i * K + i] = 1;
    hp[i * K + i] += damp * mean;
  }
  const u = inverseCholeskyUpper(hp, K);
  const qp = new Int32Array(K * N);
  const deqp = new Float32Array(K * N);
  const err = new Float64Array(N);
  const step = blockSize > 0 ? blockSize : K;
  // Errors of the current batch, `[rows in batch, N]`, for the trailing update.
  const batchErr = blockSize > 0 ? new Float64Array(step * N) : new Float64Array(0);
  for (let b0 = 0; b0 < K; b0 += step) {
    const b1 = Math.min(K, b0 + step);
    // Within the batch (or everywhere, for the reference): row by row.
    const last = blockSize > 0 ? b1 : K;
    for (let i = b0; i < b1; i++) {
      quantizeRow(wp, i * N, quantizers, order[i]!, N, qp, deqp, i * N);
      const d = u[i * K + i]!;
      for (let n = 0; n < N; n++) err[n] = (wp[i * N + n]! - deqp[i * N + n]!) / d;
      if (blockSize > 0) batchErr.set(err, (i - b0) * N);
      for (let j = i + 1; j < last; j++) {
        const f = u[i * K + j]!;
        if (f === 0) continue;
        const rj = j * N;
        for (let n = 0; n < N; n++) wp[rj + n] -= f * err[n]!;
      }
    }
    if (blockSize === 0 || b1 >= K) continue;
    // Trailing rows: W[j,:] −= Σ_{i in batch} U[i,j]·err_i, one product for the batch.
    for (let j = b1; j < K; j++) {
      const rj = j * N;
      for (let i = b0; i < b1; i++) {
        const f = u[i * K + j]!;
        if (f === 0) continue;
        const ri = (i - b0) * N;
        for (let n = 0; n < N; n++) wp[rj + n] -= f * batchErr[ri + n]!;
      }
    }
  }
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
