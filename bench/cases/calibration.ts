// Calibration cost: wall time of calibration over N samples ÷ plain fp32 inference over the
// same N samples (same onnxruntime thread count; S1 excluded), and peak RSS of calibration
// over N and 10N samples, each in a child process of its own (memory must not grow with the
// sample count).
//
// Run as a child: node --import tsx bench/cases/calibration.ts --child <samples>
// prints one JSON line { samples, maxRssBytes, ms }.
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { checkCalibrationModule, type CalibrationModule, type LoadedCalibration } from '../../src/passes/calibration/module.ts';
import { contextFor, drawSample } from '../../src/passes/calibration/samples.ts';
import { sessionOptions } from '../../src/passes/calibration/session.ts';
import { simdAvailable } from '../../src/passes/calibration/simd.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { runTsChild } from '../../test/helpers/child.ts';
import { type BenchCase, type BenchRow, collectGarbage, median, round } from '../lib.ts';

const THREADS = 1;
/** Child processes per sample count for the peak-RSS rows (the median is reported). */
const RSS_RUNS = 3;
const CONFIG: QuantConfig = { ...DEFAULT_QUANT_CONFIG, wBits: 4, aBits: 8 };
const STORIES = 'test/fixtures/stories260K/stories260K.onnx';

/** tiny-arvd's rollout module over `samples` rollouts (its 16 prompts, cycled). */
function arvdModule(samples: number): LoadedCalibration {
  return checkCalibrationModule({ rollout: tinyArvd.rollout, prompts: tinyArvd.prompts, samples }, 'examples/tiny-arvd/rollout.ts');
}

/** stories260K fed `samples` random token sequences of 64 (a feeds module). */
function storiesModule(samples: number): LoadedCalibration {
  const mod: CalibrationModule = {
    samples,
    *feeds(ctx) {
      yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 64 }, () => BigInt(ctx.random.int(512))), [1, 64]) } };
    },
  };
  return checkCalibrationModule(mod, 'random token ids');
}

/** Plain fp32 inference over the module's samples (same feeds, same seeds), in ms. */
async function plainInference(path: string, calib: LoadedCalibration): Promise<number> {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(path, sessionOptions(THREADS));
  for (let i = 0; i < calib.samples; i++) await drawSample(calib, contextFor(calib, i), async (feeds) => (await session.run(feeds)) as Record<string, ort.Tensor>);
  await session.release();
  return performance.now() - t0;
}

async function calibrationRun(path: string, calib: LoadedCalibration) {
  const model = loadModel(path);
  const { layers } = findLinearLayers(model.graph);
  const t0 = performance.now();
  const r = await calibrate(model, layers, calib, CONFIG, { scaleSearch: true, frameWeighting: false, threads: THREADS });
  return { total: performance.now() - t0, collect: r.timings.collect, search: r.timings.search };
}

/** How calibration ran: one onnxruntime thread, and calibration's own work on this thread only. */
const HOW = { threads: THREADS, cores: 'one (no worker threads)', kernels: simdAvailable() ? 'WebAssembly SIMD' : 'JavaScript' };

async function overheadRows(name: string, path: string, calib: LoadedCalibration, runs: number, only?: 'total'): Promise<BenchRow[]> {
  const plain: number[] = [];
  const cal: { total: number; collect: number; search: number }[] = [];
  await plainInference(path, calib); // warm-up
  for (let i = 0; i < runs; i++) {
    collectGarbage();
    plain.push(await plainInference(path, calib));
    collectGarbage();
    cal.push(await calibrationRun(path, calib));
  }
  const p = median(plain);
  const total = median(cal.map((c) => c.total));
  const collect = median(cal.map((c) => c.collect));
  const search = median(cal.map((c) => c.search));
  const what = `${calib.samples} ${calib.module.rollout ? 'rollouts' : 'feed sets'}`;
  const collectRow: BenchRow = { name: `${name}: collect only, ${what}`, bytes: 0, ms: round(collect, 1), copyMs: round(p, 1), ratio: round(collect / p, 2), runs, details: { baseline: 'plain fp32 inference of the same samples', ...HOW } };
  return [
    ...(only === 'total' ? [] : [collectRow]),
    {
      name: `${name}: calibration (augment, collect, search), ${what}`,
      bytes: 0,
      ms: round(total, 1),
      copyMs: round(p, 1),
      ratio: round(total / p, 2),
      runs,
      details: { collectMs: round(collect, 1), searchMs: round(search, 1), note: 'the search cost does not grow with the sample count (bounded rows)', ...HOW },
    },
  ];
}

const calibrationCase: BenchCase = {
  name: 'calibration',
  summary: 'calibration ÷ plain fp32 inference over the same samples (S1 excluded); peak RSS at N vs 10N samples',
  async run(ctx) {
    const runs = Math.min(ctx.runs, 3);
    const rows: BenchRow[] = [];
    rows.push(...(await overheadRows('tiny-arvd W4A8', MODEL_PATH, arvdModule(8), runs)));
    rows.push(...(await overheadRows('stories260K W4A8', STORIES, storiesModule(256), runs)));
    // An added row, not the measure: with 4× the samples the fixed search cost weighs less.
    rows.push(...(await overheadRows('tiny-arvd W4A8 (extra row: 4× the samples)', MODEL_PATH, arvdModule(32), runs, 'total')));
    for (const r of rows) ctx.log(`${r.name}: ${r.ms} ms vs plain ${r.copyMs} ms → ${r.ratio}×`);
    // Peak RSS depends on when V8 collects, which varies by ±5% between identical runs: the
    // median of three child processes per sample count, alternating, so drift hits both alike.
    const rss: Record<number, { maxRssBytes: number; ms: number }> = {};
    const peaks: Record<number, { maxRssBytes: number; ms: number }[]> = { 2: [], 20: [] };
    for (let i = 0; i < RSS_RUNS; i++) {
      for (const n of [2, 20]) peaks[n]!.push(await runTsChild<{ maxRssBytes: number; ms: number }>('bench/cases/calibration.ts', ['--child', String(n)], { nodeArgs: ['--expose-gc'] }));
    }
    for (const n of [2, 20]) rss[n] = { maxRssBytes: median(peaks[n]!.map((p) => p.maxRssBytes)), ms: median(peaks[n]!.map((p) => p.ms)) };
    const ratio = rss[20]!.maxRssBytes / rss[2]!.maxRssBytes;
    for (const n of [2, 20]) {
      rows.push({
        name: `tiny-arvd calibration peak RSS, ${n} rollouts`,
        bytes: 0,
        ms: round(rss[n]!.ms, 0),
        peakRssMiB: round(rss[n]!.maxRssBytes / 2 ** 20, 1),
        runs: RSS_RUNS,
        details: {
          ...(n === 20 ? { rssRatio10x: round(ratio, 3), target: '≤ 1.10' } : { calls: n * 48 }),
          peaksMiB: peaks[n]!.map((p) => round(p.maxRssBytes / 2 ** 20, 1)).join(', '),
        },
      });
    }
    ctx.log(`peak RSS: ${round(rss[2]!.maxRssBytes / 2 ** 20, 1)} MiB at 2 rollouts, ${round(rss[20]!.maxRssBytes / 2 ** 20, 1)} MiB at 20 (×${round(ratio, 3)})`);
    return rows;
  },
};

export default calibrationCase;

async function child(samples: number): Promise<void> {
  const t0 = performance.now();
  await calibrationRun(MODEL_PATH, arvdModule(samples));
  collectGarbage();
  process.stdout.write(`${JSON.stringify({ samples, maxRssBytes: process.resourceUsage().maxRSS * 1024, ms: performance.now() - t0 })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--child') {
  await child(Number(process.argv[3]));
}
