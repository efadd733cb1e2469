// Inference speed of every emitted form against fp32, in onnxruntime-node, on the
// Wan2.1-1.3B-shaped block (test/helpers/wan-block.ts: q and o 1536×1536, ffn.0 1536×8960, Gelu,
// ffn.2 8960×1536, biases; one variant with ~2% planted outlier input rows in o and ffn.2, one
// without). Each pass × format × bit width is quantized in code, then every model is timed
// against fp32 in the same process, interleaved (one call of each model per round, fp32
// included, so load on the machine hits all alike), at rows 1, 16, 256, 1560 and 1 and 2
// threads. A row's ratio is the median over rounds of (model ÷ fp32 in the same round), with the
// smallest and largest round's ratio as its spread. The op-type census of each optimized graph
// (what onnxruntime actually runs) and the file sizes are recorded beside the timings.
//
// Quantization here is the emission under test, not the method's accuracy: the layers are
// rewritten by the passes' shared code (quantizeLinearLayers) with min/max ranges collected once
// per variant (four samples of 64 standard-normal rows), q-arvd with every layer that has outlier
// channels split (`dual-scale true`), round to nearest: GPTQ, bias correction and the scale
// search change the integers and scales, not the ops.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { type CalibrationModule, checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { optimizedCensus } from '../../test/helpers/census.ts';
import { WAN_SHAPE, wanBlock } from '../../test/helpers/wan-block.ts';
import { type BenchCase, type BenchRow, collectGarbage, median, round } from '../lib.ts';

const ROWS = [1, 16, 256, 1560];
const THREADS = [1, 2];
/** Rounds per row count: many where a call takes milliseconds (and load on the machine dominates), few where fp32 takes seconds. */
const ROUNDS: Record<number, number> = { 1: 41, 16: 25, 256: 5, 1560: 3 };
const BITS = [
  { label: 'W8A8', wBits: 8, aBits: 8 },
  { label: 'W4A8', wBits: 4, aBits: 8 },
  { label: 'W4A6', wBits: 4, aBits: 6 },
  { label: 'W8', wBits: 8, aBits: null },
  { label: 'W4', wBits: 4, aBits: null },
] as const;

/** One model to time: ours or an anchor. */
interface Entry {
  name: string;
  path: string;
  census?: string;
}

/** Four samples of 64 seeded standard-normal rows: the activation ranges of the block. */
function calibration(dim: number): CalibrationModule {
  return {
    samples: 4,
    feeds: (ctx) => [{ feeds: { x: new ort.Tensor('float32', ctx.random.normalArray(64 * dim), [64, dim]) } }],
  };
}

/** Min/max activation ranges of every layer input from {@link calibration}, collected once per variant. */
async function activationRanges(fp32: string): Promise<ActivationRanges> {
  const model = loadModel(fp32);
  const { layers } = findLinearLayers(model.graph);
  const { ranges } = await calibrate(model, layers, checkCalibrationModule(calibration(WAN_SHAPE.dim)), DEFAULT_QUANT_CONFIG, { scaleSearch: false, frameWeighting: false });
  return ranges;
}

/** Every pass × format × bit width, quantized from the fp32 file with the variant's ranges. */
async function quantizeAll(fp32: string, dir: string, variant: string, log: (m: string) => void): Promise<Entry[]> {
  const ranges = await activationRanges(fp32);
  const out: Entry[] = [];
  // Without outlier channels q-arvd emits exactly minmax's graph (dual-scale.test.ts checks
  // it), so the plain variant times minmax only.
  for (const pass of variant === 'plain' ? (['minmax'] as const) : (['minmax', 'q-arvd'] as const)) {
    for (const format of ['qdq', 'qoperator'] as const) {
      for (const b of BITS) {
        const name = `${pass} ${format} ${b.label}`;
        const path = join(dir, `${variant}-${pass}-${format}-${b.label}.onnx`);
        const t0 = performance.now();
        const model = loadModel(fp32);
        const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format, wBits: b.wBits, aBits: b.aBits, dualScale: pass === 'q-arvd' };
        const report = quantizeLinearLayers(model, config, {}, b.aBits === null ? undefined : ranges, pass);
        saveModel(model, path);
        log(`${variant}: ${name}: ${report.totals.layers.dual} dual-scale, ${report.totals.layers.single} single in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        out.push({ name, path });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ANCHORS: onnxruntime's own quantizers on the same block (bench/peers/onnxruntime-recipe.ts,
// written on another branch). Used when that module exists; the rows are named `anchor …`.
const RECIPE = join(import.meta.dirname, '..', 'peers', 'onnxruntime-recipe.ts');

async function anchorModels(fp32: string, dir: string, variant: string, log: (m: string) => void): Promise<Entry[]> {
  if (!existsSync(RECIPE)) {
    log('anchors: bench/peers/onnxruntime-recipe.ts not present; no anchor rows');
    return [];
  }
  const recipe = (await import(pathToFileURL(RECIPE).href)) as Record<string, (...args: unknown[]) => unknown>;
  const random = seededRandom(7);
  const feeds = Array.from({ length: 4 }, () => ({ x: new ort.Tensor('float32', random.normalArray(64 * WAN_SHAPE.dim), [64, WAN_SHAPE.dim]) }));
  const recipes: [string, (out: string) => unknown][] = [
    ['anchor quantize_static QDQ W8A8', (o) => recipe.quantizeStaticQdq?.(fp32, o, { calibration: feeds })],
    ['anchor quantize_dynamic W8', (o) => recipe.quantizeDynamicInt8?.(fp32, o)],
    ['anchor MatMulNBits W4 (block 32, level 4)', (o) => recipe.quantizeMatMulNBits?.(fp32, o, { blockSize: 32, accuracyLevel: 4 })],
  ];
  const out: Entry[] = [];
  for (const [name, make] of recipes) {
    const path = join(dir, `${variant}-${name.replace(/[^\w]+/g, '-')}.onnx`);
    try {
      await make(path);
      if (existsSync(path)) out.push({ name, path });
      else log(`anchors: ${name}: the recipe module has no such function`);
    } catch (e) {
      log(`anchors: ${name} failed: ${(e as Error).message}`);
    }
  }
  return out;
}
// ---------------------------------------------------------------------------------------------

/** Op counts of the optimized graph, `Op×n` joined. */
async function censusText(path: string): Promise<string> {
  const c = await optimizedCensus(path);
  const ops = Object.entries(c.ops).sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op}×${n}`).join(' ');
  return c.floatWeights.length ? `${ops} | FLOAT WEIGHTS: ${c.floatWeights.length}` : ops;
}

/** Times every entry against fp32 (entries[0]), interleaved; one row per entry and row count. */
async function timeAll(entries: Entry[], variant: string, threads: number, log: (m: string) => void): Promise<BenchRow[]> {
  const sessions: ort.InferenceSession[] = [];
  for (const e of entries) sessions.push(await ort.InferenceSession.create(e.path, { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3 }));
  const rows: BenchRow[] = [];
  try {
    const random = seededRandom(11);
    for (const M of ROWS) {
      const x = new ort.Tensor('float32', random.normalArray(M * WAN_SHAPE.dim), [M, WAN_SHAPE.dim]);
      for (const s of sessions) await s.run({ x });
      const times = sessions.map(() => [] as number[]);
      for (let r = 0; r < ROUNDS[M]!; r++) {
        collectGarbage();
        for (let i = 0; i < sessions.length; i++) {
          const t0 = performance.now();
          await sessions[i]!.run({ x });
          times[i]!.push(performance.now() - t0);
        }
      }
      const fp32 = median(times[0]!);
      const cells: string[] = [];
      entries.forEach((e, i) => {
        const ratios = times[i]!.map((t, r) => t / times[0]![r]!);
        const ratio = median(ratios);
        rows.push({
          name: `${variant} ${e.name} rows ${M} ${threads}T`,
          bytes: statSync(e.path).size,
          ms: round(median(times[i]!), 2),
          copyMs: round(fp32, 2),
          ratio: round(ratio, 2),
          runs: ROUNDS[M]!,
          details: { spreadMin: round(Math.min(...ratios), 2), spreadMax: round(Math.max(...ratios), 2), ...(e.census ? { census: e.census } : {}) },
        });
        if (i > 0) cells.push(`${e.name} ${ratio.toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`);
      });
      log(`${variant} rows ${M}, ${threads} thread(s): fp32 ${fp32.toFixed(1)} ms; ${cells.join('; ')}`);
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return rows;
}

const speed: BenchCase = {
  name: 'speed',
  summary: 'onnxruntime inference time of every pass × format × bit width on the Wan2.1-1.3B-shaped block, vs fp32 (rows 1/16/256/1560, 1 and 2 threads)',
  legend:
    'speed: "ours ms" = median time of one call; "baseline ms" = fp32 median in the same rounds; ratio = median over rounds of (model ÷ fp32 of that round), spread in results.json (details.spreadMin/Max), with each optimized graph\'s op census; MiB = file size.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const outliers of [true, false]) {
      const variant = outliers ? 'outliers' : 'plain';
      const fp32 = join(ctx.tmpDir, `${variant}-fp32.onnx`);
      saveModel(wanBlock({ outliers }), fp32);
      const entries: Entry[] = [{ name: 'fp32', path: fp32 }, ...(await anchorModels(fp32, ctx.tmpDir, variant, ctx.log)), ...(await quantizeAll(fp32, ctx.tmpDir, variant, ctx.log))];
      for (const e of entries) {
        e.census = await censusText(e.path);
        ctx.log(`${variant} ${e.name}: ${(statSync(e.path).size / 2 ** 20).toFixed(1)} MiB; optimized graph: ${e.census}`);
      }
      for (const threads of THREADS) rows.push(...(await timeAll(entries, variant, threads, ctx.log)));
    }
    return rows;
  },
};

export default speed;
