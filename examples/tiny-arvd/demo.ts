/**
 * The demo pipeline behind `npm run demo`, as a function so that a test can run a shortened
 * version: inspect → q-arvd (S1+S2) and the MinMax baseline at W8A8, W4A8 and weight-only W4
 * → evaluation on held-out prompts with the fp32 model's noise seeds. The demo's model is
 * tiny-arvd-l; the test runs it on the small tiny-arvd.
 *
 * To stay under three minutes on two cores: the quantizations run as `convert` child
 * processes three at a time (examples/quality/jobs.ts; see `quantizeProcesses`); the W4A8 q-arvd run collects the
 * calibration statistics once (its Gram products in a worker thread on the second core) and
 * saves them (`save-statistics`) as soon as they are collected, and the W8A8 and W4 q-arvd
 * runs read them (`load-statistics`: the same models as collecting again, at a fraction of the
 * cost; the minmax runs collect their own ranges, since q-arvd calibrates the model after
 * fold-split has reordered ffn.2's channels, src/passes/quant/fold-split.ts); S1 is measured in the W4A8 q-arvd run on the first `sensitivitySamples`
 * calibration rollouts, and that curve is reused at W8A8 (written as soon as it is measured,
 * `save-sensitivity`, so the W8A8 run starts then); fp32 and the minmax models are evaluated
 * while q-arvd runs, the q-arvd models at the end in two processes. The table says how many
 * prompts. docs/demo.md has the measurements.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../../src/graph/serde/io.ts';
import type { Logger } from '../../src/passes/log.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { writeJsonAtomic } from '../../src/passes/write-json.ts';
import { renderHtmlReport } from '../../src/report/html.ts';
import { inspectModel } from '../../src/report/inspect.ts';
import type { InspectReport } from '../../src/report/inspect-schema.ts';
import { MODELS, type QualityModel } from '../quality/harness.ts';
import { planJobs, type QuantJob, runJobs } from '../quality/jobs.ts';
import { BIT_WIDTHS as ALL_BIT_WIDTHS, type QualityRow } from '../quality/rows.ts';
import { type EvaluationResult, formatTable } from './evaluate.ts';
import { addLatency, evaluateInParallel } from './evaluate-parallel.ts';
import { writeStrip } from './frames.ts';
import type { SeededPrompt } from './prompts.ts';

/** The bit-widths of the table. */
export const BIT_WIDTHS = ALL_BIT_WIDTHS.filter((b) => ['W8A8', 'W4A8', 'W4'].includes(b.label));

/** The methods of the table, in row order within a bit-width. */
export const METHODS = ['minmax', 'q-arvd S1+S2'] as const;

/** S1 rollouts the demo averages by default (the harness and `convert` use all 16). */
export const DEMO_SENSITIVITY_SAMPLES = 4;

/** What {@link runDemo} takes; the defaults are the full demo. */
export interface DemoOptions {
  /** Output folder (models, reports, frames, sensitivity). */
  out: string;
  /** The model (default: tiny-arvd-l). */
  model?: QualityModel;
  /** Evaluation prompts with their seeds (default: the first 8 of the module's). */
  evaluationPrompts?: SeededPrompt[];
  /** S1 rollouts (default {@link DEMO_SENSITIVITY_SAMPLES}). */
  sensitivitySamples?: number;
  /** Timed runs per model for the latency median (default 20). */
  latencyRuns?: number;
  /** Child processes for the evaluation (default 2). */
  parallel?: number;
  /**
   * `convert` runs at a time (default 3). More than the 2 cores: a run waiting for the
   * statistics or the S1 curve holds no slot, and the W8A8 run, whose inputs are ready once
   * the W4A8 run has measured S1, should not wait for the W4A8 or W4 run to end; each run is
   * one onnxruntime thread (the W4A8 run's Gram worker a second during its collection), so a
   * third run time-shares the cores rather than oversubscribing spinning thread pools.
   */
  quantizeProcesses?: number;
  log: Logger;
}

/** Everything the demo measured. */
export interface DemoResult {
  inspect: InspectReport;
  /** S1 chunk sensitivity, normalised to sum 1, and the loss weights α (mean 1). */
  sensitivity: number[];
  alpha: number[];
  evaluation: EvaluationResult;
  reports: Record<string, QuantReport>;
  table: string;
  /**
   * Wall time of each step, in ms: all quantization; the evaluation after the last model was
   * made; and the part of the evaluation that ran during quantization (fp32 and minmax).
   */
  timings: { quantize: number; evaluate: number; overlapped: number };
}

/** The demo's rows: the MinMax baseline and q-arvd with today's defaults (S1+S2). */
function demoRows(sensitivitySamples: number): QualityRow[] {
  return [
    { label: 'minmax', pass: 'minmax', options: {} },
    { label: 'q-arvd S1+S2', pass: 'q-arvd', options: { 'sensitivity-samples': sensitivitySamples } },
  ];
}

/** Runs the whole demo and writes its outputs under `options.out`. */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { log, model = MODELS['tiny-arvd-l'], parallel = 2, quantizeProcesses = 3 } = options;
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const mod = (await import(model.rolloutPath)) as { evaluationPrompts: SeededPrompt[] };
  const prompts = options.evaluationPrompts ?? mod.evaluationPrompts.slice(0, 8);
  const inspect = inspectModel(loadModel(model.fp32Path), `${model.name}/model.onnx`, { norms: true });

  const { jobs } = planJobs(demoRows(options.sensitivitySamples ?? DEMO_SENSITIVITY_SAMPLES), BIT_WIDTHS, [model.rolloutPath], out, 'W4A8', true);
  for (const job of jobs) {
    const file = `${job.row.label.replace(/[ +]+/g, '-')}-${job.bits.label}`;
    job.output = join(out, `${file}.onnx`);
    job.options.report = join(out, `${file}.report.json`);
  }
  log.info(`quantizing ${model.name}: ${jobs.length} convert runs, ${quantizeProcesses} at a time`);
  let t0 = performance.now();
  const notes = (job: QuantJob) => [job.savesStatistics && 'collected the statistics', job.saves && 'measured S1', job.statisticsFrom && 'read the statistics', job.after && 'reused S1'].filter(Boolean).join(', ');
  const spec = (job: QuantJob) => ({ name: `${job.row.label} ${job.bits.label}`, path: job.output });
  const evaluateOptions = { fp32Path: model.fp32Path, prompts, rollout: model.rolloutPath, latencyRuns: 0 };
  // The minmax runs end while the first q-arvd run still collects: fp32 and the minmax models
  // are rolled out then, on the core they leave free; the q-arvd models are compared with
  // those fp32 videos at the end (the same rollouts and numbers as evaluating all at once).
  const early = jobs.filter((job) => job.row.pass === 'minmax');
  let pending = early.length;
  let first: Promise<EvaluationResult> | undefined;
  let overlapped = 0;
  const startEarly = () => {
    const t = performance.now();
    log.info(`evaluating fp32 and ${early.map(spec).map((m) => m.name).join(', ')} on ${prompts.length} held-out prompts (the fp32 model's noise seeds) while q-arvd runs, 1 process`);
    first = evaluateInParallel({ ...evaluateOptions, models: early.map(spec), workers: 1 }).finally(() => (overlapped = performance.now() - t));
    first.catch(() => {}); // awaited below; this only keeps an early failure from being unhandled meanwhile
  };
  if (pending === 0) startEarly();
  await runJobs(jobs, model.fp32Path, quantizeProcesses, (job) => {
    log.info(`  ${job.row.label} ${job.bits.label}: ${(job.ms! / 1000).toFixed(1)} s${notes(job) ? ` (${notes(job)})` : ''}`);
    if (job.row.pass === 'minmax' && --pending === 0) startEarly();
  });
  const quantize = performance.now() - t0;
  // The saved collection is an intermediate (hundreds of MB for tiny-arvd-l): not kept.
  for (const job of jobs) if (job.savesStatistics) rmSync(job.savesStatistics, { force: true });
  const reports: Record<string, QuantReport> = {};
  for (const job of jobs) reports[`${job.row.label} ${job.bits.label}`] = JSON.parse(readFileSync(job.options.report, 'utf8')) as QuantReport;
  const measured = reports['q-arvd S1+S2 W4A8'];
  const sensitivity = measured.sensitivity ?? [];
  const alpha = measured.alpha ?? [];
  writeFileSync(join(out, 'sensitivity.json'), JSON.stringify(sensitivity) + '\n');

  t0 = performance.now();
  const before = await first!;
  const late = jobs.filter((job) => job.row.pass !== 'minmax').map(spec);
  log.info(`evaluating ${late.map((m) => m.name).join(', ')} on the same prompts against fp32's videos, ${parallel} processes`);
  const after = await evaluateInParallel({ ...evaluateOptions, models: late, workers: parallel, reference: { videos: before.fp32.videos, dims: before.videoDims, chunks: before.chunks, replays: before.replays } });
  const byName = new Map([...before.models, ...after.models].map((m) => [m.name, m]));
  let evaluation: EvaluationResult = { ...before, models: jobs.map((job) => byName.get(spec(job).name)!) };
  const latencyRuns = options.latencyRuns ?? 20;
  if (latencyRuns > 0) evaluation = await addLatency(evaluation, model.rolloutPath, latencyRuns);
  const evaluate = performance.now() - t0;
  for (const bits of BIT_WIDTHS) {
    const rows = [evaluation.fp32, ...METHODS.map((m) => evaluation.models.find((e) => e.name === `${m} ${bits.label}`)!)];
    writeStrip(join(out, `frames-${bits.label}.png`), rows.map((m) => m.videos[0]!));
  }
  writeFileSync(join(out, 'report.html'), renderHtmlReport({ inspect, quant: measured, title: `Q-ARVD on ${model.name} (W4A8, S1+S2)` }));
  const { replays: _replays, ...written } = evaluation; // fp32's replayed calls: megabytes of tensors, not a result
  writeJsonAtomic(join(out, 'evaluation.json'), { ...written, fp32: strip(evaluation.fp32), models: evaluation.models.map(strip), sensitivity, alpha });
  const s1Samples = measured.calibration?.sensitivity?.samples;
  const table = [outlierSummary(inspect), sensitivityLine(sensitivity, alpha, s1Samples), '', formatTable(evaluation)].join('\n');
  return { inspect, sensitivity, alpha, evaluation, reports, table, timings: { quantize, evaluate, overlapped } };
}

function strip<T extends { videos: unknown }>(m: T): Omit<T, 'videos'> {
  const { videos: _v, ...rest } = m;
  return rest;
}

/** The Figure-4 roll-up as a few lines: share of layers with outlier channels per type. */
function outlierSummary(r: InspectReport): string {
  const rows = r.rollup.rows.filter((row) => row.flagged > 0).map((row) => `  ${row.type.padEnd(14)} ${row.flagged}/${row.layers} layers`);
  return [`S2 (tau ${r.options.tau}, gamma ${r.options.gamma}): ${r.totals.withOutliers} of ${r.totals.layers} linear layers have outlier input channels (${r.totals.rawOutlierRows} rows, ${r.totals.outlierRows} after aligning to ${r.options.align})`, ...rows].join('\n');
}

function sensitivityLine(s: number[], alpha: number[], samples?: number): string {
  const f = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(', ');
  return `S1 chunk sensitivity (normalised${samples ? `, ${samples} rollouts` : ''}): [${f(s)}]\n   loss weights α (mean 1):        [${f(alpha)}]`;
}
