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
// onnxruntime's own quantizers' outputs of the same block (bench/peers/onnxruntime-recipe.ts:
// quantize_static, quantize_dynamic, 4-bit MatMulNBits) are timed in the same rounds, and every
// output of ours is compared with the anchor of its weight bits in those rounds (ours ÷ anchor).
//
// The run is kept under 10 minutes by spending rounds where they buy precision: a stage (one
// variant, thread count and row count) runs its minimum rounds, then more only while some
// model's ratios are still spread and the stage's time budget lasts (ROUNDS).
//
// Quantization here is the emission under test, not the method's accuracy: the layers are
// rewritten by the passes' shared code (quantizeLinearLayers) with min/max ranges collected once
// per variant (four samples of 64 standard-normal rows), q-arvd with every layer that has outlier
// channels split (`dual-scale true`), round to nearest: GPTQ, bias correction and the scale
// search change the integers and scales, not the ops. q-arvd's models are made as the pass makes
// them by default, after `fold-split`: ffn.2's outlier channels are moved last through ffn.0
// and Gelu, so its outlier branch reads them with a Slice. Only ffn.2 is folded, as in a real
// model, where o reads the attention's output rather than q's (a Reshape, which the fold does
// not pass); the q-arvd ranges are collected on the folded float block.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { foldSplits } from '../../src/passes/quant/fold-split.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayersThreaded } from '../../src/passes/quant/quantize-layers.ts';
import { wanBlock } from '../../test/helpers/wan-block.ts';
import { activationRanges, ANCHOR_DYNAMIC, ANCHOR_NBITS, ANCHOR_STATIC, anchorModels, anchorTable } from '../anchors.ts';
import { byModel, censusText, type Entry, type RoundPlan, rowCounts, timeAll } from '../interleaved.ts';
import type { BenchCase, BenchRow } from '../lib.ts';

const THREADS = [1, 2];
/**
 * Rounds per row count: at least `min`; then more, up to `max`, while some model's per-round
 * ratios to fp32 are spread (interquartile range above `settled` × the median; with two rounds,
 * their range) and the stage has run less than `budgetMs`. The budget is what bounds the run:
 * on an idle machine the millisecond rows reach `max` rounds within it; on a loaded one (where a
 * 2-thread call at 1 row took 170–320 ms instead of 11, its second thread waiting to be
 * scheduled) they stop at the budget with fewer. At rows 256 and 1560 (fp32 took 0.09–0.3 and
 * 0.55–2.3 seconds, from a quiet machine to a loaded one; a round of every model about 14 times
 * that) more rounds only when they disagree and the budget lasts: on a quiet machine three
 * rounds at 1560 rows ranged 0.3–1.4× fp32 for one model (2026-12-07), so up to seven there;
 * under load the budget stops it at two or three. `warmup`: one untimed call of each model first, at
 * rows 1 only: the sessions' first calls; what a call at more rows then allocates anew is
 * milliseconds against calls of tens of milliseconds to seconds.
 */
const ROUNDS: Record<number, RoundPlan> = {
  1: { min: 5, max: 61, settled: 0.1, budgetMs: 6_000, warmup: true },
  16: { min: 5, max: 41, settled: 0.1, budgetMs: 8_000, warmup: false },
  256: { min: 2, max: 7, settled: 0.1, budgetMs: 15_000, warmup: false },
  1560: { min: 2, max: 7, settled: 0.05, budgetMs: 90_000, warmup: false },
};

/**
 * Each bit width with the anchor of the same weight bits it is compared with: 8-bit weights with
 * static activations against quantize_static; 8-bit weight-only against quantize_dynamic (int8
 * weights, activations quantized at run time: the one anchor that needs no calibration); every
 * 4-bit weight against the 4-bit MatMulNBits.
 */
const BITS = [
  { label: 'W8A8', wBits: 8, aBits: 8, anchor: ANCHOR_STATIC },
  { label: 'W4A8', wBits: 4, aBits: 8, anchor: ANCHOR_NBITS },
  { label: 'W4A6', wBits: 4, aBits: 6, anchor: ANCHOR_NBITS },
  { label: 'W8', wBits: 8, aBits: null, anchor: ANCHOR_DYNAMIC },
  { label: 'W4', wBits: 4, aBits: null, anchor: ANCHOR_NBITS },
] as const;

/** Every pass × format × bit width, quantized from the fp32 file with the variant's ranges. */
async function quantizeAll(fp32: string, dir: string, variant: string, log: (m: string) => void): Promise<Entry[]> {
  const ranges = await activationRanges(fp32);
  const folded = variant === 'plain' ? undefined : await foldedBlock(fp32, join(dir, `${variant}-fp32-folded.onnx`), log);
  const out: Entry[] = [];
  // Without outlier channels q-arvd emits exactly minmax's graph (dual-scale.test.ts checks
  // it), so the plain variant times minmax only. Each q-arvd model comes right after minmax's of
  // the same format and bits, so that the two run next to each other in every round.
  for (const format of ['qdq', 'qoperator'] as const) {
    for (const b of BITS) {
      for (const pass of variant === 'plain' ? (['minmax'] as const) : (['minmax', 'q-arvd'] as const)) {
        const name = `${pass} ${format} ${b.label}`;
        const path = join(dir, `${variant}-${pass}-${format}-${b.label}.onnx`);
        const t0 = performance.now();
        const source = pass === 'q-arvd' && folded ? folded : { path: fp32, ranges };
        const model = loadModel(source.path);
        const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format, wBits: b.wBits, aBits: b.aBits, dualScale: pass === 'q-arvd' };
        // Both cores: the plans are the same for any number of threads.
        const report = await quantizeLinearLayersThreaded(2, model, config, {}, b.aBits === null ? undefined : source.ranges, pass);
        saveModel(model, path);
        log(`${variant}: ${name}: ${report.totals.layers.dual} dual-scale, ${report.totals.layers.single} single in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        out.push({ name, path, anchor: b.anchor, ...(pass === 'q-arvd' ? { single: `minmax ${format} ${b.label}` } : {}) });
      }
    }
  }
  return out;
}

/** The float block after fold-split of ffn.2 (what q-arvd quantizes by default), saved to `out`, with its ranges. */
async function foldedBlock(fp32: string, out: string, log: (m: string) => void): Promise<{ path: string; ranges: ActivationRanges }> {
  const model = loadModel(fp32);
  const { folds } = foldSplits(model, findLinearLayers(model.graph, { include: ['ffn.2*'] }).layers, DEFAULT_QUANT_CONFIG);
  if (folds.length !== 1) throw new Error(`speed bench: fold-split folded ${folds.length} layers of the block, expected ffn.2`);
  log(`fold-split: ${folds[0]!.producers.join(' + ')} → ${folds[0]!.consumer} (${folds[0]!.outliers} of ${folds[0]!.K} channels moved last)`);
  saveModel(model, out);
  return { path: out, ranges: await activationRanges(out) };
}

/**
 * The dual-scale table: every q-arvd output ÷ minmax's of the same format and bits, per round
 * (the two ran next to each other, in alternating order), median with the interquartile range.
 */
function dualTable(rows: BenchRow[], log: (m: string) => void): void {
  const models = byModel(rows, 'vsSingle');
  if (!models.size) return;
  const counts = rowCounts(models);
  log(`dual-scale ÷ single-scale (q-arvd ÷ minmax, same format and bits, adjacent in every round; median [p25–p75]):`);
  log(`| model | ${counts.map((M) => `rows ${M}`).join(' | ')} |`);
  log(`|---|${counts.map(() => '---|').join('')}`);
  for (const [model, cells] of models) {
    const text = counts.map((M) => {
      const d = cells.get(M)?.details;
      return d ? `${(d.vsSingle as number).toFixed(2)} [${(d.vsSingleP25 as number).toFixed(2)}–${(d.vsSingleP75 as number).toFixed(2)}]` : '–';
    });
    log(`| ${model} | ${text.join(' | ')} |`);
  }
}

const speed: BenchCase = {
  name: 'speed',
  summary: 'onnxruntime inference time of every pass × format × bit width on the Wan2.1-1.3B-shaped block, vs fp32 (rows 1/16/256/1560, 1 and 2 threads)',
  legend:
    'speed: "ours ms" = median time of one call; "baseline ms" = fp32 median in the same rounds; ratio = median over rounds of (model ÷ fp32 of that round), spread in results.json (details.spreadMin/Max, p25/p75; details.best = fastest call ÷ fp32\'s fastest), with each optimized graph\'s op census; details.vsAnchor = median over rounds of (model ÷ the anchor of its weight bits); details.vsSingle = the same of q-arvd ÷ minmax (same format and bits, adjacent in each round); runs = rounds; MiB = file size.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    const started = performance.now();
    let setupMs = 0;
    for (const outliers of [true, false]) {
      const setup = performance.now();
      const variant = outliers ? 'outliers' : 'plain';
      const fp32 = join(ctx.tmpDir, `${variant}-fp32.onnx`);
      saveModel(wanBlock({ outliers }), fp32);
      const entries: Entry[] = [{ name: 'fp32', path: fp32 }, ...(await anchorModels(fp32, ctx.tmpDir, variant, ctx.log)), ...(await quantizeAll(fp32, ctx.tmpDir, variant, ctx.log))];
      for (const e of entries) {
        e.census = await censusText(e.path);
        ctx.log(`${variant} ${e.name}: ${(statSync(e.path).size / 2 ** 20).toFixed(1)} MiB; optimized graph: ${e.census}`);
      }
      setupMs += performance.now() - setup;
      for (const threads of THREADS) rows.push(...(await timeAll(entries, variant, threads, ctx.log, ROUNDS)));
    }
    anchorTable(rows, ctx.log);
    dualTable(rows, ctx.log);
    const totalMs = performance.now() - started;
    ctx.log(`speed: ${(totalMs / 60_000).toFixed(1)} min in all: ${(setupMs / 60_000).toFixed(1)} building, quantizing and census, ${((totalMs - setupMs) / 60_000).toFixed(1)} timing`);
    return rows;
  },
};

export default speed;
