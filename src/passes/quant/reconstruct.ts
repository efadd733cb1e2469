/**
 * Reconstruction of a planned layer's weights from calibration statistics (METHOD.md
 * "Reconstruction"): the frame-weighted objective `tr((Ŵ − W)ᵀ H (Ŵ − W))` with
 * `H = Σ_c α_c Σ_{x ∈ c} xᵀx` drives the rounding, and the mean output shift `μ·(Ŵ − W)` is
 * folded into the bias.
 *
 * 1. The branches' scales and zero points are kept (min/max or searched, chosen before);
 *    only the integers change. GPTQ runs over all K rows of the layer at once, each row with
 *    its branch's quantizer, so the error of an outlier row is absorbed by normal rows and
 *    the other way round. AdaRound (`reconstruct adaround`, kernels/adaround.ts) instead learns
 *    each weight's rounding up or down against the same objective, with the same quantizers.
 * 2. Bias correction (Nagel et al. 2019, empirical): `b' = b − μ·(Ŵ − W)`; a layer without a
 *    bias gets one.
 * 3. The layer's error per calibration row, `e = tr(ΔᵀHΔ)/Σα_c n_c` and, after bias
 *    correction, `e − ‖μΔ‖²` (the mean part is removed exactly), is recorded: it is what
 *    `dual-scale auto` compares between the split and the single quantizer.
 */
import { adaround, type AdaroundOptions } from '../../kernels/adaround.ts';
import { gptq, type GptqOptions, quadraticError, roundToNearest, type RowQuantizers } from '../../kernels/gptq.ts';
import { newQuantArray } from '../../kernels/quantize.ts';
import type { ReconStats } from '../calibration/gram.ts';
import type { Branch, LayerPlan, LayerReconstruction } from './plan.ts';

/** How layers are reconstructed. */
export interface ReconstructOptions {
  /** `gptq`: GPTQ error feedback; `adaround`: learnt rounding; `none`: round to nearest (statistics still give bias correction and the error). */
  method: 'gptq' | 'adaround' | 'none';
  gptq: GptqOptions;
  /** AdaRound's options (`rows` is set per layer from the statistics). */
  adaround?: AdaroundOptions;
  biasCorrection: boolean;
}

/**
 * Row quantizers of a plan: one group per branch (per-output-channel scales), or per block of
 * a branch's rows (blocked scales; a split layer's outlier rows form their own blocks).
 */
export function rowQuantizersOf(plan: LayerPlan): RowQuantizers {
  const { K, N } = plan.layer;
  const G = plan.branches.reduce((s, br) => s + br.wScales.length / N, 0);
  const group = new Int32Array(K);
  const scales = new Float32Array(G * N);
  const zeroPoints = new Int32Array(G * N);
  let first = 0;
  for (const br of plan.branches) {
    const B = br.blockSize ?? br.K;
    for (let i = 0; i < br.K; i++) group[br.indices ? br.indices[i]! : i] = first + Math.floor(i / B);
    scales.set(br.wScales, first * N);
    zeroPoints.set(br.wZeroPoints, first * N);
    first += br.wScales.length / N;
  }
  const types = new Set(plan.branches.map((b) => b.wType));
  if (types.size !== 1) throw new Error(`internal: layer ${plan.layer.name} mixes weight types ${[...types].join(', ')}`);
  return { group, scales, zeroPoints, type: plan.branches[0]!.wType };
}

/**
 * Reconstructs the weights of `plan` (a new plan; the given one is not changed) and, with
 * bias correction, sets its bias shift.
 * @param w the layer's float weight `[K, N]` (alpha folded in)
 */
export function reconstructPlan(plan: LayerPlan, w: Float32Array, stats: ReconStats, options: ReconstructOptions, activationShift?: Float64Array): LayerPlan {
  const { K, N } = plan.layer;
  if (stats.K !== K) throw new Error(`internal: layer ${plan.layer.name} has K = ${K} but its statistics have ${stats.K} channels`);
  const quantizers = rowQuantizersOf(plan);
  const rtn = roundToNearest(w, K, N, quantizers);
  const perRow = stats.weight > 0 ? 1 / stats.weight : 0;
  const learnt = options.method === 'adaround' ? adaround(w, stats.h, K, N, quantizers, { ...options.adaround, rows: stats.weight > 0 ? stats.weight : 1 }) : undefined;
  const result = learnt ?? (options.method === 'gptq' ? gptq(w, stats.h, K, N, quantizers, options.gptq) : rtn);
  const shift = meanShift(stats.mean, result.deq, w, K, N);
  const eRtn = quadraticError(rtn.deq, w, stats.h, K, N) * perRow;
  const eFinal = options.method !== 'none' ? quadraticError(result.deq, w, stats.h, K, N) * perRow : eRtn;
  const shiftNorm2 = shift.reduce((s, v) => s + v * v, 0);
  // With quantized activations the mean output is E[Q(x)]·Ŵ: the activation quantizer's mean error goes through Ŵ.
  const actShift = activationShift ? throughWeight(activationShift, result.deq, K, N) : undefined;
  if (actShift) for (let n = 0; n < N; n++) shift[n] += actShift[n]!;
  const branches: Branch[] = plan.branches.map((br) => ({ ...br, wq: takeIntegers(result.q, br, K, N) }));
  const reconstruction: LayerReconstruction = {
    method: options.method,
    error: { rtn: eRtn, final: eFinal },
    errorCorrected: options.biasCorrection ? Math.max(0, eFinal - shiftNorm2) : eFinal,
    meanShift: Math.sqrt(shiftNorm2),
    ...(actShift ? { activationShift: Math.sqrt(actShift.reduce((s, v) => s + v * v, 0)) } : {}),
    dead: result.dead,
    ...(learnt ? { flipped: learnt.flipped } : {}),
  };
  const out: LayerPlan = { ...plan, branches, reconstruction };
  if (options.biasCorrection) out.biasShift = Float32Array.from(shift, (v) => -v);
  return out;
}

/** `μ·(Ŵ − W)`: the mean output change over the calibration rows (1×N). */
export function meanShift(mean: Float64Array, deq: Float32Array, w: Float32Array, K: number, N: number): Float64Array {
  const out = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    const m = mean[k]!;
    if (m === 0) continue;
    const at = k * N;
    for (let n = 0; n < N; n++) out[n] += m * (deq[at + n]! - w[at + n]!);
  }
  return out;
}

/** `e·Ŵ` for a 1×K row `e` (1×N). */
function throughWeight(e: Float64Array, deq: Float32Array, K: number, N: number): Float64Array {
  const out = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    const f = e[k]!;
    if (f === 0) continue;
    for (let n = 0; n < N; n++) out[n] += f * deq[k * N + n]!;
  }
  return out;
}

/** The branch's rows of the `[K, N]` integers, in the branch's storage type. */
function takeIntegers(q: Int32Array, br: Branch, K: number, N: number): Int8Array | Uint8Array {
  const out = newQuantArray(br.wType, br.K * N);
  if (!br.indices) {
    if (br.K !== K) throw new Error('internal: a whole-layer branch with fewer rows than the layer');
    out.set(q);
    return out;
  }
  br.indices.forEach((k, i) => out.set(q.subarray(k * N, (k + 1) * N), i * N));
  return out;
}
