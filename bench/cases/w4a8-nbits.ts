// W4A8 at few rows: could 4-bit weights with a static 8-bit activation run in MatMulNBits? The
// emitted W4A8 form stores the 4-bit values in int8 and runs MatMulIntegerToFloat (exact, but
// twice the weight bytes of int4: at 1 row, a memory-bound call, it is 1.1–1.2× the 4-bit
// anchor). The alternative timed here: the W4 weight-only MatMulNBits (blocks of 256, accuracy
// level 4) behind the W4A8 model's own static QuantizeLinear → DequantizeLinear on each layer
// input (the same activation grid; MatMulNBits then requantizes that per block of 256 at run
// time, which is not the model's arithmetic). Timed on the Wan-shaped block with outliers
// (minmax, qoperator; the kernels do not depend on the pass) against fp32 and the 4-bit anchor,
// interleaved, 1 thread, rows 1, 16, 256, 1560 (docs/w8-weight-only.md, part b).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import type { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { quantizeLinearLayersThreaded } from '../../src/passes/quant/quantize-layers.ts';
import { wanBlock } from '../../test/helpers/wan-block.ts';
import type { BenchCase, BenchRow } from '../lib.ts';
import { quantizeMatMulNBits } from '../peers/onnxruntime-recipe.ts';
import { activationRanges, anchorTable, censusText, type Entry, type RoundPlan, timeAll } from './speed.ts';

const ANCHOR = 'anchor MatMulNBits W4 (block 32, level 4)';

const PLANS: Record<number, RoundPlan> = {
  1: { min: 61, max: 61, settled: 0, budgetMs: 60_000, warmup: true },
  16: { min: 41, max: 41, settled: 0, budgetMs: 60_000, warmup: false },
  256: { min: 9, max: 15, settled: 0.05, budgetMs: 60_000, warmup: false },
  1560: { min: 3, max: 5, settled: 0.03, budgetMs: 120_000, warmup: false },
};

/** The W4 weight-only model with each MatMulNBits's input fake-quantized by the W4A8 model's static quantizer of the same layer. */
export function nbitsBehindStaticQdq(w4Path: string, w4a8Path: string, out: string): void {
  const quantizers = new Map<string, { scale: Value; zeroPoint: Value }>();
  for (const n of loadModel(w4a8Path).graph.nodes()) {
    if (n.opType === 'QuantizeLinear') quantizers.set(n.metadata.get('qarvd.layer')!, { scale: n.input(1)!, zeroPoint: n.input(2)! });
  }
  const model = loadModel(w4Path);
  const g = model.graph;
  for (const n of g.nodes().filter((x) => x.opType === 'MatMulNBits')) {
    const layer = n.metadata.get('qarvd.layer')!;
    const q = quantizers.get(layer);
    if (!q) throw new Error(`no static quantizer for layer ${layer}`);
    const copy = (v: Value) => g.createInitializer(`${v.name}_w4a8`, (name) => Tensor.fromBytes(name, v.initializer!.dataType, v.initializer!.dims, v.initializer!.bytes()));
    const scale = copy(q.scale);
    const zeroPoint = copy(q.zeroPoint);
    const quant = new Node({ opType: 'QuantizeLinear', nameHint: `${layer}/x/QuantizeLinear`, inputs: [n.input(0), scale, zeroPoint] });
    const dequant = new Node({ opType: 'DequantizeLinear', nameHint: `${layer}/x/DequantizeLinear`, inputs: [quant.output(0), scale, zeroPoint] });
    g.insertBefore(n, quant, dequant);
    n.setInput(0, dequant.output(0));
  }
  saveModel(model, out);
}

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
    const paths: Record<string, string> = {};
    for (const [label, aBits] of [['W4A8', 8], ['W4', null]] as const) {
      const model = loadModel(fp32);
      const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format: 'qoperator', wBits: 4, aBits, dualScale: false };
      await quantizeLinearLayersThreaded(2, model, config, {}, aBits === null ? undefined : ranges, 'minmax');
      paths[label] = join(ctx.tmpDir, `minmax-qoperator-${label}.onnx`);
      saveModel(model, paths[label]!);
    }
    const behind = join(ctx.tmpDir, 'minmax-W4A8-nbits-behind-qdq.onnx');
    nbitsBehindStaticQdq(paths.W4!, paths.W4A8!, behind);
    const entries: Entry[] = [
      { name: 'fp32', path: fp32 },
      { name: ANCHOR, path: anchor },
      { name: 'minmax qoperator W4A8 (MatMulIntegerToFloat, int8 storage)', path: paths.W4A8!, anchor: ANCHOR },
      { name: 'minmax W4A8 as static Q→DQ + MatMulNBits b256', path: behind, anchor: ANCHOR },
      { name: 'minmax qoperator W4 (MatMulNBits b256, weight-only)', path: paths.W4!, anchor: ANCHOR },
    ];
    for (const e of entries) {
      e.census = await censusText(e.path);
      ctx.log(`${e.name}: ${(statSync(e.path).size / 2 ** 20).toFixed(1)} MiB; optimized graph: ${e.census}`);
    }
    const rows: BenchRow[] = await timeAll(entries, 'outliers', 1, ctx.log, PLANS);
    anchorTable(rows, ctx.log);
    return rows;
  },
};

export default w4a8Nbits;
