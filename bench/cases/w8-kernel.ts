// 8-bit weight-only layers in their two kernels (docs/w8-weight-only.md), on the
// Wan2.1-1.3B-shaped block with planted outlier rows (test/helpers/wan-block.ts): `w8-kernel
// nbits` (MatMulNBits, accuracy level 4, blocks of 256) and `w8-kernel dynamic`
// (DynamicQuantizeMatMul), minmax and q-arvd, qdq and qoperator, timed against fp32 and
// onnxruntime's own quantize_dynamic output (the anchor of 8-bit weight-only) in the same
// process, interleaved (one call of each model per round), 1 thread, rows 1, 16, 256 and 1560.
// More rounds than the speed case gives these rows, which is what a 1.0-vs-anchor verdict on a
// loaded machine needs. The quantization is the speed case's (min/max, q-arvd splitting every
// layer with outlier channels, round to nearest): the ops are what is timed.
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { quantizeLinearLayersThreaded } from '../../src/passes/quant/quantize-layers.ts';
import { wanBlock } from '../../test/helpers/wan-block.ts';
import { ANCHOR_CASE_PLANS, ANCHOR_DYNAMIC, timeAgainstAnchors } from '../anchors.ts';
import type { Entry, RoundPlan } from '../interleaved.ts';
import type { BenchCase, BenchRow } from '../lib.ts';
import { quantizeDynamicInt8 } from '../peers/onnxruntime-recipe.ts';

/** The anchor cases' rounds, more of them at 1560 (fp32 about 3.6 s a call): what 3 minutes allow. */
const PLANS: Record<number, RoundPlan> = { ...ANCHOR_CASE_PLANS, 1560: { min: 5, max: 7, settled: 0.03, budgetMs: 180_000, warmup: false } };

const w8Kernel: BenchCase = {
  name: 'w8-kernel',
  summary: '8-bit weight-only: MatMulNBits (w8-kernel nbits) vs DynamicQuantizeMatMul (w8-kernel dynamic) vs quantize_dynamic and fp32 on the Wan-shaped block, 1 thread',
  legend: 'w8-kernel: as speed (ratio = median over rounds of model ÷ fp32 in that round; details.vsAnchor = ÷ quantize_dynamic in the same rounds; details.spreadMin/Max, p25/p75, best).',
  async run(ctx) {
    const fp32 = join(ctx.tmpDir, 'outliers-fp32.onnx');
    saveModel(wanBlock({ outliers: true }), fp32);
    const anchor = join(ctx.tmpDir, 'anchor-dynamic.onnx');
    quantizeDynamicInt8(fp32, anchor);
    const entries: Entry[] = [{ name: 'fp32', path: fp32 }, { name: ANCHOR_DYNAMIC, path: anchor }];
    for (const pass of ['minmax', 'q-arvd'] as const) {
      for (const format of ['qdq', 'qoperator'] as const) {
        for (const kernel of ['nbits', 'dynamic'] as const) {
          const path = join(ctx.tmpDir, `${pass}-${format}-${kernel}.onnx`);
          const model = loadModel(fp32);
          const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format, wBits: 8, aBits: null, dualScale: pass === 'q-arvd', w8Kernel: kernel };
          await quantizeLinearLayersThreaded(2, model, config, {}, undefined, pass);
          saveModel(model, path);
          entries.push({ name: `${pass} ${format} W8 ${kernel}`, path, anchor: ANCHOR_DYNAMIC });
        }
      }
    }
    const rows: BenchRow[] = await timeAgainstAnchors(entries, ctx.log, PLANS);
    return rows;
  },
};

export default w8Kernel;
