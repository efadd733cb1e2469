/**
 * `minmax`: the MinMax baseline of the Q-ARVD paper's tables — per-output-channel min/max
 * weights and per-tensor min/max activations, no splitting.
 *
 * Rules: the same layer selection, formats and options as `q-arvd` (it shares the code
 * path, so a comparison differs only in the method), with S2 off: every layer gets one
 * quantizer; round to nearest. `bias-correction` (off by default, so the baseline stays the
 * paper's) folds the mean output change into the bias when calibration data is given.
 */
import { definePass } from './pass.ts';
import { QUANT_STATISTICS, runQuantPass } from './quant/run-quant-pass.ts';
import { biasCorrectionOption, SHARED_QUANT_OPTIONS, scopeOption } from './quant/quant-options.ts';

export default definePass({
  name: 'minmax',
  summary: 'Quantize linear layers with plain min/max quantizers (the paper\'s MinMax baseline)',
  options: { ...SHARED_QUANT_OPTIONS, ...scopeOption('all', 'quantized'), ...biasCorrectionOption(false) },
  statistics: QUANT_STATISTICS,
  run: (model, ctx, options) => runQuantPass(model, ctx, { ...options, dualScale: false }, 'minmax'),
});
