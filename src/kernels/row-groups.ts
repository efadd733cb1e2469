/**
 * Min/max quantization of a `[K, N]` weight whose rows (input channels) are split into groups
 * — S2's outlier and normal channels — reading the weight in place, one row at a time, instead
 * of copying each group's rows out first. The arithmetic is exactly that of
 * `computeParamsBlocked`, `quantizeBlocked` and `dequantizeBlocked` applied to each group's
 * rows (see `./quantize.ts`); only the memory traffic differs: a 1536 × 8960 weight is
 * 55 MB of float32, and each copy or extra pass over it costs as much as reading it.
 */
import { computeScaleZeroPoint, newQuantArray, type QuantArray, type QuantParams, quantRange, type QuantType, ROUND_MAGIC } from './quantize.ts';

/**
 * How the K rows of a weight fall into groups: row k is row `position[k]` of group
 * `group[k]`. Without `group` there is one group holding every row in order.
 */
export interface RowGroups {
  /** Rows of each group. */
  sizes: number[];
  group?: Int32Array;
  position?: Int32Array;
}

/** One group of every row, in order. */
export function allRows(K: number): RowGroups {
  return { sizes: [K] };
}

/**
 * Groups from their row indices: `parts[g]` lists group g's rows in ascending order (they
 * become rows 0, 1, … of the group); together the parts hold every row of `[0, K)` once.
 */
export function rowGroups(K: number, parts: readonly Int32Array[]): RowGroups {
  const group = new Int32Array(K).fill(-1);
  const position = new Int32Array(K);
  parts.forEach((rows, g) => rows.forEach((k, i) => {
    if (!(k >= 0 && k < K) || group[k] !== -1) throw new RangeError(`rowGroups: row ${k} is outside [0, ${K}) or in two groups`);
    group[k] = g;
    position[k] = i;
  }));
  if (group.includes(-1)) throw new RangeError(`rowGroups: row ${group.indexOf(-1)} is in no group`);
  return { sizes: parts.map((p) => p.length), group, position };
}

/** Rows per quantization block of a group: `blockSize`, or the whole group (per output channel). */
function blockRows(size: number, blockSize: number | undefined): number {
  return blockSize ?? Math.max(size, 1);
}

/**
 * Min/max scales and zero points of each group, per output channel or per block of
 * `blockSize` rows of the group (`[ceil(rows / B), N]`), as `computeParamsBlocked` gives for
 * the group's rows.
 * @param norms when given, also receives `channelNorms` of the weight (row k's L2 norm,
 *   summed in float64 in the same order): one pass over the weight serves both
 */
export function groupParams(w: Float32Array, K: number, N: number, groups: RowGroups, blockSize: number | undefined, type: QuantType, symmetric: boolean, norms?: Float64Array): QuantParams[] {
  if (w.length !== K * N) throw new RangeError(`groupParams: length ${w.length} is not K·N = ${K}·${N}`);
  const B = groups.sizes.map((s) => blockRows(s, blockSize));
  const lo = groups.sizes.map((s, g) => new Float64Array(Math.ceil(s / B[g]!) * N).fill(Infinity));
  const hi = groups.sizes.map((s, g) => new Float64Array(Math.ceil(s / B[g]!) * N).fill(-Infinity));
  const { group, position } = groups;
  for (let k = 0; k < K; k++) {
    const g = group ? group[k]! : 0;
    const i = position ? position[k]! : k;
    const l = lo[g]!;
    const h = hi[g]!;
    const p = Math.floor(i / B[g]!) * N;
    const row = k * N;
    let acc = 0;
    for (let n = 0; n < N; n++) {
      const v = w[row + n]!;
      if (v < l[p + n]!) l[p + n] = v;
      if (v > h[p + n]!) h[p + n] = v;
      acc += v * v;
    }
    if (norms) norms[k] = Math.sqrt(acc);
  }
  return lo.map((l, g) => {
    const scales = new Float32Array(l.length);
    const zeroPoints = new Int32Array(l.length);
    for (let j = 0; j < l.length; j++) {
      const { scale, zeroPoint } = computeScaleZeroPoint(l[j]!, hi[g]![j]!, type, symmetric);
      scales[j] = scale;
      zeroPoints[j] = zeroPoint;
    }
    return { scales, zeroPoints };
  });
}

/** What {@link quantizeGroups} computed. */
export interface GroupQuantization<T extends QuantType = QuantType> {
  /** Each group's quantized rows `[rows, N]`, when asked to keep them. */
  wq?: QuantArray<T>[];
  /** Σ (x̂ − x)² over the whole weight, summed in float64 in row-major order of the weight. */
  squaredError: number;
  /** Σ x² over the whole weight, summed in float64 in row-major order. */
  squaredNorm: number;
}

/**
 * QuantizeLinear of each group's rows with its parameters (from {@link groupParams}), and
 * the error of DequantizeLinear of the result against the weight. The sums run over the
 * weight's elements in row-major order, so `sqrt(squaredError / squaredNorm)` is bit for bit
 * the relative error a loop over a dequantized `[K, N]` copy would give.
 * @param keep also return the quantized rows (else only the error is computed)
 */
export function quantizeGroups<T extends QuantType>(w: Float32Array, K: number, N: number, groups: RowGroups, params: readonly QuantParams[], blockSize: number | undefined, type: T, keep: boolean): GroupQuantization<T> {
  if (w.length !== K * N) throw new RangeError(`quantizeGroups: length ${w.length} is not K·N = ${K}·${N}`);
  const { qmin, qmax } = quantRange(type);
  const B = groups.sizes.map((s) => blockRows(s, blockSize));
  const wq = keep ? groups.sizes.map((s) => newQuantArray(type, s * N)) : undefined;
  const { group, position } = groups;
  const sums = new Float64Array(2);
  const scratch = newQuantArray(type, N);
  for (let k = 0; k < K; k++) {
    const g = group ? group[k]! : 0;
    const i = position ? position[k]! : k;
    const { scales, zeroPoints } = params[g]!;
    const p = Math.floor(i / B[g]!) * N;
    // Without `keep` each row goes to one scratch row: the same loop, nothing kept.
    if (wq) quantizeRow(w, k * N, N, scales, zeroPoints, p, qmin, qmax, sums, wq[g]!, i * N);
    else quantizeRow(w, k * N, N, scales, zeroPoints, p, qmin, qmax, sums, scratch, 0);
  }
  const [err, norm] = sums as unknown as [number, number];
  return { ...(wq ? { wq } : {}), squaredError: err, squaredNorm: norm };
}

/**
 * One row: QuantizeLinear (the float32 quotient, rounded half to even as roundHalfToEven
 * does, clamped) into `out` at `dst`, and DequantizeLinear's error added to `sums` ([Σ d², Σ x²]).
 */
function quantizeRow(w: Float32Array, src: number, N: number, scales: Float32Array, zeroPoints: Int32Array, p: number, qmin: number, qmax: number, sums: Float64Array, out: Int8Array | Uint8Array, dst: number): void {
  let err = sums[0]!;
  let norm = sums[1]!;
  for (let n = 0; n < N; n++) {
    const x = w[src + n]!;
    const s = scales[p + n]!;
    const z = zeroPoints[p + n]!;
    let q = Math.fround(x / s) + ROUND_MAGIC - ROUND_MAGIC + z;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    out[dst + n] = q;
    // DequantizeLinear stores (q − z)·s in float32: one rounding of the product.
    const d = Math.fround((q - z) * s) - x;
    err += d * d;
    norm += x * x;
  }
  sums[0] = err;
  sums[1] = norm;
}

/** `sqrt(squaredError / squaredNorm)`, 0 for an all-zero weight. */
export function relativeErrorOf(q: GroupQuantization): number {
  return q.squaredNorm === 0 ? 0 : Math.sqrt(q.squaredError / q.squaredNorm);
}
