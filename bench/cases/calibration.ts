// Calibration cost: wall time of calibration over N samples ÷ plain fp32 inference over the
// same N samples (same onnxruntime thread count; S1 excluded), at two N for tiny-arvd (its
// calibration module's default of 16 rollouts, and 100: the calibration set of the Q-ARVD
// paper, 100 videos, METHOD.md S1) and stories260K (256 and 1024 feed sets) — the search's
// cost is fixed, so the ratio falls with N; the details give the per-sample ratio, the
// fixed part and the N from which the ratio is within the target. And peak RSS of
// calibration over N and 10N samples, each in a child process of its own (memory must not
// grow with the sample count).
//
// Run as a child: node --import tsx bench/cases/calibration.ts --child <samples>
// prints one JSON line { maxRssBytes, ms, retainedBytes }; with --first-plain <samples> or
// --first-calibration <samples>, one line { ms } (the first-run row).
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { type CollectedStats, collectStatistics, openCalibrationSession } from '../../src/passes/calibration/collect.ts';
import { checkCalibrationModule, type CalibrationModule, type LoadedCalibration } from '../../src/passes/calibration/module.ts';
import { contextFor, drawSample } from '../../src/passes/calibration/samples.ts';
import { sessionOptions } from '../../src/passes/calibration/session.ts';
import { simdAvailable } from '../../src/passes/calibration/simd.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { runTsChild } from '../../test/helpers/child.ts';
import { type BenchCase, type BenchContext, type BenchRow, collectGarbage, median, round } from '../lib.ts';

const THREADS = 1;
/** Child processes per sample count for the peak-RSS rows (the median is reported). */
const RSS_RUNS = 5;
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

/** One size's medians: plain inference, and calibration's collect step, search and total. */
interface Overhead {
  samples: number;
  plain: number;
  collect: number;
  search: number;
  total: number;
}

async function measureOverhead(path: string, calib: LoadedCalibration, runs: number): Promise<Overhead> {
  const plain: number[] = [];
  const cal: { total: number; collect: number; search: number }[] = [];
  // Warm-ups: these rows time calibration with V8's compiled code warm, as plain inference is;
  // the first-run row times both in fresh processes.
  await plainInference(path, calib);
  await calibrationRun(path, calib);
  for (let i = 0; i < runs; i++) {
    collectGarbage();
    plain.push(await plainInference(path, calib));
    collectGarbage();
    cal.push(await calibrationRun(path, calib));
  }
  return { samples: calib.samples, plain: median(plain), collect: median(cal.map((c) => c.collect)), search: median(cal.map((c) => c.search)), total: median(cal.map((c) => c.total)) };
}

/** The target for calibration ÷ plain inference. */
const TARGET = 1.5;

/**
 * Calibration's cost has two parts: the collect step, proportional to the samples (onnxruntime
 * producing the observed tensors, and the statistics), and the search, whose cost is bounded
 * by the reservoir and so fixed. The ratio to plain inference therefore falls with the
 * sample count; the rows give it at a small and a larger count, and the details the per-sample
 * ratio, the fixed part and the count from which the whole ratio is within the target.
 */
async function overheadRows(name: string, path: string, calib: (samples: number) => LoadedCalibration, counts: [number, number], unit: string, ctx: BenchContext, why: Record<number, string> = {}): Promise<BenchRow[]> {
  const runs = Math.min(ctx.runs, 3);
  const sizes: Overhead[] = [];
  for (const n of counts) sizes.push(await measureOverhead(path, calib(n), runs));
  const large = sizes[1]!;
  // Per sample: collect ÷ plain at the larger count; fixed: what the whole run spends beyond the collect step.
  const perSample = large.collect / large.plain;
  const fixedMs = median(sizes.map((o) => o.total - o.collect));
  const plainPerSample = large.plain / large.samples;
  const breakEven = perSample < TARGET ? Math.ceil(fixedMs / ((TARGET - perSample) * plainPerSample)) : undefined;
  const from = breakEven === undefined ? 'never (the per-sample ratio is above it)' : `from ${breakEven} ${unit} on`;
  const model = { perSampleRatio: round(perSample, 2), fixedMs: round(fixedMs, 0), plainMsPerSample: round(plainPerSample, 1), withinTarget: from };
  for (const o of sizes) ctx.log(`${name}, ${o.samples} ${unit}: collect ${round(o.collect, 0)} ms, calibration ${round(o.total, 0)} ms vs plain ${round(o.plain, 0)} ms → ${round(o.collect / o.plain, 2)}× / ${round(o.total / o.plain, 2)}×`);
  ctx.log(`${name}: ${round(perSample, 2)}× plain per sample, plus ${round(fixedMs, 0)} ms fixed (search and set-up); within ${TARGET}× ${from}`);
  return sizes.flatMap((o): BenchRow[] => {
    const what = `${o.samples} ${unit}`;
    const base = { bytes: 0, copyMs: round(o.plain, 1), runs };
    return [
      { name: `${name}: collect only, ${what}`, ...base, ms: round(o.collect, 1), ratio: round(o.collect / o.plain, 2), details: { baseline: 'plain fp32 inference of the same samples', ...HOW } },
      { name: `${name}: calibration (augment, collect, search), ${what}`, ...base, ms: round(o.total, 1), ratio: round(o.total / o.plain, 2), details: { ...(why[o.samples] ? { samples: why[o.samples] } : {}), collectMs: round(o.collect, 1), searchMs: round(o.search, 1), ...model, target: `≤ ${TARGET}`, ...HOW } },
    ];
  });
}

/** Processes per side for the first-run row (the median is reported). */
const FIRST_RUNS = 3;
const FIRST_ROLLOUTS = 16;

/**
 * The rows above are medians of runs in one process, most of them after the first, with
 * V8's compiled code warm. `convert` calibrates once per process: this row times plain
 * inference and calibration each in fresh processes, alternating.
 */
async function firstRunRow(ctx: BenchContext): Promise<BenchRow> {
  const plain: number[] = [];
  const cal: number[] = [];
  for (let i = 0; i < FIRST_RUNS; i++) {
    plain.push((await runTsChild<{ ms: number }>('bench/cases/calibration.ts', ['--first-plain', String(FIRST_ROLLOUTS)])).ms);
    cal.push((await runTsChild<{ ms: number }>('bench/cases/calibration.ts', ['--first-calibration', String(FIRST_ROLLOUTS)])).ms);
  }
  const [p, c] = [median(plain), median(cal)];
  ctx.log(`tiny-arvd W4A8, ${FIRST_ROLLOUTS} rollouts, each the first in a fresh process (as convert runs): calibration ${round(c, 0)} ms vs plain ${round(p, 0)} ms → ${round(c / p, 2)}×`);
  return {
    name: `tiny-arvd W4A8: calibration, ${FIRST_ROLLOUTS} rollouts, first in a fresh process`,
    bytes: 0,
    ms: round(c, 1),
    copyMs: round(p, 1),
    ratio: round(c / p, 2),
    runs: FIRST_RUNS,
    details: { baseline: 'plain fp32 inference of the same samples, first in a fresh process', plainMs: plain.map((x) => round(x, 0)).join(', '), calibrationMs: cal.map((x) => round(x, 0)).join(', '), target: `≤ ${TARGET}`, ...HOW },
  };
}

const calibrationCase: BenchCase = {
  name: 'calibration',
  summary: 'calibration ÷ plain fp32 inference over the same samples (S1 excluded); peak RSS at N vs 10N samples',
  legend: 'calibration rows: baseline = plain fp32 inference of the same samples (same onnxruntime threads), ratio = calibration ÷ baseline.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    // 16: what the tiny-arvd module calibrates on by default (its 16 prompts), as the demo
    // does; 100: the calibration set the method is defined with (the paper's 100 videos).
    rows.push(
      ...(await overheadRows('tiny-arvd W4A8', MODEL_PATH, arvdModule, [16, 100], 'rollouts', ctx, {
        16: "the example module's default (its 16 prompts, as the demo calibrates)",
        100: "the Q-ARVD paper's calibration set (100 videos; METHOD.md, S1)",
      })),
    );
    rows.push(...(await overheadRows('stories260K W4A8', STORIES, storiesModule, [256, 1024], 'feed sets', ctx)));
    rows.push(await firstRunRow(ctx));
    // Peak RSS depends on when V8 collects and how large it sizes its heap, which varies by
    // ±5% between identical runs: the median of five child processes per sample count,
    // alternating, so drift hits both alike. Each child also reports what the statistics
    // retain (live bytes after a full collection), which does not depend on V8's timing.
    const rss: Record<number, ChildResult> = {};
    const peaks: Record<number, ChildResult[]> = { 2: [], 20: [] };
    for (let i = 0; i < RSS_RUNS; i++) {
      for (const n of [2, 20]) peaks[n]!.push(await runTsChild<ChildResult>('bench/cases/calibration.ts', ['--child', String(n)], { nodeArgs: ['--expose-gc'] }));
    }
    for (const n of [2, 20]) rss[n] = { maxRssBytes: median(peaks[n]!.map((p) => p.maxRssBytes)), ms: median(peaks[n]!.map((p) => p.ms)), retainedBytes: median(peaks[n]!.map((p) => p.retainedBytes)) };
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
          statisticsRetainedMiB: round(rss[n]!.retainedBytes / 2 ** 20, 2),
        },
      });
    }
    const mib = (b: number) => round(b / 2 ** 20, 1);
    ctx.log(`peak RSS: ${mib(rss[2]!.maxRssBytes)} MiB at 2 rollouts, ${mib(rss[20]!.maxRssBytes)} MiB at 20 (×${round(ratio, 3)}); the statistics retain ${mib(rss[2]!.retainedBytes)} and ${mib(rss[20]!.retainedBytes)} MiB`);
    return rows;
  },
};

export default calibrationCase;

/** What a child reports: peak RSS and time of one calibration, and the bytes its statistics retain. */
interface ChildResult {
  maxRssBytes: number;
  ms: number;
  retainedBytes: number;
}

/**
 * JavaScript heap plus typed-array memory in use after full collections (a few, each followed
 * by a turn of the event loop, in which V8 frees the dead arrays' memory and counts it).
 */
async function liveBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** The live bytes the collect step's statistics hold (with them, minus without them). */
async function statisticsRetained(samples: number): Promise<number> {
  const model = loadModel(MODEL_PATH);
  const { layers } = findLinearLayers(model.graph);
  const session = await openCalibrationSession(model, layers, arvdModule(samples), THREADS);
  try {
    let stats: CollectedStats | undefined = await collectStatistics(session, layers);
    const withStats = await liveBytes();
    if (stats.tensors.size === 0) throw new Error('no statistics');
    stats = undefined;
    return withStats - (await liveBytes());
  } finally {
    await session.dispose();
  }
}

async function child(samples: number): Promise<void> {
  const t0 = performance.now();
  await calibrationRun(MODEL_PATH, arvdModule(samples));
  const ms = performance.now() - t0;
  const maxRssBytes = process.resourceUsage().maxRSS * 1024;
  const result: ChildResult = { maxRssBytes, ms, retainedBytes: await statisticsRetained(samples) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** One timing in a fresh process: plain inference or calibration of `samples` tiny-arvd rollouts. */
async function firstRun(what: 'plain' | 'calibration', samples: number): Promise<void> {
  const calib = arvdModule(samples);
  const ms = what === 'plain' ? await plainInference(MODEL_PATH, calib) : (await calibrationRun(MODEL_PATH, calib)).total;
  process.stdout.write(`${JSON.stringify({ ms })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [flag, n] = [process.argv[2], Number(process.argv[3])];
  if (flag === '--child') await child(n);
  else if (flag === '--first-plain') await firstRun('plain', n);
  else if (flag === '--first-calibration') await firstRun('calibration', n);
}
