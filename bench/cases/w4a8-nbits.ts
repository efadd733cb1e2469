// W4A8 in its two kernels: the default (`w4a8-kernel integer`) stores the 4-bit values in int8
// and runs MatMulIntegerToFloat (exact, but twice the weight bytes of int4: at 1 row, a
// memory-bound call, it is 1.1–1.5× the 4-bit anchor); `w4a8-kernel nbits` runs the int4
// MatMulNBits (blocks of 256, accuracy level 4) behind the static QuantizeLinear →
// DequantizeLinear (MatMulNBits then requantizes that per block of 256 at run time, which is not
// the model's arithmetic). Timed on the Wan-shaped block with outliers
// (minmax, qoperator; the kernels do not depend on the pass) against fp32 and the 4-bit anchor,
// interleaved, 1 thread, rows 1, 16, 256, 1560 (docs/w8-weight-only.md, part b).
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { quantizeLinearLayersThreaded } from '../../src/passes/quant/quantize-layers.ts';
import { wanBlock } from '../../test/helpers/wan-block.ts';
import { ANCHOR_CASE_PLANS, ANCHOR_NBITS, activationRanges, timeAgainstAnchors } from '../anchors.ts';
import type { Entry } from '../interleaved.ts';
import type { BenchCase, BenchRow } from '../lib.ts';
import { quantizeMatMulNBits } from '../peers/onnxruntime-recipe.ts';

const w4a8Nbits: BenchCase = {
  name: 'w4a8-nbits',
  summary: 'W4A8 in MatMulIntegerToFloat (int8 storage, the emitted form) vs MatMulNBits behind a static Q→DQ, vs the 4-bit anchor and fp32 on the Wan-shaped block, 1 thread',
  legend: 'w4a8-nbits: as speed (ratio to fp32 in the same rounds; details.vsAnchor = ÷ the 4-bit MatMulNBits anchor).',
  async run(ctx) {
    const fp32 = join(ctx.tmpDir, 'outliers-fp32.onnx');
    saveModel(wanBlock({ outliers: true }), fp32);
    const anchor = join(ctx.tmpDir, 'anchor-nbits.onnx');
    quantizeMatMulNBits(fp32, anchor, { blockSize: 32, accuracyLevel: 4 });
    const ranges = await activationRanges(fp32);
    const forms = [
      { name: 'minmax qoperator W4A8 (MatMulIntegerToFloat, int8 storage)', aBits: 8, w4a8Kernel: 'integer' },
      { name: 'minmax qoperator W4A8 w4a8-kernel nbits (static Q→DQ + MatMulNBits b256)', aBits: 8, w4a8Kernel: 'nbits' },
      { name: 'minmax qoperator W4 (MatMulNBits b256, weight-only)', aBits: null, w4a8Kernel: 'integer' },
    ] as const;
    const entries: Entry[] = [
      { name: 'fp32', path: fp32 },
      { name: ANCHOR_NBITS, path: anchor },
    ];
    for (const [i, f] of forms.entries()) {
      const model = loadModel(fp32);
      const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format: 'qoperator', wBits: 4, aBits: f.aBits, dualScale: false, w4a8Kernel: f.w4a8Kernel };
      await quantizeLinearLayersThreaded(2, model, config, {}, f.aBits === null ? undefined : ranges, 'minmax');
      const path = join(ctx.tmpDir, `minmax-qoperator-${i}.onnx`);
      saveModel(model, path);
      entries.push({ name: f.name, path, anchor: ANCHOR_NBITS });
    }
    const rows: BenchRow[] = await timeAgainstAnchors(entries, ctx.log, ANCHOR_CASE_PLANS);
    return rows;
  },
};

export default w4a8Nbits;
