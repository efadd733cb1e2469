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
 */
import type { QuantConfig } from '../quant/config.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import { type ChannelRanges, type LayerPlan, type LayerScales, planLayer } from '../quant/plan.ts';
import { fakeQuant, type RowSample } from './search.ts';

/** `E[Q(x) − x]` per input channel for each form of a layer. */
export interface ActivationShift {
  single?: Float64Array;
  dual?: Float64Array;
}

/**
 * The mean activation-quantizer error of each form of `layer` (the form `config` plans, and
 * the unsplit form too when `bothForms` and the layer splits).
 */
export function activationShift(layer: LinearLayer, rows: RowSample, config: QuantConfig, ranges: ChannelRanges | undefined, scales: LayerScales | undefined, bothForms: boolean): ActivationShift {
  const out: ActivationShift = {};
  const plan = planLayer(layer, config, ranges, scales);
  out[plan.mode] = shiftOf(plan, rows);
  if (bothForms && plan.mode === 'dual') out.single = shiftOf(planLayer(layer, { ...config, dualScale: false }, ranges, scales), rows);
  return out;
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
