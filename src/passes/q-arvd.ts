/**
 * `q-arvd`: outlier-aware adaptive dual-scale quantization of linear layers (Q-ARVD, S2).
 *
 * Rules:
 * 1. Candidates are the linear layers with a constant weight found by `findLinearLayers`
 *    (MatMul, Gemm transA=0, weights behind Transpose/Cast/Identity, biases folded); it does
 *    not fire on activation × activation MatMuls, non-2-D or non-float weights, weights
 *    shared with non-linear users, K < min-k, or names filtered out by include/exclude —
 *    each is listed in the report with its reason.
 * 2. Per layer, input channels whose weight-row norm has a modified z-score above tau and
 *    a norm above gamma × median are outliers; the count is rounded up to align, capped at K/2.
 * 3. A layer with outliers (and dual-scale not false) becomes two sub-matmuls over the outlier and
 *    the normal channels, each with its own per-output-channel weight scales and its own
 *    per-tensor activation quantizer; other layers get one quantizer — with `scale-search
 *    false` (and always for weight-only), exactly what `minmax` emits.
 * 4. Activation statistics come from the calibration module, run in onnxruntime-node; by
 *    default scales are then chosen among min/max and clipping percentiles by the layer's
 *    output error on calibration rows, weighted per chunk by the S1 sensitivity α when the
 *    module is a rollout.
 * 5. With calibration data (a module or a prompt list; weight-only runs too), each layer's
 *    weights are reconstructed by GPTQ against `H = Σ_c α_c Σ xᵀx` of its input with the
 *    quantizers fixed (`reconstruct adaround`: learnt rounding, slower; `reconstruct none`:
 *    round to nearest), the mean output change is folded
 *    into the bias (`bias-correction`), and under `dual-scale auto` a split is kept only where
 *    it lowers the layer's α-weighted error; see quant/reconstruct.ts.
 * 6. The decision is written to the report and to the layer's final node metadata.
 */
import { definePass } from './pass.ts';
import { QUANT_STATISTICS, runQuantPass } from './quant/run-quant-pass.ts';
import { S2_OPTIONS, SHARED_QUANT_OPTIONS, scopeOption } from './quant/quant-options.ts';

export default definePass({
  name: 'q-arvd',
  summary: 'Quantize linear layers with outlier-aware dual-scale quantizers (S2), frame-weighted calibration (S1) and GPTQ reconstruction',
  options: { ...SHARED_QUANT_OPTIONS, ...scopeOption('outer-w8', 'float'), ...S2_OPTIONS },
  statistics: QUANT_STATISTICS,
  run: (model, ctx, options) => runQuantPass(model, ctx, options, 'q-arvd'),
});
