// Where a dual-scale (split) layer's extra time goes: the Wan-shaped block with planted outliers
// (test/helpers/wan-block.ts) quantized by minmax and q-arvd in the forms given, each opened in
// onnxruntime-node with `enableProfiling` (1 thread) and run `runs` times at `rows` rows; the
// per-node kernel times of the trace are summed per node (median over the runs) and printed
// with the optimized graph's nodes. docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/dual-profile.ts <outdir> [rows=1560] [runs=5] [forms=qdq-W8A8,qoperator-W8A8,qdq-W4,qoperator-W4] [fp32.onnx] [--fold]
//
// fp32.onnx: quantize that model (the block with its channels permuted by
// bench/fold-experiment.ts) instead of the block built here.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../src/graph/serde/io.ts';
import { seededRandom } from '../src/kernels/random.ts';
import { calibrate } from '../src/passes/calibration/calibrate.ts';
import { checkCalibrationModule } from '../src/passes/calibration/module.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../src/passes/quant/config.ts';
import { findLinearLayers } from '../src/passes/quant/linear-layers.ts';
import { foldSplits } from '../src/passes/quant/fold-split.ts';
import { quantizeLinearLayersThreaded } from '../src/passes/quant/quantize-layers.ts';
import { WAN_SHAPE, wanBlock } from '../test/helpers/wan-block.ts';

const [outDir = '/tmp/dual-profile', rowsArg = '1560', runsArg = '5', formsArg = 'qdq-W8A8,qoperator-W8A8,qdq-W4,qoperator-W4', fp32From] = process.argv.slice(2);
const rows = Number(rowsArg);
const runs = Number(runsArg);
const BITS: Record<string, { wBits: 4 | 8; aBits: 8 | null }> = { W8A8: { wBits: 8, aBits: 8 }, W4A8: { wBits: 4, aBits: 8 }, W8: { wBits: 8, aBits: null }, W4: { wBits: 4, aBits: null } };

const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

async function main(): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const fp32 = join(outDir, 'fp32.onnx');
  if (fp32From) copyFileSync(fp32From, fp32);
  else saveModel(wanBlock({ outliers: true }), fp32);
  // --fold: also q-arvd of the block after fold-split (src/passes/quant/fold-split.ts, as the
  // pass runs it: before calibration), written as q-arvd-<form>-fold.onnx; and -foldffn with
  // only ffn.2 folded, as in a real model, where o reads the attention output (a Reshape), not q.
  const fold = process.argv.includes('--fold');
  const calibrated = async (folded?: string[]) => {
    const model = loadModel(fp32);
    if (folded) console.log(`fold-split: ${JSON.stringify(foldSplits(model, findLinearLayers(model.graph, { include: folded }).layers, DEFAULT_QUANT_CONFIG).folds)}`);
    const { ranges } = await calibrate(model, findLinearLayers(model.graph).layers, checkCalibrationModule({ samples: 4, feeds: (ctx) => [{ feeds: { x: new ort.Tensor('float32', ctx.random.normalArray(64 * WAN_SHAPE.dim), [64, WAN_SHAPE.dim]) } }] }), DEFAULT_QUANT_CONFIG, { scaleSearch: false, frameWeighting: false });
    return { model, ranges };
  };
  const variants = [{ suffix: '', ...(await calibrated()) }, ...(fold ? [{ suffix: '-fold', ...(await calibrated(['*'])) }, { suffix: '-foldffn', ...(await calibrated(['ffn.2*'])) }] : [])];
  const random = seededRandom(3);
  const paths: [string, string][] = [];
  for (const f of formsArg.split(',')) {
    const [format, bits] = f.split('-') as ['qdq' | 'qoperator', string];
    for (const [pass, { suffix, model, ranges }] of [['minmax', variants[0]!], ...variants.map((v) => ['q-arvd', v] as const)] as const) {
      const path = join(outDir, `${pass}-${format}-${bits}${suffix}.onnx`);
      const m = loadModel(fp32);
      // The folded block: its permuted weights in place of the file's (the same tensors the pass would quantize).
      for (const [name, v] of model.graph.initializers) m.graph.initializers.get(name)!.initializer = v.initializer;
      const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format, wBits: BITS[bits]!.wBits, aBits: BITS[bits]!.aBits, dualScale: pass === 'q-arvd' };
      await quantizeLinearLayersThreaded(2, m, config, {}, BITS[bits]!.aBits === null ? undefined : ranges, pass);
      saveModel(m, path);
      paths.push([`${pass} ${format} ${bits}${suffix}`, path]);
    }
  }
  const x = new ort.Tensor('float32', random.normalArray(rows * WAN_SHAPE.dim), [rows, WAN_SHAPE.dim]);
  for (const [name, path] of paths) {
    const prefix = join(outDir, `prof-${name.replace(/\W+/g, '-')}`);
    for (const f of readdirSync(outDir)) if (join(outDir, f).startsWith(prefix)) rmSync(join(outDir, f));
    const optimized = `${prefix}-optimized.onnx`;
    const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3, enableProfiling: true, profileFilePrefix: prefix, optimizedModelFilePath: optimized });
    await s.run({ x }); // warm-up
    const wall: number[] = [];
    for (let r = 0; r < runs; r++) { const t = performance.now(); await s.run({ x }); wall.push(performance.now() - t); }
    s.endProfiling();
    await s.release();
    const file = readdirSync(outDir).map((f) => join(outDir, f)).find((f) => f.startsWith(prefix) && f.endsWith('.json'))!;
    const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
    // Per node: its kernel_time events, the first (warm-up) dropped.
    const perNode = new Map<string, { op: string; durs: number[] }>();
    let runIdx = -1;
    for (const e of events) {
      if (e.cat === 'Session' && e.name === 'model_run') runIdx++;
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const n = e.name.replace(/_kernel_time$/, '');
      if (!perNode.has(n)) perNode.set(n, { op: e.args?.op_name ?? '?', durs: [] });
      perNode.get(n)!.durs.push(e.dur / 1000);
    }
    const opt = loadModel(optimized);
    const optNodes = [...opt.graph.nodes()].map((n) => `${n.opType}(${n.name})`);
    let total = 0;
    const lines: string[] = [];
    for (const [n, { op, durs }] of perNode) {
      const d = durs.slice(durs.length - runs); // the timed runs
      const m = median(d);
      total += m;
      lines.push(`  ${op.padEnd(22)} ${n.padEnd(60)} ${m.toFixed(2).padStart(9)} ms [${Math.min(...d).toFixed(1)}–${Math.max(...d).toFixed(1)}]`);
    }
    console.log(`${name}: wall median ${median(wall).toFixed(1)} ms [${Math.min(...wall).toFixed(1)}–${Math.max(...wall).toFixed(1)}], nodes sum ${total.toFixed(1)} ms, load ${loadavg()[0]!.toFixed(2)}`);
    console.log(lines.join('\n'));
    console.log(`  optimized graph: ${optNodes.join(' ')}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
