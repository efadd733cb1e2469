// onnxruntime's own quantizers on the Wan-shaped block as anchors (bench/peers/onnxruntime-recipe.ts,
// docs/peers.md), the block's activation ranges, and timing outputs of ours against the anchor of
// their weight bits in the same rounds (bench/interleaved.ts) with the table of ours ÷ anchor.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../src/graph/serde/io.ts';
import { seededRandom } from '../src/kernels/random.ts';
import { calibrate } from '../src/passes/calibration/calibrate.ts';
import { type CalibrationModule, checkCalibrationModule } from '../src/passes/calibration/module.ts';
import { DEFAULT_QUANT_CONFIG } from '../src/passes/quant/config.ts';
import { findLinearLayers } from '../src/passes/quant/linear-layers.ts';
import type { ActivationRanges } from '../src/passes/quant/quantize-layers.ts';
import { WAN_SHAPE } from '../test/helpers/wan-block.ts';
import { byModel, censusText, type Entry, type RoundPlan, rowCounts, timeAll } from './interleaved.ts';
import type { BenchRow } from './lib.ts';
import { quantizeDynamicInt8, quantizeMatMulNBits, quantizeStaticQdq } from './peers/onnxruntime-recipe.ts';

export const ANCHOR_STATIC = 'anchor quantize_static QDQ W8A8';
export const ANCHOR_DYNAMIC = 'anchor quantize_dynamic W8';
export const ANCHOR_NBITS = 'anchor MatMulNBits W4 (block 32, level 4)';

/** Four samples of 64 seeded standard-normal rows: the activation ranges of the block. */
function calibration(dim: number): CalibrationModule {
  return {
    samples: 4,
    feeds: (ctx) => [{ feeds: { x: new ort.Tensor('float32', ctx.random.normalArray(64 * dim), [64, dim]) } }],
  };
}

/** Min/max activation ranges of every layer input from {@link calibration}, collected once per variant. */
export async function activationRanges(fp32: string): Promise<ActivationRanges> {
  const model = loadModel(fp32);
  const { layers } = findLinearLayers(model.graph);
  const { ranges } = await calibrate(model, layers, checkCalibrationModule(calibration(WAN_SHAPE.dim)), DEFAULT_QUANT_CONFIG, { scaleSearch: false, frameWeighting: false });
  return ranges;
}

/** onnxruntime's own quantizers' outputs of the block at `fp32`; the rows are named `anchor …`. */
export async function anchorModels(fp32: string, dir: string, variant: string, log: (m: string) => void): Promise<Entry[]> {
  const random = seededRandom(7);
  const feeds = Array.from({ length: 4 }, () => ({ x: new ort.Tensor('float32', random.normalArray(64 * WAN_SHAPE.dim), [64, WAN_SHAPE.dim]) }));
  const recipes: [string, (out: string) => unknown][] = [
    [ANCHOR_STATIC, (o) => quantizeStaticQdq(fp32, o, { calibration: feeds })],
    [ANCHOR_DYNAMIC, (o) => quantizeDynamicInt8(fp32, o)],
    [ANCHOR_NBITS, (o) => quantizeMatMulNBits(fp32, o, { blockSize: 32, accuracyLevel: 4 })],
  ];
  const out: Entry[] = [];
  for (const [name, make] of recipes) {
    const path = join(dir, `${variant}-${name.replace(/[^\w]+/g, '-')}.onnx`);
    try {
      await make(path);
      out.push({ name, path });
    } catch (e) {
      log(`anchors: ${name} failed: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * Round plans for the cases that time a few forms against an anchor (w8-kernel, w4a8-nbits):
 * many rounds at the cheap rows, which a ≤ 1.0-vs-anchor verdict on a loaded machine needs.
 */
export const ANCHOR_CASE_PLANS: Record<number, RoundPlan> = {
  1: { min: 61, max: 61, settled: 0, budgetMs: 60_000, warmup: true },
  16: { min: 41, max: 41, settled: 0, budgetMs: 60_000, warmup: false },
  256: { min: 9, max: 15, settled: 0.05, budgetMs: 60_000, warmup: false },
  1560: { min: 3, max: 5, settled: 0.03, budgetMs: 120_000, warmup: false },
};

/** Logs each entry's size and optimized-graph census, times them all (1 thread) and prints the anchor table. */
export async function timeAgainstAnchors(entries: Entry[], log: (m: string) => void, plans: Record<number, RoundPlan>): Promise<BenchRow[]> {
  for (const e of entries) {
    e.census = await censusText(e.path);
    log(`${e.name}: ${(statSync(e.path).size / 2 ** 20).toFixed(1)} MiB; optimized graph: ${e.census}`);
  }
  const rows = await timeAll(entries, 'outliers', 1, log, plans);
  anchorTable(rows, log);
  return rows;
}

/**
 * The anchor table: for every output of ours, ours ÷ its anchor (median over the rounds both ran
 * in) at each row count, and whether ours is at least as fast (≤ 1.00) at every row count.
 */
export function anchorTable(rows: BenchRow[], log: (m: string) => void): void {
  const models = byModel(rows, 'vsAnchor');
  if (!models.size) return;
  const counts = rowCounts(models);
  log(`ours ÷ anchor of the same weight bits, same rounds (median; "yes" = at least as fast):`);
  log(`| model | anchor | ${counts.map((M) => `rows ${M}`).join(' | ')} | every row |`);
  log(`|---|---|${counts.map(() => '---|').join('')}---|`);
  for (const [model, cells] of models) {
    const vs = counts.map((M) => cells.get(M)?.details?.vsAnchor as number | undefined);
    const anchor = String([...cells.values()][0]?.details?.anchor ?? '').replace(/^anchor /, '');
    const text = vs.map((v) => (v === undefined ? '–' : `${v.toFixed(2)} ${v <= 1 ? 'yes' : 'no'}`));
    log(`| ${model} | ${anchor} | ${text.join(' | ')} | ${vs.every((v) => v !== undefined && v <= 1) ? 'yes' : 'no'} |`);
  }
}
