/**
 * Min/max quantization of a `[K, N]` weight whose rows (input channels) are split into groups
 * — S2's outlier and normal channels — reading the weight in place, one row at a time, instead
 * of copying each group's rows out first. The arithmetic is exactly that of
 * `computeParamsBlocked`, `quantizeBlocked` and `dequantizeBlocked` applied to each group's
 * rows (see `./quantize.ts`); only the memory traffic differs: a 1536 × 8960 weight is
 * 55 MB of float32, and each copy or extra pass over it costs as much as reading it.
 */
import { computeScaleZeroPoint, newQuantArray, type QuantArray, type QuantParams, quantRange, type QuantType, ROUND_MAGIC } from './quantize.ts';
import { kernelMemory, type QuantKernels, quantKernels } from './quant-simd.ts';

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
  const k = quantKernels();
  const { lo, hi } = k && N >= 4 ? minMaxSimd(k, w, K, N, groups, B, norms) : minMaxJs(w, K, N, groups, B, norms);
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

/** Per-group, per-block column min/max (and the row norms): the JavaScript reference of {@link minMaxSimd}. */
function minMaxJs(w: Float32Array, K: number, N: number, groups: RowGroups, B: number[], norms: Float64Array | undefined): { lo: Float64Array[]; hi: Float64Array[] } {
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
  return { lo, hi };
}

/**
 * {@link minMaxJs} with the `rowMinMax` kernel (quant-simd.ts), the same values: min/max of
 * float32 values are float32 values, and each row's Σ x² is added in the same order. The
 * weight goes through the kernels' memory in blocks of rows of about 1 MiB.
 */
function minMaxSimd(k: QuantKernels, w: Float32Array, K: number, N: number, groups: RowGroups, B: number[], norms: Float64Array | undefined): { lo: Float32Array[]; hi: Float32Array[] } {
  const { group, position } = groups;
  const lengths = groups.sizes.map((s, g) => Math.ceil(s / B[g]!) * N);
  const starts = offsets(lengths.flatMap((n) => [n, n]));
  const params = starts.at(-1)!;
  const rows = blockOfRows(N);
  const f = new Float32Array(kernelMemory(k, (params + rows * N) * 4));
  f.fill(Infinity, 0, params);
  lengths.forEach((n, g) => f.fill(-Infinity, starts[2 * g + 1]!, starts[2 * g + 1]! + n));
  const N4 = N & ~3;
  for (let k0 = 0; k0 < K; k0 += rows) {
    const k1 = Math.min(K, k0 + rows);
    f.set(w.subarray(k0 * N, k1 * N), params);
    for (let r = k0; r < k1; r++) {
      const g = group ? group[r]! : 0;
      const i = position ? position[r]! : r;
      const p = Math.floor(i / B[g]!) * N;
      const l = starts[2 * g]! + p;
      const h = starts[2 * g + 1]! + p;
      let acc = (norms ? k.rowMinMax : k.rowMinMaxOnly)((params + (r - k0) * N) * 4, N4, l * 4, h * 4);
      for (let n = N4; n < N; n++) {
        const v = w[r * N + n]!;
        if (v < f[l + n]!) f[l + n] = v;
        if (v > f[h + n]!) f[h + n] = v;
        acc += v * v;
      }
      if (norms) norms[r] = Math.sqrt(acc);
    }
  }
  return { lo: lengths.map((n, g) => f.slice(starts[2 * g]!, starts[2 * g]! + n)), hi: lengths.map((n, g) => f.slice(starts[2 * g + 1]!, starts[2 * g + 1]! + n)) };
}

/** Start of each of `lengths` laid end to end, and the total last. */
function offsets(lengths: number[]): number[] {
  const out = [0];
  for (const n of lengths) out.push(out.at(-1)! + n);
  return out;
}

/** Rows of N float32 values per block through the kernels' memory: about 1 MiB, at least one row. */
function blockOfRows(N: number): number {
  return Math.max(1, Math.floor((1 << 18) / N));
}

/** What {@link quantizeGroups} computed. */
export interface GroupQuantization<T extends QuantType = QuantType> {
  /** Each group's quantized rows `[rows, N]`, when asked to keep them. */
  wq?: QuantArray<T>[];
  /** Σ (x̂ − x)² over the whole weight, summed in float64 in {@link ERROR_LANES} lanes. */
  squaredError: number;
  /** Σ x² over the whole weight, summed the same way. */
  squaredNorm: number;
}

/**
 * The error sums run in four float64 lanes, as the SIMD kernel adds them: element n of a row
 * goes to lane n mod 4 (a row's last N mod 4 elements to lane 0), rows in order; the lanes are
 * added 0 + 1 + 2 + 3 at the end. (One sequential sum would tie the kernel to one add at a time.)
 */
export const ERROR_LANES = 4;

/**
 * QuantizeLinear of each group's rows with its parameters (from {@link groupParams}), and
 * the error of DequantizeLinear of the result against the weight, in the lanes of
 * {@link ERROR_LANES}. The WebAssembly SIMD kernel (quant-simd.ts) computes it where it is
 * available; {@link quantizeGroupsJs} is its reference, bit for bit.
 * @param keep also return the quantized rows (else only the error is computed)
 */
export function quantizeGroups<T extends QuantType>(w: Float32Array, K: number, N: number, groups: RowGroups, params: readonly QuantParams[], blockSize: number | undefined, type: T, keep: boolean): GroupQuantization<T> {
  if (w.length !== K * N) throw new RangeError(`quantizeGroups: length ${w.length} is not K·N = ${K}·${N}`);
  const k = quantKernels();
  return k && N >= 4 ? quantizeGroupsSimd(k, w, K, N, groups, params, blockSize, type, keep) : quantizeGroupsJs(w, K, N, groups, params, blockSize, type, keep);
}

/** {@link quantizeGroups} in plain JavaScript: the reference of the SIMD kernel. */
export function quantizeGroupsJs<T extends QuantType>(w: Float32Array, K: number, N: number, groups: RowGroups, params: readonly QuantParams[], blockSize: number | undefined, type: T, keep: boolean): GroupQuantization<T> {
  const { qmin, qmax } = quantRange(type);
  const B = groups.sizes.map((s) => blockRows(s, blockSize));
  const wq = keep ? groups.sizes.map((s) => newQuantArray(type, s * N)) : undefined;
  const { group, position } = groups;
  const sums = new Float64Array(2 * ERROR_LANES);
  const scratch = newQuantArray(type, N);
  for (let k = 0; k < K; k++) {
    const g = group ? group[k]! : 0;
    const i = position ? position[k]! : k;
    const { scales, zeroPoints } = params[g]!;
    const p = Math.floor(i / B[g]!) * N;
    // Without `keep` each row goes to one scratch row: the same loop, nothing kept.
    if (wq) quantizeRow(w, k * N, 0, N, scales, zeroPoints, p, qmin, qmax, sums, wq[g]!, i * N);
    else quantizeRow(w, k * N, 0, N, scales, zeroPoints, p, qmin, qmax, sums, scratch, 0);
  }
  return { ...(wq ? { wq } : {}), ...laneTotals(sums) };
}

/**
 * {@link quantizeGroupsJs} with the `quantRow` kernels: the weight goes through the kernels'
 * memory in blocks of rows of about 1 MiB, each row's quantized values come back as bytes.
 */
function quantizeGroupsSimd<T extends QuantType>(k: QuantKernels, w: Float32Array, K: number, N: number, groups: RowGroups, params: readonly QuantParams[], blockSize: number | undefined, type: T, keep: boolean): GroupQuantization<T> {
  const { qmin, qmax, signed } = quantRange(type);
  const B = groups.sizes.map((s) => blockRows(s, blockSize));
  const wq = keep ? groups.sizes.map((s) => newQuantArray(type, s * N)) : undefined;
  const { group, position } = groups;
  // Layout (float32 units): the lanes (16) | each group's scales and zero points | the row out (bytes) | rows in.
  const starts = offsets([16, ...params.flatMap((q) => [q.scales.length, q.zeroPoints.length]), Math.ceil(N / 4)]);
  const rows = blockOfRows(N);
  const src = starts.at(-1)!;
  const buffer = kernelMemory(k, (src + rows * N) * 4);
  const f = new Float32Array(buffer);
  const sums = new Float64Array(buffer, 0, 2 * ERROR_LANES).fill(0);
  params.forEach((q, g) => {
    f.set(q.scales, starts[1 + 2 * g]!);
    f.set(q.zeroPoints, starts[2 + 2 * g]!);
  });
  const outAt = starts.at(-2)!;
  const out = signed ? new Int8Array(buffer, outAt * 4, N) : new Uint8Array(buffer, outAt * 4, N);
  const kernel = signed ? k.quantRowS : k.quantRowU;
  const N4 = N & ~3;
  for (let k0 = 0; k0 < K; k0 += rows) {
    const k1 = Math.min(K, k0 + rows);
    f.set(w.subarray(k0 * N, k1 * N), src);
    for (let r = k0; r < k1; r++) {
      const g = group ? group[r]! : 0;
      const i = position ? position[r]! : r;
      const p = Math.floor(i / B[g]!) * N;
      kernel((src + (r - k0) * N) * 4, N4, (starts[1 + 2 * g]! + p) * 4, (starts[2 + 2 * g]! + p) * 4, outAt * 4, qmin, qmax, 0);
      // The last N mod 4 values in JavaScript, into lane 0 as the reference does.
      if (N4 < N) quantizeRow(w, r * N, N4, N, params[g]!.scales, params[g]!.zeroPoints, p, qmin, qmax, sums, out, 0);
      if (wq) wq[g]!.set(out as QuantArray<T>, i * N);
    }
  }
  return { ...(wq ? { wq } : {}), ...laneTotals(sums) };
}

/** The error and norm sums from their lanes ([err × 4, x² × 4]), added in lane order. */
function laneTotals(sums: Float64Array): { squaredError: number; squaredNorm: number } {
  let squaredError = 0;
  let squaredNorm = 0;
  for (let l = 0; l < ERROR_LANES; l++) {
    squaredError += sums[l]!;
    squaredNorm += sums[ERROR_LANES + l]!;
  }
  return { squaredError, squaredNorm };
}

/**
 * Values `from .. N` of one row: QuantizeLinear (the float32 quotient, rounded half to even
 * as roundHalfToEven does, clamped) into `out` at `dst + n`, and DequantizeLinear's error
 * added to the lanes of `sums` ([Σ d² × 4, Σ x² × 4]; value n of the row to lane n mod 4,
 * the values past the row's last multiple of four to lane 0).
 */
function quantizeRow(w: Float32Array, src: number, from: number, N: number, scales: Float32Array, zeroPoints: Int32Array, p: number, qmin: number, qmax: number, sums: Float64Array, out: Int8Array | Uint8Array, dst: number): void {
  const N4 = N & ~3;
  for (let n = from; n < N; n++) {
    const x = w[src + n]!;
    const s = scales[p + n]!;
    const z = zeroPoints[p + n]!;
    let q = Math.fround(x / s) + ROUND_MAGIC - ROUND_MAGIC + z;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    out[dst + n] = q;
    // DequantizeLinear stores (q − z)·s in float32: one rounding of the product.
    const d = Math.fround((q - z) * s) - x;
    const lane = n < N4 ? n & 3 : 0;
    sums[lane] += d * d;
    sums[ERROR_LANES + lane] += x * x;
  }
}

/** `sqrt(squaredError / squaredNorm)`, 0 for an all-zero weight. */
export function relativeErrorOf(q: GroupQuantization): number {
  return q.squaredNorm === 0 ? 0 : Math.sqrt(q.squaredError / q.squaredNorm);
}
