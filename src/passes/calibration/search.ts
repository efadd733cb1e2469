/**
 * The error-based scale search of calibration (METHOD.md "Uniform quantization", S1 item 4),
 * for one layer that S2 has already planned:
 *
 * 1. Weights, per branch and per output channel n: candidates min/max and the clipping
 *    percentiles {0.999, 0.9999, 0.99999} of the column; the column keeps the candidate with
 *    the least `Σ_i f_i (x_i · (Q(w_n) − w_n))²` over the reservoir rows x_i of the branch's
 *    input channels — computed as `dᵀHd` with the weighted Gram matrix `H = Σ_i f_i x_i x_iᵀ`
 *    when that is cheaper, else directly.
 * 2. Activations, per branch (one per-tensor quantizer each): candidates min/max (the exact
 *    running range over every calibration row) and the same percentiles of the branch's
 *    reservoir values; the branch keeps the candidate with the least
 *    `Σ_i f_i ‖Q(x_i)·Q(W) − x_i·W‖²`, Q(W) being the branch's weight from step 1.
 * 3. The rows, per chunk c: the chunk's rows of largest magnitude, exactly (weight α_c each),
 *    and a uniform reservoir of its other rows (weight `α_c · offered_c / kept_c`), so the sum
 *    is a stratified estimate of the sum over every calibration row in which the rare rows
 *    with very large values always count (a uniform sample alone would make clipping them
 *    look free). α comes from S1 (or is 1). Percentiles are of the pooled reservoir values
 *    (each chunk contributes its kept rows, unweighted; the extreme rows are left out so the
 *    candidates estimate the population's percentiles): with 256 rows per chunk a p0.99999
 *    cut of a 64-channel tensor is close to the largest kept value.
 * 4. Ties keep the earlier candidate (min/max first), so when clipping does not help the
 *    result is exactly the plain min/max quantizer.
 * Also computed, per chunk: the layer's relative output error before (plain min/max weights
 * and activations) and after the search.
 */
import {
  computeScaleZeroPoint,
  dequantizeBlocked,
  quantRange,
  type QuantType,
} from '../../kernels/quantize.ts';
import { SCALE_CANDIDATES, type ScaleCandidate } from '../../kernels/scale-search.ts';
import { percentileSorted } from '../../kernels/statistics.ts';
import type { QuantConfig } from '../quant/config.ts';
import { takeRows } from '../quant/layer-weights.ts';
import { activationQuantForRange, type ActivationQuant, type Branch, type LayerPlan } from '../quant/plan.ts';
import { type DistinctRows, distinctRows } from './distinct-rows.ts';
import { type BufferPool, poolFor } from './buffers.ts';
import { ranksRead, sortEnds } from './column-ends.ts';
import { type BranchOutputs, chunkRelativeErrors, rowDots, weightedRowError } from './errors.ts';
import { gemm32, gemmF32, transpose } from './row-gemm.ts';
import { fakeQuantSimd } from './simd.ts';
import { tailPercentilesOf } from './tails.ts';
import { fakeQuantWeight } from './weight-quant.ts';
import type { TensorStats } from './tensor-stats.ts';

export { tailPercentiles } from './tails.ts';

const PERCENTILE: Record<ScaleCandidate, number> = { minmax: 1, 'p0.999': 0.999, 'p0.9999': 0.9999, 'p0.99999': 0.99999 };

/** One-letter codes of the weight candidates in a calibration table's per-column choice string. */
export const WEIGHT_CHOICE_CODES: Record<ScaleCandidate, string> = { minmax: 'm', 'p0.999': '3', 'p0.9999': '4', 'p0.99999': '5' };

/** Reservoir rows of one layer input, with their weights in the objective. */
export interface RowSample {
  /** Row-major `[M, K]`: the kept rows of every chunk, chunk by chunk. */
  x: Float32Array;
  M: number;
  K: number;
  /** `f_i` of each row. */
  weight: Float64Array;
  /** How many of its chunk's rows each row stands for (`f_i` without α): 1 for an extreme row, seen / kept for a reservoir row. */
  represents: Float64Array;
  /** Index into `chunks` of each row's chunk. */
  chunkIndex: Int32Array;
  /** 1 for a row of the uniform reservoir, 0 for a row of the extreme stratum. */
  uniform: Uint8Array;
  chunks: number[];
}

/**
 * Builds the row sample of a tensor; `alpha[j]` weighs the rows of `chunks[j]`. Per chunk:
 * the extreme rows (weight α each) and the reservoir rows (weight α · offered / kept), a
 * stratified estimate of the sum over every row of the chunk.
 */
export function rowSample(stats: TensorStats, chunks: number[], alpha: readonly number[]): RowSample {
  const K = stats.channels;
  let M = 0;
  for (const c of chunks) M += (stats.chunk(c)?.reservoir.kept ?? 0) + (stats.chunk(c)?.extremes.kept ?? 0);
  const x = new Float32Array(M * K);
  const weight = new Float64Array(M);
  const represents = new Float64Array(M);
  const chunkIndex = new Int32Array(M);
  const uniform = new Uint8Array(M);
  let at = 0;
  const put = (rows: Float32Array, n: number, share: number, j: number, isUniform: boolean) => {
    x.set(rows, at * K);
    weight.fill(alpha[j]! * share, at, at + n);
    represents.fill(share, at, at + n);
    chunkIndex.fill(j, at, at + n);
    uniform.fill(isUniform ? 1 : 0, at, at + n);
    at += n;
  };
  chunks.forEach((c, j) => {
    const s = stats.chunk(c);
    if (!s) return;
    if (s.reservoir.kept > 0) put(s.reservoir.rows(), s.reservoir.kept, s.reservoir.seen / s.reservoir.kept, j, true);
    if (s.extremes.kept > 0) put(s.extremes.rows(), s.extremes.kept, 1, j, false);
  });
  return { x, M, K, weight, represents, chunkIndex, uniform, chunks };
}

/** One evaluated activation candidate. */
export interface ActivationCandidate {
  candidate: ScaleCandidate;
  lo: number;
  hi: number;
  scale: number;
  zeroPoint: number;
  /** Weighted mean squared output error per row (the objective divided by Σ f_i). */
  error: number;
}

/** The weight side of a branch's search. */
export interface WeightSearch {
  scales: Float32Array;
  zeroPoints: Int32Array;
  /** Per output channel, the chosen candidate's code ({@link WEIGHT_CHOICE_CODES}). */
  choice: string;
  /** Weighted output error per row summed over columns: all min/max, and as chosen. */
  error: { minmax: number; chosen: number };
}

/** What the search chose for one branch. */
export interface BranchSearch {
  role: Branch['role'];
  channels: number;
  act: ActivationQuant;
  actCandidate: ScaleCandidate;
  actCandidates: ActivationCandidate[];
  /** Range of the branch's channels per chunk (exact running min/max), aligned with the chunks. */
  chunkMin: number[];
  chunkMax: number[];
  /** Undefined when the weights kept plain min/max scales (search off, or a shared weight). */
  weight?: WeightSearch;
}

/** The search result of one layer. */
export interface LayerSearch {
  layer: string;
  branches: BranchSearch[];
  /** Per chunk: ‖ΔY‖² / ‖Y‖² of the whole layer, estimated over the chunk's rows from its stratified sample (errors.ts `chunkRelativeErrors`). */
  outputError: { before: number[]; after: number[] };
}

/** Options of {@link searchLayer}. */
export interface SearchOptions {
  /** Search the weight scales too (off for weights shared by several layers). */
  weights: boolean;
  /** Search at all: false gives plain min/max quantizers but still measures the output error. */
  search: boolean;
  /** Gram matrices and fake-quantized rows of whole-input branches, shared by layers reading the same rows. */
  gramCache?: Map<unknown, Float32Array>;
  gramKey?: unknown;
}

/**
 * Searches the scales of one planned layer over its input's reservoir rows.
 * @param w the layer's float weight, row-major `[K, N]` (alpha folded in)
 */
export function searchLayer(plan: LayerPlan, w: Float32Array, stats: TensorStats, rows: RowSample, config: QuantConfig, options: SearchOptions): LayerSearch {
  const { K, N } = plan.layer;
  if (rows.K !== K) throw new Error(`internal: layer ${plan.layer.name} has K = ${K} but its rows have ${rows.K} channels`);
  const { M } = rows;
  const C = rows.chunks.length;
  // Products and quantizers work row by row: once per distinct row (the outputs below are
  // [Md, N]); the sums over rows still visit every row, in order, through `distinctOf`.
  const { distinct, distinctOf } = distinctOfRows(rows);
  const Md = distinct.length;
  // Per branch: the outputs of the float layer, after and before the search (summed over branches by chunkRelativeErrors).
  const outputs: BranchOutputs[] = [];
  // Buffers no one reads after this layer (not rows.x, not cached rows) go back to the pool at its end.
  const pool = poolFor(options.gramCache);
  const scratch: Float32Array[] = [];
  const branches = plan.branches.map((br) => {
    const xb = br.indices ? takeColumns(rows.x, M, K, br.indices, pool.take(M * br.K)) : rows.x;
    if (xb !== rows.x) scratch.push(xb);
    const wb = br.indices ? takeRows(w, N, br.indices) : w;
    const Kb = br.K;
    const plainDeq = dequantizeBlocked(br.wq, Kb, N, br.blockSize ?? Kb, br.wScales, br.wZeroPoints);
    let weight: WeightSearch | undefined;
    let deq = plainDeq;
    // The candidates are per output channel: blocked weights keep their min/max blocks.
    if (options.search && options.weights && M > 0 && !br.blockSize) {
      const gramKey = br.indices ? undefined : options.gramKey;
      ({ search: weight, deq } = searchWeights(xb, rows, wb, Kb, N, br.wType, config.wSymmetric, gramKey === undefined ? undefined : options.gramCache, gramKey, pool));
    }
    const xd = Md === M ? xb : takeRows(xb, Kb, distinct, pool.take(Md * Kb));
    if (xd !== xb) scratch.push(xd);
    const ref = gemmF32(xd, Md, Kb, transpose(wb, Kb, N) as Float32Array, N, pool.take(Md * N));
    const deqT = transpose(deq, Kb, N) as Float32Array;
    const { chunkMin, chunkMax, lo, hi } = branchRanges(stats, rows.chunks, br.indices, K);
    // Layers reading the same input (q, k, v) see the same percentiles: compute them once.
    const tails = () => {
      const u = uniformRows(xb, rows, Kb, pool);
      const t = percentileTails(u, config.aSymmetric);
      if (u !== xb) pool.give([u]);
      return t;
    };
    const cands = activationCandidates(br.indices ? tails : () => cachedTails(rows, config.aSymmetric, tails), M * Kb === 0, lo, hi, config, options.search);
    let best: { cand: ActivationCandidate; aq: ActivationQuant; y: Float32Array } | undefined;
    const evaluated: ActivationCandidate[] = [];
    let minmax: { xq: Float32Array; y: Float32Array } | undefined;
    const ys: Float32Array[] = [];
    for (const { candidate, lo: l, hi: h, aq } of cands) {
      // Layers reading the same input (q, k, v) see the same candidates: quantize the rows once.
      const xqKey = br.indices || options.gramKey === undefined ? undefined : `${String(options.gramKey)}|xq|${aq.scale}|${aq.zeroPoint}|${aq.clip?.join(',') ?? ''}`;
      let xq = xqKey === undefined ? undefined : options.gramCache?.get(xqKey);
      if (!xq) {
        xq = fakeQuant(xd, aq, xqKey === undefined ? pool.take(xd.length) : undefined);
        if (xqKey !== undefined) options.gramCache?.set(xqKey, xq);
        else scratch.push(xq);
      }
      const y = gemmF32(xq, Md, Kb, deqT, N, pool.take(Md * N));
      ys.push(y);
      if (candidate === 'minmax') minmax = { xq, y };
      const error = weightedRowError(y, ref, rows.weight, M, N, distinctOf);
      const cand: ActivationCandidate = { candidate, lo: l, hi: h, scale: aq.scale, zeroPoint: aq.zeroPoint, error };
      evaluated.push(cand);
      if (!best || error < best.cand.error) best = { cand, aq, y };
    }
    // Before the search: min/max activations and min/max weights.
    const before = deq === plainDeq ? minmax!.y : outputWithWeight(minmax!, Md, Kb, N, deqT, transpose(plainDeq, Kb, N) as Float32Array, pool);
    outputs.push({ ref, after: best!.y, before });
    // The other candidates' products are done with: the next branch can have them.
    pool.give(ys.filter((y) => y !== best!.y && y !== minmax!.y));
    scratch.push(ref, best!.y, minmax!.y, before);
    const act: ActivationQuant = { ...best!.aq, range: [best!.cand.lo, best!.cand.hi] };
    const out: BranchSearch = { role: br.role, channels: Kb, act, actCandidate: best!.cand.candidate, actCandidates: evaluated, chunkMin, chunkMax };
    if (weight) out.weight = weight;
    return out;
  });
  const outputError = chunkRelativeErrors(outputs, rows.chunkIndex, rows.represents, M, N, C, distinctOf);
  pool.give(scratch);
  return { layer: plan.layer.name, branches, outputError };
}

/**
 * `xq·Wᵀ` for a weight `wT` (`[N, Kb]`) given the product `y` of the same rows with another
 * weight `yT`: only the columns whose weight differs are multiplied (each output is its own
 * sum, so the others are those of `y`, bit for bit).
 */
function outputWithWeight(minmax: { xq: Float32Array; y: Float32Array }, Md: number, Kb: number, N: number, yT: Float32Array, wT: Float32Array, pool: BufferPool): Float32Array {
  const a = new Uint32Array(yT.buffer, yT.byteOffset, N * Kb);
  const b = new Uint32Array(wT.buffer, wT.byteOffset, N * Kb);
  const cols: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let k = n * Kb, end = k + Kb; k < end; k++) {
      if (a[k] !== b[k]) {
        cols.push(n);
        break;
      }
    }
  }
  if (cols.length === 0) return minmax.y;
  const out = pool.take(Md * N);
  out.set(minmax.y);
  const Nd = cols.length;
  const sub = new Float32Array(Nd * Kb);
  cols.forEach((n, t) => sub.set(wT.subarray(n * Kb, (n + 1) * Kb), t * Kb));
  const ys = gemmF32(minmax.xq, Md, Kb, sub, Nd, pool.take(Md * Nd));
  for (let i = 0; i < Md; i++) for (let t = 0; t < Nd; t++) out[i * N + cols[t]!] = ys[i * Nd + t]!;
  pool.give([ys]);
  return out;
}

/** The reservoir's rows of a row-major `[M, Kb]` block (percentiles estimate the population from these). */
function uniformRows(xb: Float32Array, rows: RowSample, Kb: number, pool: BufferPool): Float32Array {
  let n = 0;
  for (let i = 0; i < rows.M; i++) n += rows.uniform[i]!;
  if (n === rows.M) return xb;
  // With no reservoir rows at all (every row was extreme), the extreme rows are the population.
  if (n === 0) return xb;
  const out = pool.take(n * Kb);
  let at = 0;
  for (let i = 0; i < rows.M; i++) {
    if (!rows.uniform[i]) continue;
    out.set(xb.subarray(i * Kb, (i + 1) * Kb), at * Kb);
    at++;
  }
  return out;
}

/** Columns `idx` of a row-major `[M, K]` matrix. */
function takeColumns(x: Float32Array, M: number, K: number, idx: Int32Array, out: Float32Array = new Float32Array(M * idx.length)): Float32Array {
  const Kb = idx.length;
  for (let i = 0; i < M; i++) for (let j = 0; j < Kb; j++) out[i * Kb + j] = x[i * K + idx[j]!]!;
  return out;
}

/** Exact per-chunk range of the branch's channels, and its union. */
function branchRanges(stats: TensorStats, chunks: number[], idx: Int32Array | undefined, K: number) {
  const chunkMin: number[] = [];
  const chunkMax: number[] = [];
  for (const c of chunks) {
    const r = stats.chunk(c)!.ranges;
    let lo = Infinity;
    let hi = -Infinity;
    const n = idx ? idx.length : K;
    for (let j = 0; j < n; j++) {
      const k = idx ? idx[j]! : j;
      if (r.min[k]! < lo) lo = r.min[k]!;
      if (r.max[k]! > hi) hi = r.max[k]!;
    }
    chunkMin.push(lo);
    chunkMax.push(hi);
  }
  return { chunkMin, chunkMax, lo: Math.min(...chunkMin), hi: Math.max(...chunkMax) };
}

/**
 * The activation candidates: min/max from the exact range, percentiles from the rows (of
 * |x| when symmetric). Candidates giving the same quantizer as an earlier one are dropped.
 */
function activationCandidates(tails: () => Tails, empty: boolean, lo: number, hi: number, config: QuantConfig, search: boolean) {
  const out: { candidate: ScaleCandidate; lo: number; hi: number; aq: ActivationQuant }[] = [];
  const sym = config.aSymmetric;
  const add = (candidate: ScaleCandidate, l: number, h: number) => {
    const aq = activationQuantForRange(l, h, config);
    if (out.some((o) => o.aq.scale === aq.scale && o.aq.zeroPoint === aq.zeroPoint && o.aq.clip?.[0] === aq.clip?.[0] && o.aq.clip?.[1] === aq.clip?.[1])) return;
    out.push({ candidate, lo: l, hi: h, aq });
  };
  add('minmax', lo, hi);
  if (!search || empty) return out;
  const { upper, lower } = tails();
  SCALE_CANDIDATES.filter((c) => c !== 'minmax').forEach((c, i) => {
    if (sym) add(c, -upper[i]!, upper[i]!);
    else add(c, lower![i]!, upper[i]!);
  });
  return out;
}

/** The percentile candidates' upper (and, asymmetric, lower) ends. */
interface Tails {
  upper: number[];
  lower?: number[];
}

/** The percentiles of the candidates over the rows' values (of |x| when symmetric). */
function percentileTails(xb: Float32Array, sym: boolean): Tails {
  const ps = SCALE_CANDIDATES.filter((c) => c !== 'minmax').map((c) => PERCENTILE[c]);
  return tailPercentilesOf(xb, ps, sym);
}

/** Per row sample (kept by the caller while the layers reading it are searched): its distinct rows, its whole-row percentiles. */
const distinctCache = new WeakMap<RowSample, DistinctRows>();
const tailsCache = new WeakMap<RowSample, Map<boolean, Tails>>();

function distinctOfRows(rows: RowSample): DistinctRows {
  let d = distinctCache.get(rows);
  if (!d) distinctCache.set(rows, (d = distinctRows(rows.x, rows.M, rows.K)));
  return d;
}

function cachedTails(rows: RowSample, sym: boolean, compute: () => Tails): Tails {
  let bySym = tailsCache.get(rows);
  if (!bySym) tailsCache.set(rows, (bySym = new Map()));
  let t = bySym.get(sym);
  if (!t) bySym.set(sym, (t = compute()));
  return t;
}

/**
 * Clip → QuantizeLinear → DequantizeLinear, with ONNX's float32 arithmetic: the WebAssembly
 * kernel where available (simd.ts), else {@link fakeQuantJs}; the same values bit for bit.
 */
export function fakeQuant(x: Float32Array, aq: ActivationQuant, out: Float32Array = new Float32Array(x.length)): Float32Array {
  const { qmin, qmax } = quantRange(aq.type);
  if (fakeQuantSimd(x, out, Math.fround(aq.scale), aq.zeroPoint, aq.clip ? aq.clip[0] : -Infinity, aq.clip ? aq.clip[1] : Infinity, qmin, qmax)) return out;
  return fakeQuantJs(x, aq, out);
}

/** {@link fakeQuant} in plain JavaScript (the definition the kernel matches). */
export function fakeQuantJs(x: Float32Array, aq: ActivationQuant, out: Float32Array = new Float32Array(x.length)): Float32Array {
  const { qmin, qmax } = quantRange(aq.type);
  const s = Math.fround(aq.scale);
  const z = aq.zeroPoint;
  const c0 = aq.clip ? aq.clip[0] : -Infinity;
  const c1 = aq.clip ? aq.clip[1] : Infinity;
  for (let i = 0; i < x.length; i++) {
    let v = x[i]!;
    if (v < c0) v = c0;
    else if (v > c1) v = c1;
    const u = Math.fround(v / s);
    // Round half to even, inline: Math.round takes ties up, so an odd result of a tie steps down.
    let r = Math.round(u);
    if (r - u === 0.5 && (r & 1) !== 0) r -= 1;
    let q = r + z;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    out[i] = (q - z) * s;
  }
  return out;
}

/** Per-column scale and zero point of each candidate, `[candidates, N]`. */
export function weightCandidateParams(wb: Float32Array, Kb: number, N: number, type: QuantType, symmetric: boolean) {
  const scales = SCALE_CANDIDATES.map(() => new Float32Array(N));
  const zeroPoints = SCALE_CANDIDATES.map(() => new Int32Array(N));
  const col = new Float32Array(Kb);
  // Only the ends of each sorted column are read (ranks up to `low`, from `Kb − high`).
  const ps = SCALE_CANDIDATES.map((c) => PERCENTILE[c]);
  const low = symmetric ? 0 : ranksRead(Kb, ps.map((p) => 1 - p)).highest + 1;
  const high = Kb - ranksRead(Kb, ps).lowest;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < Kb; k++) col[k] = symmetric ? Math.abs(wb[k * N + n]!) : wb[k * N + n]!;
    sortEnds(col, low, high);
    SCALE_CANDIDATES.forEach((c, ci) => {
      const p = PERCENTILE[c];
      const hi = percentileSorted(col, p);
      const lo = symmetric ? -hi : percentileSorted(col, 1 - p);
      const { scale, zeroPoint } = computeScaleZeroPoint(lo, hi, type, symmetric);
      scales[ci]![n] = scale;
      zeroPoints[ci]![n] = zeroPoint;
    });
  }
  return { scales, zeroPoints };
}

/** Weight scales from a per-column choice string (a loaded calibration table). */
export function weightParamsFromChoice(wb: Float32Array, Kb: number, N: number, type: QuantType, symmetric: boolean, choice: string): { scales: Float32Array; zeroPoints: Int32Array } {
  if (choice.length !== N) throw new Error(`weight choice has ${choice.length} columns, the weight has ${N}`);
  const codes = SCALE_CANDIDATES.map((c) => WEIGHT_CHOICE_CODES[c]);
  const params = weightCandidateParams(wb, Kb, N, type, symmetric);
  const scales = new Float32Array(N);
  const zeroPoints = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const ci = codes.indexOf(choice[n]!);
    if (ci < 0) throw new Error(`weight choice code '${choice[n]}' at column ${n} is not one of ${codes.join(', ')}`);
    scales[n] = params.scales[ci]![n]!;
    zeroPoints[n] = params.zeroPoints[ci]![n]!;
  }
  return { scales, zeroPoints };
}

function searchWeights(
  xb: Float32Array, rows: RowSample, wb: Float32Array, Kb: number, N: number, type: QuantType, symmetric: boolean,
  cache: Map<unknown, Float32Array> | undefined, key: unknown, pool: BufferPool,
): { search: WeightSearch; deq: Float32Array } {
  const { M } = rows;
  const params = weightCandidateParams(wb, Kb, N, type, symmetric);
  const useGram = Kb <= 2048 && M * Kb * Kb + 4 * Kb * Kb * N < 4 * M * Kb * N;
  let gram: Float32Array | undefined;
  let xs: Float32Array | undefined;
  let first: Int32Array | undefined;
  let scaledOf: Int32Array | undefined;
  if (useGram) {
    gram = cache?.get(key);
    if (!gram) {
      gram = gramMatrix(xb, rows, Kb, pool);
      cache?.set(key, gram);
    }
  } else {
    // Rows scaled by √f_i, so a plain sum of squares is the weighted one; once per distinct
    // scaled row (the sums below read a repeat's products from its first occurrence).
    ({ first, of: scaledOf } = distinctWeighted(distinctOfRows(rows).distinctOf, rows.weight, M));
    xs = new Float32Array(first.length * Kb);
    for (let u = 0; u < first.length; u++) {
      const i = first[u]!;
      const r = Math.sqrt(rows.weight[i]!);
      for (let k = 0; k < Kb; k++) xs[u * Kb + k] = xb[i * Kb + k]! * r;
    }
  }
  let wsum = 0;
  for (let i = 0; i < M; i++) wsum += rows.weight[i]!;
  // Each candidate's dequantized weight, kept: quantization is per element, so the chosen
  // weight's column n is column n of its candidate's.
  const deqs: Float32Array[] = [];
  const colErr = SCALE_CANDIDATES.map((_, ci) => {
    const s = params.scales[ci]!;
    const z = params.zeroPoints[ci]!;
    const deq = new Float32Array(Kb * N);
    const dT = new Float32Array(N * Kb);
    fakeQuantWeight(wb, Kb, N, s, z, type, deq, dT);
    deqs.push(deq);
    const err = new Float64Array(N);
    if (gram) {
      // err_n = d_nᵀ H d_n: (H·D)ᵀ = Dᵀ·H (H symmetric), row n of it dotted with d_n.
      const hd = gemm32(dT, N, Kb, gram, Kb, pool.take(N * Kb));
      rowDots(hd, dT, N, Kb, err);
      pool.give([hd]);
    } else {
      const e = gemm32(xs!, first!.length, Kb, dT, N, pool.take(first!.length * N));
      for (let i = 0; i < M; i++) for (let n = 0, at = scaledOf![i]! * N; n < N; n++) err[n]! += e[at + n]! ** 2;
      pool.give([e]);
    }
    return err;
  });
  const scales = new Float32Array(N);
  const zeroPoints = new Int32Array(N);
  const bestOf = new Uint8Array(N);
  let choice = '';
  let minmax = 0;
  let chosen = 0;
  for (let n = 0; n < N; n++) {
    let best = 0;
    for (let ci = 1; ci < SCALE_CANDIDATES.length; ci++) if (colErr[ci]![n]! < colErr[best]![n]!) best = ci;
    bestOf[n] = best;
    scales[n] = params.scales[best]![n]!;
    zeroPoints[n] = params.zeroPoints[best]![n]!;
    choice += WEIGHT_CHOICE_CODES[SCALE_CANDIDATES[best]!];
    minmax += colErr[0]![n]!;
    chosen += colErr[best]![n]!;
  }
  const deq = new Float32Array(Kb * N);
  for (let n = 0; n < N; n++) {
    const from = deqs[bestOf[n]!]!;
    for (let k = 0; k < Kb; k++) deq[k * N + n] = from[k * N + n]!;
  }
  const norm = wsum > 0 ? 1 / wsum : 0;
  return { search: { scales, zeroPoints, choice, error: { minmax: minmax * norm, chosen: chosen * norm } }, deq };
}

/** The rows that are distinct once weighted (same row bits, same f_i): each one's first row, and which of them each row repeats. */
function distinctWeighted(distinctOf: Int32Array, weight: Float64Array, M: number): { first: Int32Array; of: Int32Array } {
  const byKey = new Map<string, number>();
  const first: number[] = [];
  const of = new Int32Array(M);
  for (let i = 0; i < M; i++) {
    const key = `${distinctOf[i]}|${weight[i]}`;
    let u = byKey.get(key);
    if (u === undefined) {
      byKey.set(key, (u = first.length));
      first.push(i);
    }
    of[i] = u;
  }
  return { first: Int32Array.from(first), of };
}

/** `H = Σ_i f_i x_i x_iᵀ`, `[Kb, Kb]`. */
function gramMatrix(xb: Float32Array, rows: RowSample, Kb: number, pool: BufferPool): Float32Array {
  const { M } = rows;
  const xsT = pool.take(Kb * M);
  for (let i = 0; i < M; i++) {
    const r = Math.sqrt(rows.weight[i]!);
    for (let k = 0; k < Kb; k++) xsT[k * M + i] = xb[i * Kb + k]! * r;
  }
  const gram = gemm32(xsT, Kb, M, xsT, Kb);
  pool.give([xsT]);
  return gram;
}
