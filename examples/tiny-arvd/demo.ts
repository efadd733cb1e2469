/**
 * The demo pipeline behind `npm run demo`, as a function so that a test can run a shortened
 * version: inspect → q-arvd (S1+S2) and the MinMax baseline at W8A8, W4A8 and weight-only W4
 * → evaluation on held-out prompts with the fp32 model's noise seeds. The demo's model is
 * tiny-arvd-l; the test runs it on the small tiny-arvd.
 *
 * To stay under three minutes on two cores: the quantizations run as `convert` child
 * processes two at a time (examples/quality/jobs.ts); S1 is measured once, in the W4A8 q-arvd
 * run, on the first `sensitivitySamples` calibration rollouts (its chunk sensitivity is a
 * property of the model and the rollout), and that curve is reused at the other bit-widths;
 * the evaluation deals the prompts to two processes. The table says how many prompts.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../../src/graph/serde/io.ts';
import type { Logger } from '../../src/passes/log.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { writeJsonAtomic } from '../../src/passes/quant/run-quant-pass.ts';
import { renderHtmlReport } from '../../src/report/html.ts';
import { inspectModel } from '../../src/report/inspect.ts';
import type { InspectReport } from '../../src/report/inspect-schema.ts';
import { MODELS, type QualityModel } from '../quality/harness.ts';
import { planJobs, runJobs } from '../quality/jobs.ts';
import { BIT_WIDTHS as ALL_BIT_WIDTHS, type QualityRow } from '../quality/rows.ts';
import { type EvaluationResult, formatTable } from './evaluate.ts';
import { evaluateInParallel } from './evaluate-parallel.ts';
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
  /** Child processes for quantization and evaluation (default 2). */
  parallel?: number;
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
  /** Wall time of each step, in ms. */
  timings: { quantize: number; evaluate: number };
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
  const { log, model = MODELS['tiny-arvd-l'], parallel = 2 } = options;
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const mod = (await import(model.rolloutPath)) as { evaluationPrompts: SeededPrompt[] };
  const prompts = options.evaluationPrompts ?? mod.evaluationPrompts.slice(0, 8);
  const inspect = inspectModel(loadModel(model.fp32Path), `${model.name}/model.onnx`, { norms: true });

  const { jobs } = planJobs(demoRows(options.sensitivitySamples ?? DEMO_SENSITIVITY_SAMPLES), BIT_WIDTHS, [model.rolloutPath], out, 'W4A8');
  for (const job of jobs) {
    const file = `${job.row.label.replace(/[ +]+/g, '-')}-${job.bits.label}`;
    job.output = join(out, `${file}.onnx`);
    job.options.report = join(out, `${file}.report.json`);
  }
  log.info(`quantizing ${model.name}: ${jobs.length} convert runs, ${parallel} at a time`);
  let t0 = performance.now();
  await runJobs(jobs, model.fp32Path, parallel, (job) => log.info(`  ${job.row.label} ${job.bits.label}: ${(job.ms! / 1000).toFixed(1)} s${job.saves ? ' (measured S1)' : ''}`));
  const quantize = performance.now() - t0;
  const reports: Record<string, QuantReport> = {};
  for (const job of jobs) reports[`${job.row.label} ${job.bits.label}`] = JSON.parse(readFileSync(job.options.report, 'utf8')) as QuantReport;
  const measured = reports['q-arvd S1+S2 W4A8'];
  const sensitivity = measured.sensitivity ?? [];
  const alpha = measured.alpha ?? [];
  writeFileSync(join(out, 'sensitivity.json'), JSON.stringify(sensitivity) + '\n');

  const models = jobs.map((job) => ({ name: `${job.row.label} ${job.bits.label}`, path: job.output }));
  log.info(`evaluating ${models.length} models on ${prompts.length} held-out prompts (the fp32 model's noise seeds), ${parallel} processes`);
  t0 = performance.now();
  const evaluation = await evaluateInParallel({ fp32Path: model.fp32Path, models, prompts, rollout: model.rolloutPath, latencyRuns: options.latencyRuns, workers: parallel });
  const evaluate = performance.now() - t0;
  for (const bits of BIT_WIDTHS) {
    const rows = [evaluation.fp32, ...METHODS.map((m) => evaluation.models.find((e) => e.name === `${m} ${bits.label}`)!)];
    writeStrip(join(out, `frames-${bits.label}.png`), rows.map((m) => m.videos[0]!));
  }
  writeFileSync(join(out, 'report.html'), renderHtmlReport({ inspect, quant: measured, title: `Q-ARVD on ${model.name} (W4A8, S1+S2)` }));
  writeJsonAtomic(join(out, 'evaluation.json'), { ...evaluation, fp32: strip(evaluation.fp32), models: evaluation.models.map(strip), sensitivity, alpha });
  const s1Samples = measured.calibration?.sensitivity?.samples;
  const table = [outlierSummary(inspect), sensitivityLine(sensitivity, alpha, s1Samples), '', formatTable(evaluation)].join('\n');
  return { inspect, sensitivity, alpha, evaluation, reports, table, timings: { quantize, evaluate } };
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
