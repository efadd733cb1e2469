/**
 * The demo pipeline behind `npm run demo`, as a function so that a test can run a shortened
 * version: inspect → q-arvd (S1+S2, and S2 alone) and the MinMax baseline at W8A8, W4A8 and
 * weight-only W4 → evaluation on held-out prompts with the fp32 model's noise seeds.
 *
 * S1 is measured once, in the W4A8 q-arvd run (its chunk sensitivity is a property of the
 * model and the rollout, measured with plainly quantized weights and activations), and that
 * curve is reused by the other q-arvd runs through the `sensitivity` option.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import type { Logger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { type Pass, resolveOptions } from '../../src/passes/pass.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass, writeJsonAtomic } from '../../src/passes/quant/run-quant-pass.ts';
import { renderHtmlReport } from '../../src/report/html.ts';
import { inspectModel } from '../../src/report/inspect.ts';
import type { InspectReport } from '../../src/report/inspect-schema.ts';
import { evaluateModels, type EvaluationResult, formatTable } from './evaluate.ts';
import { writeStrip } from './frames.ts';
import { MODEL_PATH } from './prompt.ts';
import type { SeededPrompt } from './prompts.ts';
import * as tinyArvdRollout from './rollout.ts';

/** The bit-widths of the table. */
export const BIT_WIDTHS = [
  { label: 'W8A8', options: { 'w-bits': '8', 'a-bits': '8' } },
  { label: 'W4A8', options: { 'w-bits': '4', 'a-bits': '8' } },
  { label: 'W4', options: { 'w-bits': '4', 'a-bits': 'none' } },
] as const;

/** The methods of the table, in row order within a bit-width. */
export const METHODS = ['minmax', 'q-arvd S2', 'q-arvd S1+S2'] as const;

/** What {@link runDemo} takes; the defaults are the full demo. */
export interface DemoOptions {
  /** Output folder (models, reports, frames, sensitivity). */
  out: string;
  /** Calibration rollouts (default: all of the module's 16 prompts). */
  calibrationSamples?: number;
  /** Evaluation prompts with their seeds (default: the module's 8 held-out ones). */
  evaluationPrompts?: SeededPrompt[];
  /** Timed runs per model for the latency median (default 20). */
  latencyRuns?: number;
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
}

/** Runs the whole demo and writes its outputs under `options.out`. */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { out, log } = options;
  mkdirSync(out, { recursive: true });
  const calib = calibrationModule(options.calibrationSamples);
  const ctx = { log, verbose: false, modelDir: undefined };
  const inspect = inspectModel(loadModel(MODEL_PATH), 'tiny-arvd/model.onnx', { norms: true });

  const reports: Record<string, QuantReport> = {};
  const models: { name: string; path: string }[] = [];
  const sensitivityFile = join(out, 'sensitivity.json');
  const quantize = async (method: (typeof METHODS)[number], bits: (typeof BIT_WIDTHS)[number], extra: Record<string, unknown>) => {
    const pass: Pass<any> = method === 'minmax' ? minmax : qArvd;
    const model = loadModel(MODEL_PATH);
    const resolved = resolveOptions(pass, { ...bits.options, ...extra });
    const result = await runQuantPass(model, ctx, method === 'minmax' ? { ...resolved, dualScale: false } : resolved, method === 'minmax' ? 'minmax' : 'q-arvd', calib);
    const file = `${method.replace(/[ +]+/g, '-')}-${bits.label}`;
    saveModel(model, join(out, `${file}.onnx`));
    writeJsonAtomic(join(out, `${file}.report.json`), result.report);
    reports[`${method} ${bits.label}`] = result.report as QuantReport;
    return { name: `${method} ${bits.label}`, path: join(out, `${file}.onnx`) };
  };

  // S1 first, at W4A8 where it matters most; its curve is then reused.
  const w4a8 = BIT_WIDTHS[1];
  const s1 = await quantize('q-arvd S1+S2', w4a8, { 'frame-weighting': true });
  const measured = reports[s1.name]!;
  const sensitivity = measured.sensitivity ?? [];
  const alpha = measured.alpha ?? [];
  writeFileSync(sensitivityFile, JSON.stringify(sensitivity) + '\n');

  for (const bits of BIT_WIDTHS) {
    models.push(await quantize('minmax', bits, {}));
    models.push(await quantize('q-arvd S2', bits, { 'frame-weighting': false }));
    models.push(bits === w4a8 ? s1 : await quantize('q-arvd S1+S2', bits, { 'frame-weighting': true, sensitivity: sensitivityFile }));
  }

  log.info(`evaluating ${models.length} models on ${options.evaluationPrompts?.length ?? tinyArvdRollout.evaluationPrompts.length} held-out prompts (the fp32 model's noise seeds)`);
  const evaluation = await evaluateModels({ fp32Path: MODEL_PATH, models, prompts: options.evaluationPrompts, latencyRuns: options.latencyRuns });
  for (const bits of BIT_WIDTHS) {
    const rows = [evaluation.fp32, ...['minmax', 'q-arvd S1+S2'].map((m) => evaluation.models.find((e) => e.name === `${m} ${bits.label}`)!)];
    writeStrip(join(out, `frames-${bits.label}.png`), rows.map((m) => m.videos[0]!));
  }
  writeFileSync(join(out, 'report.html'), renderHtmlReport({ inspect, quant: measured, title: 'Q-ARVD on tiny-arvd (W4A8, S1+S2)' }));
  writeJsonAtomic(join(out, 'evaluation.json'), { ...evaluation, fp32: strip(evaluation.fp32), models: evaluation.models.map(strip), sensitivity, alpha });
  const table = [outlierSummary(inspect), sensitivityLine(sensitivity, alpha), '', formatTable(evaluation)].join('\n');
  return { inspect, sensitivity, alpha, evaluation, reports, table };
}

/** The tiny-arvd rollout module, limited to the first `samples` calibration prompts. */
function calibrationModule(samples?: number): CalibrationModule {
  const prompts = samples === undefined ? tinyArvdRollout.prompts : tinyArvdRollout.prompts.slice(0, samples);
  return { rollout: tinyArvdRollout.rollout as CalibrationModule['rollout'], prompts, samples: prompts.length };
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

function sensitivityLine(s: number[], alpha: number[]): string {
  const f = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(', ');
  return `S1 chunk sensitivity (normalised): [${f(s)}]\n   loss weights α (mean 1):        [${f(alpha)}]`;
}
