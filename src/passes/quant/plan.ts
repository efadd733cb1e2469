import { detectOutliers, type OutlierOptions, type OutlierResult } from '../../kernels/outliers.ts';
import { allRows, groupParams, quantizeGroups, relativeErrorOf, rowGroups } from '../../kernels/row-groups.ts';
import {
  computeScaleZeroPoint,
  quantizeBlocked,
  type QuantType,
} from '../../kernels/quantize.ts';
import { layerConfig, type QuantConfig } from './config.ts';
import { takeRows, weightMatrixView } from './layer-weights.ts';
import type { LinearLayer } from './linear-layers.ts';
import { refuseNonFinite, weightLabel } from './finite-weights.ts';

/** Per-input-channel activation range of one layer input, from calibration. */
export interface ChannelRanges {
  min: Float32Array;
  max: Float32Array;
}

/** A static per-tensor activation quantizer. */
export interface ActivationQuant {
  type: QuantType;
  scale: number;
  zeroPoint: number;
  /** Float range of the grid when it is narrower than the storage type (6-bit), else undefined. */
  clip?: [number, number];
  /** Calibrated range the parameters came from. */
  range: [number, number];
}

/** One sub-matmul of a layer: rows of W (all, the outliers, or the rest) with their quantizers. */
export interface Branch {
  role: 'all' | 'outlier' | 'normal';
  /** Input channels of this branch (undefined for `all`). */
  indices?: Int32Array;
  K: number;
  wType: QuantType;
  /** Quantized weight `[K_b, N]`, one value per element. */
  wq: Int8Array | Uint8Array;
  /** `[N]` per output channel, or `[ceil(K_b / blockSize), N]` with blocks. */
  wScales: Float32Array;
  wZeroPoints: Int32Array;
  /** Rows of the branch per weight quantization block; undefined: one scale per output channel. */
  blockSize?: number;
  act?: ActivationQuant;
}

/** Scales chosen by calibration for one branch (by the search, or read from a calibration table). */
export interface BranchScales {
  act: ActivationQuant;
  /** Per-output-channel weight scales; plain min/max when absent. */
  weight?: { scales: Float32Array; zeroPoints: Int32Array };
}

/** Calibrated scales of one layer, by branch role. */
export type LayerScales = Partial<Record<Branch['role'], BranchScales>>;

/** What the pass decided for one layer. */
export interface LayerPlan {
  layer: LinearLayer;
  mode: 'dual' | 'single';
  outliers: OutlierResult;
  branches: Branch[];
  /** Relative Frobenius error of the dequantized weight: one scale per channel, and split. */
  weightError: { single: number; dual?: number };
  /** Set when calibration statistics reconstructed the weights (see reconstruct.ts). */
  reconstruction?: LayerReconstruction;
  /** Added to the layer's bias (bias correction); a layer without a bias gets this one. */
  biasShift?: Float32Array;
  /** `dual-scale auto`: the weighted error per row of both forms, and which was kept. */
  splitChoice?: { single: number; dual: number };
  /** Set when the layer is emitted in float compute (small-layers.ts): why. */
  floatCompute?: string;
}

/** What reconstruction did to one layer (for the report). */
export interface LayerReconstruction {
  method: 'gptq' | 'adaround' | 'none';
  /** Weighted output error per calibration row: round to nearest, and the final weights (both before bias correction). */
  error: { rtn: number; final: number };
  /** The final weights' error once the bias absorbs the mean shift (equal to `final` without bias correction). */
  errorCorrected: number;
  /** ‖μΔ‖ of the final weights: the size of the shift bias correction removes. */
  meanShift: number;
  /** ‖E[Q(x) − x]·Ŵ‖: the activation quantizers' mean error through the weights, also removed (quantized activations). */
  activationShift?: number;
  /** Dead input channels (never non-zero in calibration). */
  dead: number;
  /** GPTQ's damping fraction, or `rtn` where `damp auto` chose round to nearest. */
  damp?: number | 'rtn';
  /** Set where H was not positive definite with this requested damping, which GPTQ raised to `damp` (kernels/gptq.ts). */
  dampRequested?: number;
  /** `damp auto`: each candidate's two-fold held-out error per row (after bias correction when on). */
  heldOut?: Record<string, number>;
  /** AdaRound: weights rounded the other way than to nearest. */
  flipped?: number;
  /** AdaRound: set when the learnt rounding's error was above round to nearest's, which the layer keeps. */
  keptRoundToNearest?: true;
  /** The activation objective the errors above are measured in, when not `fp32` (kernels/activation-objective.ts). */
  objective?: 'quantized' | 'asymmetric';
  /** Below 1 where the estimated activation correction of H was shrunk to keep H̃ positive definite (kernels/activation-objective.ts `correctionScale`). */
  correctionScale?: number;
}

/**
 * Decides and quantizes one layer (METHOD.md S2): detects outlier input channels from the
 * weight's row norms, splits when there are any (and splitting is on), and quantizes each
 * branch per output channel with min/max scales. Activation ranges, when given, become one
 * per-tensor quantizer per branch. Calibrated `scales`, when given for a branch, replace its
 * min/max quantizers (the weight is then quantized with the given per-channel scales).
 */
export function planLayer(layer: LinearLayer, passConfig: QuantConfig, ranges?: ChannelRanges, scales?: LayerScales, weights?: WeightPlan): LayerPlan {
  const { K, N } = layer;
  const config = layerConfig(passConfig, layer);
  let w: Float32Array | undefined;
  const matrix = () => (w ??= weightMatrixView(layer));
  const { outliers, mode, branches, weightError } = weights ?? planWeights(matrix(), K, N, config, weightLabel(layer));
  if (config.aBits !== null && ranges) {
    for (const b of branches) b.act = activationQuant(ranges, b.indices, config);
  }
  if (scales) {
    for (const b of branches) {
      const given = scales[b.role];
      if (!given) continue;
      if (config.aBits !== null) b.act = given.act;
      // Searched weight scales are per output channel; blocked branches keep their min/max blocks.
      if (given.weight && !b.blockSize) {
        const wb = b.indices ? takeRows(matrix(), N, b.indices) : matrix();
        b.wScales = given.weight.scales;
        b.wZeroPoints = given.weight.zeroPoints;
        b.wq = quantizeBlocked(wb, b.K, N, b.K, b.wScales, b.wZeroPoints, b.wType);
      }
    }
  }
  return { layer, mode, outliers, branches, weightError };
}

/** The part of a layer's plan that depends on its weight alone (no graph, no calibration): what a worker thread computes. */
export interface WeightPlan {
  mode: LayerPlan['mode'];
  outliers: OutlierResult;
  /** Branches without activation quantizers. */
  branches: Branch[];
  weightError: LayerPlan['weightError'];
}

/**
 * S2 on a row-major `[K, N]` weight: outlier channels from the row norms, then min/max
 * quantization of the emitted form (split or not) and the relative error of both forms (the
 * split's is reported even when splitting is off, so a report shows what S2 would gain).
 */
export function planWeights(w: Float32Array, K: number, N: number, config: QuantConfig, label = 'a weight'): WeightPlan {
  const { wType, B, whole, singleParams, outliers } = singleFormAndOutliers(w, K, N, config, label);
  const block = B ? { blockSize: B } : {};
  const split = config.dualScale && outliers.indices.length > 0;
  const single = quantizeGroups(w, K, N, whole, singleParams, B, wType, !split);
  const weightError: LayerPlan['weightError'] = { single: relativeErrorOf(single) };
  let branches: Branch[] = [{ role: 'all', K, wType, wq: single.wq?.[0] as Int8Array, wScales: singleParams[0]!.scales, wZeroPoints: singleParams[0]!.zeroPoints, ...block }];
  if (outliers.indices.length > 0) {
    const parts = [outliers.indices, outliers.normal];
    const groups = rowGroups(K, parts);
    const params = groupParams(w, K, N, groups, B, wType, config.wSymmetric);
    const dual = quantizeGroups(w, K, N, groups, params, B, wType, split);
    weightError.dual = relativeErrorOf(dual);
    if (split) {
      branches = (['outlier', 'normal'] as const).map((role, g) => ({ role, indices: parts[g]!, K: parts[g]!.length, wType, wq: dual.wq![g]!, wScales: params[g]!.scales, wZeroPoints: params[g]!.zeroPoints, ...block }));
    }
  }
  return { mode: split ? 'dual' : 'single', outliers, branches, weightError };
}

/**
 * S2's outlier channels of a row-major `[K, N]` weight, exactly as {@link planWeights} finds
 * them (the same row norms, the same rule): what `fold-split` reads before any layer is planned.
 */
export function weightOutliers(w: Float32Array, K: number, N: number, config: QuantConfig, label = 'a weight'): { outliers: OutlierResult; norms: Float64Array } {
  const { outliers, norms } = singleFormAndOutliers(w, K, N, config, label);
  return { outliers, norms };
}

/** S2's detection options from the configuration. */
export function outlierOptions(config: QuantConfig): OutlierOptions {
  return { tau: config.tau, gamma: config.gamma, align: config.align };
}

/**
 * The single form's scales and the row norms S2 needs, in one pass over the weight; then the
 * outliers. A non-finite weight is refused here, from the norms, before any value is quantized.
 */
function singleFormAndOutliers(w: Float32Array, K: number, N: number, config: QuantConfig, label: string) {
  // 8-bit weights are int8: with uint8 activations onnxruntime then runs its u8×s8 kernels
  // (VNNI, AMX, Arm dot products), about twice as fast as the u8×u8 ones uint8 weights select.
  // On AVX2 without VNNI those kernels add pairs of products in int16 and saturate on
  // full-range weights (measured: 0.58 relative logit error on stories260K W8A8, 0.015 with
  // uint8); reduce-range keeps such CPUs exact with 7-bit weights.
  const wType: QuantType = config.wBits === 4 ? 'int4' : config.reduceRange ? 'int7' : 'int8';
  const B = config.blockSize > 0 ? config.blockSize : undefined;
  // Only the emitted form is kept quantized; the other's error needs its scales alone.
  const whole = allRows(K);
  const norms = new Float64Array(K);
  const singleParams = groupParams(w, K, N, whole, B, wType, config.wSymmetric, norms);
  let normSum = 0;
  for (let k = 0; k < K; k++) normSum += norms[k]!;
  refuseNonFinite(normSum, w, N, label);
  const outliers = detectOutliers(norms, outlierOptions(config));
  return { wType, B, whole, singleParams, outliers, norms };
}

/** A per-tensor quantizer for the channels `indices` (all when undefined) of a layer input. */
export function activationQuant(ranges: ChannelRanges, indices: Int32Array | undefined, config: QuantConfig): ActivationQuant {
  let lo = Infinity;
  let hi = -Infinity;
  const visit = (k: number) => {
    if (ranges.min[k]! < lo) lo = ranges.min[k]!;
    if (ranges.max[k]! > hi) hi = ranges.max[k]!;
  };
  if (indices) indices.forEach(visit);
  else for (let k = 0; k < ranges.min.length; k++) visit(k);
  return activationQuantForRange(lo, hi, config);
}

/** A per-tensor activation quantizer covering [lo, hi] at the configured bits. */
export function activationQuantForRange(lo: number, hi: number, config: QuantConfig): ActivationQuant {
  const type: QuantType = config.aSymmetric ? 'int8' : 'uint8';
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`activation range [${lo}, ${hi}] is not finite`);
  if (config.aBits === 8) {
    const { scale, zeroPoint } = computeScaleZeroPoint(lo, hi, type, config.aSymmetric);
    return { type, scale, zeroPoint, range: [lo, hi] };
  }
  // 6 bits inside an 8-bit container: a 64-level grid, and a Clip to its float range
  // because QuantizeLinear would otherwise saturate at the container's limits.
  const levels = 2 ** (config.aBits ?? 8) - 1;
  const sym = config.aSymmetric;
  const lo0 = Math.min(lo, 0);
  const hi0 = Math.max(hi, 0);
  const qmin = sym ? -((levels + 1) / 2) : 0;
  const qmax = sym ? (levels + 1) / 2 - 1 : levels;
  const scale = Math.fround(sym ? Math.max(Math.abs(lo0), Math.abs(hi0)) / qmax || 1e-8 : (hi0 - lo0) / (qmax - qmin) || 1e-8);
  const zeroPoint = sym ? 0 : Math.min(qmax, Math.max(qmin, Math.round(qmin - lo0 / scale)));
  const clip: [number, number] = [Math.fround((qmin - zeroPoint) * scale), Math.fround((qmax - zeroPoint) * scale)];
  return { type, scale, zeroPoint, clip, range: [lo, hi] };
}
