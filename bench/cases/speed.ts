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
// search change the integers and scales, not the ops.
import { statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { type CalibrationModule, checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayersThreaded } from '../../src/passes/quant/quantize-layers.ts';
import { optimizedCensus } from '../../test/helpers/census.ts';
import { WAN_SHAPE, wanBlock } from '../../test/helpers/wan-block.ts';
import { type BenchCase, type BenchRow, collectGarbage, median, ratioStats, round } from '../lib.ts';
import { quantizeDynamicInt8, quantizeMatMulNBits, quantizeStaticQdq } from '../peers/onnxruntime-recipe.ts';

const ROWS = [1, 16, 256, 1560];
const THREADS = [1, 2];
/**
 * Rounds per row count: at least `min`; then more, up to `max`, while some model's per-round
 * ratios to fp32 are spread (interquartile range above `settled` × the median; with two rounds,
 * their range) and the stage has run less than `budgetMs`. The budget is what bounds the run:
 * on an idle machine the millisecond rows reach `max` rounds within it; on a loaded one (where a
 * 2-thread call at 1 row took 170–320 ms instead of 11, its second thread waiting to be
 * scheduled) they stop at the budget with fewer. At rows 256 and 1560 (fp32 takes 0.3 and 2.3
 * seconds idle; a round of every model about 14 times that) a third round only when two
 * disagree and took less than the budget. `warmup`: one untimed call of each model first, at
 * rows 1 only: the sessions' first calls; what a call at more rows then allocates anew is
 * milliseconds against calls of tens of milliseconds to seconds.
 */
/** How many rounds a stage at one row count runs (see {@link ROUNDS}). */
export type RoundPlan = { min: number; max: number; settled: number; budgetMs: number; warmup: boolean };

const ROUNDS: Record<number, RoundPlan> = {
  1: { min: 5, max: 61, settled: 0.1, budgetMs: 6_000, warmup: true },
  16: { min: 5, max: 41, settled: 0.1, budgetMs: 8_000, warmup: false },
  256: { min: 2, max: 7, settled: 0.1, budgetMs: 15_000, warmup: false },
  1560: { min: 2, max: 3, settled: 0.05, budgetMs: 90_000, warmup: false },
};

const ANCHOR_STATIC = 'anchor quantize_static QDQ W8A8';
export const ANCHOR_DYNAMIC = 'anchor quantize_dynamic W8';
const ANCHOR_NBITS = 'anchor MatMulNBits W4 (block 32, level 4)';
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

/** One model to time: ours or an anchor. */
export interface Entry {
  name: string;
  path: string;
  census?: string;
  /** Ours only: the name of the anchor entry it is compared with. */
  anchor?: string;
  /** q-arvd only: the name of minmax's entry of the same format and bits (dual ÷ single). */
  single?: string;
}

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

/** Every pass × format × bit width, quantized from the fp32 file with the variant's ranges. */
async function quantizeAll(fp32: string, dir: string, variant: string, log: (m: string) => void): Promise<Entry[]> {
  const ranges = await activationRanges(fp32);
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
        const model = loadModel(fp32);
        const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, format, wBits: b.wBits, aBits: b.aBits, dualScale: pass === 'q-arvd' };
        // Both cores: the plans are the same for any number of threads.
        const report = await quantizeLinearLayersThreaded(2, model, config, {}, b.aBits === null ? undefined : ranges, pass);
        saveModel(model, path);
        log(`${variant}: ${name}: ${report.totals.layers.dual} dual-scale, ${report.totals.layers.single} single in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        out.push({ name, path, anchor: b.anchor, ...(pass === 'q-arvd' ? { single: `minmax ${format} ${b.label}` } : {}) });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ANCHORS: onnxruntime's own quantizers on the same block (bench/peers/onnxruntime-recipe.ts,
// docs/peers.md); the rows are named `anchor …`.
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
// ---------------------------------------------------------------------------------------------

/** Op counts of the optimized graph, `Op×n` joined. */
export async function censusText(path: string): Promise<string> {
  const c = await optimizedCensus(path);
  const ops = Object.entries(c.ops).sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op}×${n}`).join(' ');
  return c.floatWeights.length ? `${ops} | FLOAT WEIGHTS: ${c.floatWeights.length}` : ops;
}

/** The worst (largest) interquartile range of the per-round ratios to fp32, relative to the median, over every model. */
function worstSpread(times: number[][]): number {
  let worst = 0;
  for (let i = 1; i < times.length; i++) {
    const s = ratioStats(times[i]!, times[0]!);
    worst = Math.max(worst, (s.p75 - s.p25) / s.ratio);
  }
  return worst;
}

/**
 * Calls every session once per round, gc first, for the rounds `plan` gives (see {@link ROUNDS});
 * each session's times (ms), round by round. The order is the entries' except that on odd rounds
 * each q-arvd model runs before its minmax partner (`partner[i]`: the index of the model that `i`
 * runs next to), so that neither of a pair always runs second.
 */
async function timeStage(sessions: ort.InferenceSession[], x: ort.Tensor, plan: RoundPlan, partner: (number | undefined)[]): Promise<number[][]> {
  if (plan.warmup) for (const s of sessions) await s.run({ x });
  const times = sessions.map(() => [] as number[]);
  const t0 = performance.now();
  for (let r = 0; r < plan.max; r++) {
    if (r >= plan.min && (performance.now() - t0 >= plan.budgetMs || worstSpread(times) <= plan.settled)) break;
    collectGarbage();
    const order = sessions.map((_, i) => (r % 2 === 1 && partner[i] !== undefined ? partner[i]! : i));
    for (const i of order) {
      const t = performance.now();
      await sessions[i]!.run({ x });
      times[i]!.push(performance.now() - t);
    }
  }
  return times;
}

/**
 * Times every entry against fp32 (entries[0]), interleaved; one row per entry and row count, ours with its ratio to its anchor in the same rounds.
 * `plans` replaces {@link ROUNDS} per row count (its keys are the row counts then).
 */
export async function timeAll(entries: Entry[], variant: string, threads: number, log: (m: string) => void, plans: Record<number, RoundPlan> = ROUNDS): Promise<BenchRow[]> {
  const sessions: ort.InferenceSession[] = [];
  for (const e of entries) sessions.push(await ort.InferenceSession.create(e.path, { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3 }));
  const index = new Map(entries.map((e, i) => [e.name, i]));
  // A q-arvd entry and its minmax partner, adjacent (quantizeAll's order): they swap places on odd rounds.
  const partner: (number | undefined)[] = entries.map(() => undefined);
  entries.forEach((e, i) => {
    const s = e.single === undefined ? undefined : index.get(e.single);
    if (s === i - 1) [partner[i], partner[s]] = [s, i];
  });
  const rows: BenchRow[] = [];
  try {
    const random = seededRandom(11);
    for (const M of Object.keys(plans).map(Number)) {
      const x = new ort.Tensor('float32', random.normalArray(M * WAN_SHAPE.dim), [M, WAN_SHAPE.dim]);
      // Other work on the machine moves these figures: the 1-minute load average as the stage starts.
      const load = round(loadavg()[0]!, 1);
      const times = await timeStage(sessions, x, plans[M]!, partner);
      const rounds = times[0]!.length;
      const fp32 = median(times[0]!);
      const cells: string[] = [];
      entries.forEach((e, i) => {
        const s = ratioStats(times[i]!, times[0]!);
        const a = e.anchor === undefined ? undefined : index.get(e.anchor);
        const vs = a === undefined ? undefined : ratioStats(times[i]!, times[a]!);
        const s1 = e.single === undefined ? undefined : index.get(e.single);
        const vsSingle = s1 === undefined ? undefined : ratioStats(times[i]!, times[s1]!);
        rows.push({
          name: `${variant} ${e.name} rows ${M} ${threads}T`,
          bytes: statSync(e.path).size,
          ms: round(median(times[i]!), 2),
          copyMs: round(fp32, 2),
          ratio: round(s.ratio, 2),
          runs: rounds,
          details: {
            spreadMin: round(s.min, 2),
            spreadMax: round(s.max, 2),
            // Fastest call ÷ fp32's fastest: what each runs at when nothing else got in the way,
            // the steadier figure when other work on the machine spreads the rounds.
            best: round(Math.min(...times[i]!) / Math.min(...times[0]!), 2),
            p25: round(s.p25, 2),
            p75: round(s.p75, 2),
            load,
            ...(e.census ? { census: e.census } : {}),
            ...(vs ? { anchor: e.anchor!, vsAnchor: round(vs.ratio, 2), vsAnchorMin: round(vs.min, 2), vsAnchorMax: round(vs.max, 2) } : {}),
            ...(vsSingle ? { vsSingle: round(vsSingle.ratio, 3), vsSingleP25: round(vsSingle.p25, 3), vsSingleP75: round(vsSingle.p75, 3), vsSingleMin: round(vsSingle.min, 3), vsSingleMax: round(vsSingle.max, 3) } : {}),
          },
        });
        if (i > 0) cells.push(`${e.name} ${s.ratio.toFixed(2)} [${s.min.toFixed(2)}–${s.max.toFixed(2)}] best ${(Math.min(...times[i]!) / Math.min(...times[0]!)).toFixed(2)}`);
      });
      log(`${variant} rows ${M}, ${threads} thread(s), ${rounds} rounds, load ${load}: fp32 ${fp32.toFixed(1)} ms; ${cells.join('; ')}`);
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return rows;
}

/** Rows carrying `details[key]`, by model and thread count (`<variant> <model> <n>T`), then by row count. */
function byModel(rows: BenchRow[], key: string): Map<string, Map<number, BenchRow>> {
  const out = new Map<string, Map<number, BenchRow>>();
  for (const r of rows) {
    const m = /^(.*) rows (\d+) (\d+T)$/.exec(r.name);
    if (!m || r.details?.[key] === undefined) continue;
    const model = `${m[1]} ${m[3]}`;
    if (!out.has(model)) out.set(model, new Map());
    out.get(model)!.set(Number(m[2]), r);
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
  log(`ours ÷ anchor of the same weight bits, same rounds (median; "yes" = at least as fast):`);
  log(`| model | anchor | ${ROWS.map((M) => `rows ${M}`).join(' | ')} | every row |`);
  log(`|---|---|${ROWS.map(() => '---|').join('')}---|`);
  for (const [model, cells] of models) {
    const vs = ROWS.map((M) => cells.get(M)?.details?.vsAnchor as number | undefined);
    const anchor = String(cells.get(ROWS[0]!)?.details?.anchor ?? '').replace(/^anchor /, '');
    const text = vs.map((v) => (v === undefined ? '–' : `${v.toFixed(2)} ${v <= 1 ? 'yes' : 'no'}`));
    log(`| ${model} | ${anchor} | ${text.join(' | ')} | ${vs.every((v) => v !== undefined && v <= 1) ? 'yes' : 'no'} |`);
  }
}

/**
 * The dual-scale table: every q-arvd output ÷ minmax's of the same format and bits, per round
 * (the two ran next to each other, in alternating order), median with the interquartile range.
 */
function dualTable(rows: BenchRow[], log: (m: string) => void): void {
  const models = byModel(rows, 'vsSingle');
  if (!models.size) return;
  log(`dual-scale ÷ single-scale (q-arvd ÷ minmax, same format and bits, adjacent in every round; median [p25–p75]):`);
  log(`| model | ${ROWS.map((M) => `rows ${M}`).join(' | ')} |`);
  log(`|---|${ROWS.map(() => '---|').join('')}`);
  for (const [model, cells] of models) {
    const text = ROWS.map((M) => {
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
      for (const threads of THREADS) rows.push(...(await timeAll(entries, variant, threads, ctx.log)));
    }
    anchorTable(rows, ctx.log);
    dualTable(rows, ctx.log);
    const totalMs = performance.now() - started;
    ctx.log(`speed: ${(totalMs / 60_000).toFixed(1)} min in all: ${(setupMs / 60_000).toFixed(1)} building, quantizing and census, ${((totalMs - setupMs) / 60_000).toFixed(1)} timing`);
    return rows;
  },
};

export default speed;
