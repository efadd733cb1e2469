/**
 * The mean error of a layer's activation quantizers, per input channel: `E[Q(x) − x]` over the
 * calibration rows, with the rows weighted as the scale search weighs them (α per chunk, the
 * reservoir's rows scaled up to the rows they stand for; see search.ts `rowSample`). Bias
 * correction with quantized activations folds `E[Q(x)]·Ŵ − E[x]·W` into the bias, i.e. this
 * vector through `Ŵ` on top of `μ·(Ŵ − W)` (METHOD.md "Reconstruction"). Clipping a tail is
 * what makes it non-zero; rounding alone averages out.
 *
 * It depends on the layer's form (each branch of a split layer has its own quantizer), so it
 * is computed for the split and the unsplit form of a layer with outliers.
 *
 * With `moments` (the `quantized` and `asymmetric` activation objectives), also the second
 * moments of the error with the same weights: `E[eᵀx]` and `E[eᵀe]` (K×K each, e = Q(x) − x),
 * which turn H into the Gram matrix of the quantized inputs without a second collection
 * (kernels/activation-objective.ts; docs/activation-objective.md says how close the
 * reservoir's estimate is to a collection of the quantized inputs).
 */
import type { ActivationMoments } from '../../kernels/activation-objective.ts';
import type { QuantConfig } from '../quant/config.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import { type ChannelRanges, type LayerPlan, type LayerScales, planLayer } from '../quant/plan.ts';
import { gemmNT } from './row-gemm.ts';
import { fakeQuant, type RowSample } from './search.ts';

/** `E[Q(x) − x]` per input channel for each form of a layer. */
export interface ActivationShift {
  single?: Float64Array;
  dual?: Float64Array;
  /** The error's second moments per form (asked for with `moments`). */
  moments?: Partial<Record<'single' | 'dual', ActivationMoments>>;
}

/**
 * The mean activation-quantizer error of each form of `layer` (the form `config` plans, and
 * the unsplit form too when `bothForms` and the layer splits).
 */
export function activationShift(layer: LinearLayer, rows: RowSample, config: QuantConfig, ranges: ChannelRanges | undefined, scales: LayerScales | undefined, bothForms: boolean, moments = false): ActivationShift {
  const out: ActivationShift = {};
  const plan = planLayer(layer, config, ranges, scales);
  const plans = [plan];
  out[plan.mode] = shiftOf(plan, rows);
  if (bothForms && plan.mode === 'dual') {
    const single = planLayer(layer, { ...config, dualScale: false }, ranges, scales);
    out.single = shiftOf(single, rows);
    plans.push(single);
  }
  if (moments) out.moments = Object.fromEntries(plans.map((p) => [p.mode, momentsOf(p, rows)]));
  return out;
}

/**
 * `E[eᵀx]` and `E[eᵀe]` over the weighted rows, for the quantizers of `plan`'s branches (a
 * channel without an activation quantizer has e = 0). Two `K × M × K` products of the
 * transposed, √f-scaled columns, summed in float64.
 */
export function momentsOf(plan: LayerPlan, rows: RowSample): ActivationMoments {
  const { K } = plan.layer;
  const { M } = rows;
  let total = 0;
  for (let i = 0; i < M; i++) total += rows.weight[i]!;
  const cross = new Float64Array(K * K);
  const square = new Float64Array(K * K);
  if (total === 0) return { K, cross, square };
  // Columns of √(f/Σf)·x and √(f/Σf)·e, channel-major ([K, M]).
  const xt = new Float64Array(K * M);
  const et = new Float64Array(K * M);
  const root = Float64Array.from(rows.weight, (f) => Math.sqrt(f / total));
  const column = new Float32Array(M);
  const quantized = new Float32Array(M);
  for (let k = 0; k < K; k++) for (let i = 0; i < M; i++) xt[k * M + i] = root[i]! * rows.x[i * K + k]!;
  for (const br of plan.branches) {
    if (!br.act) continue;
    const channels = br.indices ?? Int32Array.from({ length: K }, (_, k) => k);
    for (const k of channels) {
      for (let i = 0; i < M; i++) column[i] = rows.x[i * K + k]!;
      fakeQuant(column, br.act, quantized);
      for (let i = 0; i < M; i++) et[k * M + i] = root[i]! * (quantized[i]! - column[i]!);
    }
  }
  gemmNT(et, K, M, xt, K, cross);
  gemmNT(et, K, M, et, K, square);
  return { K, cross, square };
}

function shiftOf(plan: LayerPlan, rows: RowSample): Float64Array {
  const { K } = plan.layer;
  const out = new Float64Array(K);
  let total = 0;
  for (let i = 0; i < rows.M; i++) total += rows.weight[i]!;
  if (total === 0) return out;
  const column = new Float32Array(rows.M);
  const quantized = new Float32Array(rows.M);
  for (const br of plan.branches) {
    if (!br.act) continue;
    const channels = br.indices ?? Int32Array.from({ length: K }, (_, k) => k);
    for (const k of channels) {
      for (let i = 0; i < rows.M; i++) column[i] = rows.x[i * K + k]!;
      fakeQuant(column, br.act, quantized);
      let s = 0;
      for (let i = 0; i < rows.M; i++) s += rows.weight[i]! * (quantized[i]! - column[i]!);
      out[k] = s / total;
    }
  }
  return out;
}
