/**
 * MSE scale search (METHOD.md "Uniform quantization", initial scales): try the plain min/max
 * range and ranges clipped at the 0.999 / 0.9999 / 0.99999 percentiles, keep the one whose
 * quantize→dequantize reconstruction has the least (optionally sample-weighted, S1) squared
 * error. Clipping trades a large error on a few tail values for a finer grid everywhere else.
 */
import { computeScaleZeroPoint, quantRange, roundHalfToEven, type QuantType } from './quantize.ts';
import { percentileSorted } from './statistics.ts';

/** Candidate ranges, in tie-break order (an exact tie keeps the earlier, least clipped one). */
export const SCALE_CANDIDATES = ['minmax', 'p0.999', 'p0.9999', 'p0.99999'] as const;

/** Name of a candidate range. */
export type ScaleCandidate = (typeof SCALE_CANDIDATES)[number];

const PERCENTILES: Record<ScaleCandidate, number> = { minmax: 1, 'p0.999': 0.999, 'p0.9999': 0.9999, 'p0.99999': 0.99999 };

/** One evaluated candidate. */
export interface CandidateScore {
  candidate: ScaleCandidate;
  scale: number;
  zeroPoint: number;
  /** Σ_i α_i ‖x̂_i − x_i‖² (α = 1 without weights), accumulated in float64. */
  error: number;
}

/** The chosen candidate of {@link searchScale}, with every candidate's score for reports. */
export interface ScaleSearchResult {
  candidate: ScaleCandidate;
  scale: number;
  zeroPoint: number;
  errors: CandidateScore[];
}

/** Options of {@link searchScale} and {@link searchScalesPerChannel}. */
export interface ScaleSearchOptions {
  /** Symmetric quantization (clips |x| at the percentile); default false (asymmetric). */
  symmetric?: boolean;
  /** Candidates to try; default all of {@link SCALE_CANDIDATES}. */
  candidates?: readonly ScaleCandidate[];
}

/** Options of {@link searchScale}. */
export interface TensorScaleSearchOptions extends ScaleSearchOptions {
  /**
   * Per-row weights α_i: `x` is then a row-major `[M, x.length/M]` matrix with
   * `M = weights.length`, and row i's squared error counts α_i times.
   */
  weights?: Float64Array;
}

/**
 * Squared reconstruction error of quantizing `x` with (s, z), rows of `rowLen` values
 * weighted by `weights`. x̂ is computed exactly as Q→DQ in float32 would.
 */
function reconstructionError(
  x: Float32Array, scale: number, zeroPoint: number, qmin: number, qmax: number,
  weights: Float64Array | undefined, rowLen: number,
): number {
  let total = 0;
  for (let start = 0, r = 0; start < x.length; start += rowLen, r++) {
    let acc = 0;
    const end = Math.min(start + rowLen, x.length);
    for (let i = start; i < end; i++) {
      const v = x[i];
      let q = roundHalfToEven(Math.fround(v / scale)) + zeroPoint;
      q = q < qmin ? qmin : q > qmax ? qmax : q;
      const e = Math.fround((q - zeroPoint) * scale) - v;
      acc += e * e;
    }
    total += weights === undefined ? acc : weights[r] * acc;
  }
  return total;
}

/**
 * Scores every candidate on `values` (whose ascending copy is `sorted`; for symmetric, the
 * ascending copy of |values|) and returns the scores in candidate order.
 */
function scoreCandidates(
  values: Float32Array, sorted: Float32Array, type: QuantType, symmetric: boolean,
  candidates: readonly ScaleCandidate[], weights: Float64Array | undefined, rowLen: number,
): CandidateScore[] {
  const { qmin, qmax } = quantRange(type);
  return candidates.map((candidate) => {
    const p = PERCENTILES[candidate];
    let lo: number;
    let hi: number;
    if (symmetric) {
      hi = sorted.length === 0 ? 0 : percentileSorted(sorted, p);
      lo = -hi;
    } else {
      lo = sorted.length === 0 ? 0 : percentileSorted(sorted, 1 - p);
      hi = sorted.length === 0 ? 0 : percentileSorted(sorted, p);
    }
    const { scale, zeroPoint } = computeScaleZeroPoint(lo, hi, type, symmetric);
    const error = reconstructionError(values, scale, zeroPoint, qmin, qmax, weights, rowLen);
    return { candidate, scale, zeroPoint, error };
  });
}

/** Index of the least error; the first one wins exact ties. */
function argmin(scores: CandidateScore[]): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i].error < scores[best].error) best = i;
  return best;
}

/** Ascending float32 copy of `values` (or of their absolute values). */
function sortedCopy(values: Float32Array, abs: boolean): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = abs ? Math.abs(values[i]) : values[i];
  return out.sort();
}

/**
 * Chooses one scale / zero point for a whole tensor (e.g. a per-tensor activation
 * quantizer from calibration samples) by least squared reconstruction error.
 * Cost: one float32 sort plus one pass per candidate.
 */
export function searchScale(x: Float32Array, type: QuantType, options: TensorScaleSearchOptions = {}): ScaleSearchResult {
  const { symmetric = false, candidates = SCALE_CANDIDATES, weights } = options;
  if (candidates.length === 0) throw new RangeError('searchScale: no candidates');
  let rowLen = Math.max(1, x.length);
  if (weights !== undefined) {
    if (weights.length === 0 || x.length % weights.length !== 0) {
      throw new RangeError(`searchScale: ${x.length} values do not split into ${weights.length} weighted rows`);
    }
    rowLen = Math.max(1, x.length / weights.length);
  }
  const errors = scoreCandidates(x, sortedCopy(x, symmetric), type, symmetric, candidates, weights, rowLen);
  const best = errors[argmin(errors)];
  return { candidate: best.candidate, scale: best.scale, zeroPoint: best.zeroPoint, errors };
}

/** Result of {@link searchScalesPerChannel}: one choice per column. */
export interface ChannelScaleSearchResult {
  /** The candidates tried, in the order of the rows of `errors`. */
  candidates: readonly ScaleCandidate[];
  /** Chosen candidate of each column. */
  choice: ScaleCandidate[];
  /** N float32 scales. */
  scales: Float32Array;
  /** N zero points. */
  zeroPoints: Int32Array;
  /** Squared error of every candidate for every column, row-major `[candidates.length, N]`. */
  errors: Float64Array;
}

/**
 * Per-output-channel scale search on a row-major `[K, N]` weight: each column n picks its own
 * candidate by least squared reconstruction error over its K values.
 */
export function searchScalesPerChannel(w: Float32Array, K: number, N: number, type: QuantType, options: ScaleSearchOptions = {}): ChannelScaleSearchResult {
  const { symmetric = false, candidates = SCALE_CANDIDATES } = options;
  if (candidates.length === 0) throw new RangeError('searchScalesPerChannel: no candidates');
  if (w.length !== K * N) throw new RangeError(`searchScalesPerChannel: length ${w.length} is not K·N = ${K}·${N}`);
  const choice: ScaleCandidate[] = [];
  const scales = new Float32Array(N);
  const zeroPoints = new Int32Array(N);
  const errors = new Float64Array(candidates.length * N);
  // A contiguous copy of the column keeps the candidate passes cache-friendly.
  const column = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) column[k] = w[k * N + n];
    const scores = scoreCandidates(column, sortedCopy(column, symmetric), type, symmetric, candidates, undefined, Math.max(1, K));
    const best = scores[argmin(scores)];
    choice.push(best.candidate);
    scales[n] = best.scale;
    zeroPoints[n] = best.zeroPoint;
    for (let c = 0; c < scores.length; c++) errors[c * N + n] = scores[c].error;
  }
  return { candidates, choice, scales, zeroPoints, errors };
}
