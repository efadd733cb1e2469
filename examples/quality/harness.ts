/**
 * The quality table: every row of `rows.ts` at every bit-width, calibrated on each of
 * `draws` calibration draws (the same calibration prompts with other noise, see
 * `calibrationDraw`), evaluated against fp32 on the model's fixed evaluation prompts (disjoint
 * from the calibration prompts) with the parallel evaluator. Prints, per row, the final-video
 * MSE as the mean over draws with its min–max, the PSNR of that mean, the ratio to minmax at
 * the same bits and draw (mean and min–max) and the per-chunk MSE (mean over draws).
 *
 * Models whose files are byte-identical (weight-only rows that calibration does not change
 * today, in every draw) are evaluated once.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signedRankTest } from '../../src/kernels/signed-rank.ts';
import type { EvaluationResult } from '../tiny-arvd/evaluate.ts';
import { evaluateInParallel } from '../tiny-arvd/evaluate-parallel.ts';
import type { SeededPrompt } from '../tiny-arvd/prompts.ts';
import { drawModuleFile, planJobs, type QuantJob, runJobs, type SkippedRow } from './jobs.ts';
import { BIT_WIDTHS, type BitWidth, type QualityRow, ROWS } from './rows.ts';
import { writeTwin } from './twins.ts';

/** A model of the table: its fp32 file and its rollout (calibration) module. */
export interface QualityModel {
  name: string;
  fp32Path: string;
  rolloutPath: string;
}

const example = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

/** The bundled ARVDs. */
export const MODELS: Record<string, QualityModel> = {
  'tiny-arvd': { name: 'tiny-arvd', fp32Path: example('tiny-arvd/model.onnx'), rolloutPath: example('tiny-arvd/rollout.ts') },
  'tiny-arvd-l': { name: 'tiny-arvd-l', fp32Path: example('tiny-arvd-l/model.onnx'), rolloutPath: example('tiny-arvd-l/rollout.ts') },
  // Trained here on a CPU after every default was chosen (2026-12-06): a held-out check of them.
  'tiny-arvd-m': { name: 'tiny-arvd-m', fp32Path: example('tiny-arvd-m/model.onnx'), rolloutPath: example('tiny-arvd-m/rollout.ts') },
  // Closer to Wan2.1 (Conv3d patch embedding, 3-D RoPE, RMSNorm qk-norm), trained here on a CPU
  // (2026-12-06, eighteenth session): a second held-out check of the defaults.
  'tiny-wan': { name: 'tiny-wan', fp32Path: example('tiny-wan/model.onnx'), rolloutPath: example('tiny-wan/rollout.ts') },
};

/** What {@link runQuality} takes. */
export interface QualityOptions {
  model: QualityModel;
  /** Calibration draws (default 2). */
  draws?: number;
  /** The first N of the module's evaluation prompts (default all). */
  prompts?: number;
  /**
   * Noise seeds per evaluation prompt (default 1: the module's own seed); seed k of a prompt is
   * its own plus {@link EVALUATION_SEED_STRIDE}·k. More rollouts of the same prompts: the
   * per-rollout spread of these models' final videos is wide (docs/split-check.md).
   */
  seeds?: number;
  bitWidths?: readonly BitWidth[];
  rows?: readonly QualityRow[];
  /** Parallel child processes, for quantization and for evaluation (default 2). */
  parallel?: number;
  /** Folder for the models and calibration tables. */
  out: string;
  /**
   * Measure S1 at this bit-width only (per draw) and reuse its curve at the others; default:
   * per bit-width. With it, each draw's calibration statistics are collected once and read by
   * the draw's other q-arvd jobs (`load-statistics`, the same models as collecting again), as
   * the demo does: what makes the table affordable on tiny-arvd-l.
   */
  s1From?: string;
  /** Reuse the models an interrupted run with the same options left in `out`. */
  resume?: boolean;
  /**
   * Twins per evaluated model and of fp32 (twins.ts: float initializers moved by one ulp),
   * evaluated beside them: the final-video spread of models computing the same function.
   * Default 0 (none).
   */
  twins?: number;
  log?: (line: string) => void;
}

/** One evaluated row at one bit-width. */
export interface QualityEntry {
  row: QualityRow;
  bits: BitWidth;
  /** Per draw: final-video MSE, per-chunk MSE, per-prompt MSE, one-step error (see `ModelEvaluation.stepError`), quantization wall time (ms), the model file, and its twins' results (with `twins`). */
  draws: { mse: number; chunkMse: number[]; promptMse: number[]; stepError: number; ms: number; path: string; twins?: TwinResult[] }[];
}

/** Everything {@link runQuality} measured. */
export interface QualityResult {
  model: QualityModel;
  prompts: SeededPrompt[];
  calibrationSamples: number;
  draws: number;
  entries: QualityEntry[];
  skipped: SkippedRow[];
  /** Wall times in ms: quantization (all jobs), evaluation, and the S1-measuring jobs. */
  timings: { quantize: number; evaluate: number; jobs: { id: string; ms: number; s1: boolean }[] };
  /** Where S1 was measured: per bit-width, or at one bit-width and reused. */
  s1From?: string;
  /** Distinct model files evaluated (identical files count once). */
  evaluated: number;
  /** fp32's twins against fp32 (with `twins`). */
  fp32Twins?: TwinResult[];
}

/** Quantizes, evaluates and collects the table of one model. */
export async function runQuality(options: QualityOptions): Promise<QualityResult> {
  const { model, draws = 2, parallel = 2, log = () => {} } = options;
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const mod = (await import(model.rolloutPath)) as { evaluationPrompts: SeededPrompt[]; samples: number };
  const prompts = withSeeds(mod.evaluationPrompts.slice(0, options.prompts ?? mod.evaluationPrompts.length), options.seeds ?? 1);
  const bitWidths = options.bitWidths ?? BIT_WIDTHS;
  if (options.s1From !== undefined && !bitWidths.some((b) => b.label === options.s1From)) throw new Error(`s1From ${options.s1From} is not one of the table's bit-widths (${bitWidths.map((b) => b.label).join(', ')})`);
  const calibFiles = Array.from({ length: draws }, (_, d) => drawModuleFile(model.rolloutPath, d, out));
  const { jobs, skipped } = planJobs(options.rows ?? ROWS, bitWidths, calibFiles, out, options.s1From, options.s1From !== undefined);
  log(`${model.name}: ${jobs.length} quantizations (${draws} draw(s)), ${skipped.length} row(s) skipped; ${parallel} in parallel`);

  let t0 = performance.now();
  let finished = 0;
  await runJobs(jobs, model.fp32Path, parallel, (job) => log(`  [${++finished}/${jobs.length}] ${job.id} ${(job.ms! / 1000).toFixed(1)} s${job.saves ? ' (measured S1)' : ''}`), options.resume);
  const quantize = performance.now() - t0;

  // One evaluation per distinct file.
  const byHash = new Map<string, string>();
  const hashOf = new Map<QuantJob, string>();
  for (const job of jobs) {
    const h = createHash('sha256').update(readFileSync(job.output)).digest('hex');
    hashOf.set(job, h);
    if (!byHash.has(h)) byHash.set(h, job.output);
  }
  const distinct = [...byHash.entries()].map(([h, path]) => ({ name: h.slice(0, 16), path }));
  const twins = twinSpecs(options.twins ?? 0, [...distinct, { name: 'fp32', path: model.fp32Path }], join(out, 'twins'));
  log(`${model.name}: evaluating ${distinct.length} distinct models${twins.length ? ` and ${twins.length} twins` : ''} on ${prompts.length} prompts, ${parallel} processes`);
  t0 = performance.now();
  const evaluation: EvaluationResult = await evaluateInParallel({ fp32Path: model.fp32Path, models: [...distinct, ...twins], prompts, rollout: model.rolloutPath, latencyRuns: 0, workers: parallel });
  const evaluate = performance.now() - t0;
  const byName = new Map(evaluation.models.map((m) => [m.name, m]));

  const entries: QualityEntry[] = [];
  for (const job of jobs) {
    let entry = entries.find((e) => e.row === job.row && e.bits === job.bits);
    if (!entry) entries.push((entry = { row: job.row, bits: job.bits, draws: [] }));
    const e = byName.get(hashOf.get(job)!.slice(0, 16))!;
    const twinResults = twinsOf(byName, e.name);
    entry.draws[job.draw] = { mse: e.mse, chunkMse: e.chunkMse, promptMse: e.promptMse, stepError: e.stepError, ms: job.ms!, path: job.output, ...(twinResults.length ? { twins: twinResults } : {}) };
  }
  const fp32Twins = twinsOf(byName, 'fp32');
  return {
    model,
    prompts,
    calibrationSamples: mod.samples,
    draws,
    entries,
    skipped,
    timings: { quantize, evaluate, jobs: jobs.map((j) => ({ id: j.id, ms: j.ms!, s1: Boolean(j.saves) })) },
    evaluated: distinct.length,
    s1From: options.s1From,
    ...(fp32Twins.length ? { fp32Twins } : {}),
  };
}

/** Seed k of an evaluation prompt is its own plus this times k (the modules' seeds are 90001…, calibration draws' 20000 + 1000·draw + sample). */
export const EVALUATION_SEED_STRIDE = 1000;

/** Each prompt with `seeds` noise seeds, seed by seed (the first: the prompts as given). */
export function withSeeds(prompts: SeededPrompt[], seeds: number): SeededPrompt[] {
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`seeds: expected a whole number ≥ 1, got ${seeds}`);
  return Array.from({ length: seeds }, (_, k) => prompts.map((p) => ({ prompt: p.prompt, seed: p.seed + EVALUATION_SEED_STRIDE * k }))).flat();
}

/** The twins to evaluate: `n` per model, written into `dir`, named `<model>~t<k>`. */
function twinSpecs(n: number, models: { name: string; path: string }[], dir: string): { name: string; path: string }[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`twins: expected a whole number ≥ 0, got ${n}`);
  if (n === 0) return [];
  mkdirSync(dir, { recursive: true });
  return models.flatMap((m) =>
    Array.from({ length: n }, (_, k) => {
      const path = join(dir, `${m.name}~t${k + 1}.onnx`);
      writeTwin(m.path, path, k + 1);
      return { name: `${m.name}~t${k + 1}`, path };
    }),
  );
}

/** One twin's final-video MSE and one-step error (twins.ts). */
export interface TwinResult {
  mse: number;
  stepError: number;
}

/** The evaluated model `name`'s twins, in order. */
function twinsOf(byName: Map<string, { mse: number; stepError: number }>, name: string): TwinResult[] {
  const out: TwinResult[] = [];
  for (let k = 1; byName.has(`${name}~t${k}`); k++) {
    const { mse, stepError } = byName.get(`${name}~t${k}`)!;
    out.push({ mse, stepError });
  }
  return out;
}

const exp = (x: number): string => (x === 0 ? '0' : x.toExponential(2));
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Mean of the measured times (NaN: reused from an earlier run), in s. */
const seconds = (ms: number[]): string => {
  const run = ms.filter((x) => !Number.isNaN(x));
  return run.length ? (mean(run) / 1000).toFixed(1) : 'reused';
};
const range = (xs: number[], f: (x: number) => string): string => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

/** ", mean 95.6 s" for the S1 jobs' wall times, a note when they were all reused, nothing without S1 jobs. */
const s1Time = (ms: number[]): string => {
  // No S1 job at all (a run of minmax rows only): nothing to time, nothing reused.
  if (!ms.length) return '';
  const t = seconds(ms);
  return t === 'reused' ? ' (reused: their times are in the interrupted run\'s log)' : `, mean ${t} s`;
};

/** A row against another, rollout by rollout (the same prompt, noise and draw). */
interface Paired {
  /** Geometric mean of the per-rollout MSE ratios (NaN when no rollout has both MSEs positive). */
  geometric: number;
  /** Rollouts with a lower MSE than the other row's, of `n`. */
  below: number;
  n: number;
  /** Two-sided p of Wilcoxon's signed-rank test of the per-rollout log ratios (src/kernels/signed-rank.ts). */
  p: number;
}

/**
 * `e` against `base`, rollout by rollout. A tiny-arvd-l rollout's error is heavy-tailed (one
 * shape that ends elsewhere outweighs ten that do not), so the ratio of means moves with a few
 * rollouts; the geometric mean and the count weigh every rollout alike, and the signed-rank
 * test says whether the rollouts favour one row beyond their spread (the split check's test).
 */
function paired(e: QualityEntry, base: QualityEntry): Paired {
  const logs: number[] = [];
  let below = 0;
  e.draws.forEach((d, i) =>
    d.promptMse.forEach((m, p) => {
      const b = base.draws[i].promptMse[p];
      if (m > 0 && b > 0) logs.push(Math.log(m / b));
      if (m < b) below++;
    }),
  );
  return { geometric: logs.length ? Math.exp(mean(logs)) : Number.NaN, below, n: e.draws.reduce((n, d) => n + d.promptMse.length, 0), p: signedRankTest(logs).p };
}

/** The table's paired cells against minmax: geometric mean, rollouts below, the test's p. */
function pairedCells(e: QualityEntry, base: QualityEntry): string[] {
  const c = paired(e, base);
  return [Number.isNaN(c.geometric) ? '-' : c.geometric.toFixed(3), `${c.below}/${c.n}`, formatP(c.p)];
}

const formatP = (p: number): string => (p < 0.001 ? p.toExponential(0) : p.toFixed(3));

/**
 * Lines comparing each `… dual auto` row with its `… dual off` row at the same bits (issue 14:
 * auto never worse than off): mean-MSE ratio per draw, then the paired comparison over all
 * rollouts. Nothing when the table has no such pair.
 */
function dualPairs(entries: QualityEntry[]): string[] {
  const lines: string[] = [];
  for (const auto of entries.filter((e) => / dual auto\b/.test(e.row.label))) {
    const off = entries.find((e) => e.bits.label === auto.bits.label && e.row.label === auto.row.label.replace(/ dual auto\b/, ' dual off'));
    if (!off) continue;
    const c = paired(auto, off);
    const perDraw = auto.draws.map((d, i) => (d.mse / off.draws[i].mse).toFixed(3)).join(', ');
    lines.push(`${auto.bits.label} ${auto.row.label} ÷ ${off.row.label}: mean MSE per draw ${perDraw}; paired ${Number.isNaN(c.geometric) ? '-' : c.geometric.toFixed(3)}, ${c.below}/${c.n} rollouts below, p = ${formatP(c.p)}`);
  }
  return lines.length ? ['', 'dual-scale auto against off, same method and bits (paired over rollouts; p: signed-rank test, two-sided):', ...lines] : [];
}

/** The table as aligned text: a header line, then per bit-width its rows and skipped rows. */
export function formatQuality(result: QualityResult): string {
  const chunks = result.entries[0]?.draws[0]?.chunkMse.length ?? 0;
  const withTwins = result.entries.some((e) => e.draws.some((d) => d.twins?.length));
  const header = ['bits', 'row', 'MSE mean', 'MSE min–max', 'PSNR dB', '×minmax', '×minmax min–max', 'paired ×minmax', 'below minmax', 'p ×minmax', '1-step', '1-step ×minmax', ...(withTwins ? ['twin ×'] : []), ...Array.from({ length: chunks }, (_, c) => `c${c}`), 'quant s'];
  const lines: string[][] = [];
  const notes: string[] = [];
  const bitLabels = [...new Set([...result.entries.map((e) => e.bits.label), ...result.skipped.map((s) => s.bits.label)])];
  for (const label of bitLabels) {
    const entries = result.entries.filter((e) => e.bits.label === label);
    const base = entries.find((e) => e.row.pass === 'minmax' && Object.keys(e.row.options).length === 0);
    for (const e of entries) {
      const mses = e.draws.map((d) => d.mse);
      const m = mean(mses);
      const ratios = base ? e.draws.map((d, i) => d.mse / base.draws[i].mse) : [];
      lines.push([
        label,
        e.row.label,
        exp(m),
        range(mses, exp),
        (10 * Math.log10(4 / m)).toFixed(2),
        base ? (m / mean(base.draws.map((d) => d.mse))).toFixed(3) : '-',
        base ? range(ratios, (x) => x.toFixed(3)) : '-',
        ...(base ? pairedCells(e, base) : ['-', '-', '-']),
        exp(mean(e.draws.map((d) => d.stepError))),
        base ? range(e.draws.map((d, i) => d.stepError / base.draws[i].stepError), (x) => x.toFixed(3)) : '-',
        ...(withTwins ? [twinCell(e)] : []),
        ...Array.from({ length: chunks }, (_, c) => exp(mean(e.draws.map((d) => d.chunkMse[c])))),
        seconds(e.draws.map((d) => d.ms)),
      ]);
    }
  }
  for (const row of new Set(result.skipped.map((s) => s.row))) {
    const at = result.skipped.filter((s) => s.row === row);
    notes.push(`skipped: ${row.label} at ${at.map((s) => s.bits.label).join(', ')} (${at[0].note})`);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const t = result.timings;
  const s1 = t.jobs.filter((j) => j.s1);
  const reused = t.jobs.filter((j) => Number.isNaN(j.ms)).length;
  const s1Where = `${result.s1From ? `S1 measured at ${result.s1From} per draw and read at the other bit-widths with quantized activations` : 'the other S1 rows read their (bits, draw) curve'}; weight-only q-arvd rows measure their own, not counted here`;
  return [
    `${result.model.name}: final-video MSE vs fp32 over ${result.prompts.length} evaluation prompts${seedNote(result.prompts)} (fixed, disjoint from the ${result.calibrationSamples} calibration prompts), ` +
      `${result.draws} calibration draw(s) (same prompts, other noise); mean and min–max over draws; PSNR = 10·log10(4/mean MSE); ` +
      `×minmax = mean MSE ÷ minmax's mean MSE at the same bits (min–max: per draw); paired ×minmax = geometric mean over rollouts (prompt × draw) of the rollout's MSE ÷ minmax's, below minmax = rollouts with a lower MSE than minmax's; p ×minmax = two-sided p of Wilcoxon's signed-rank test of those per-rollout log ratios (small: the rollouts favour one side beyond their spread); ` +
      `1-step = one-step error (fp32's calls replayed on the model, relative squared output error; not amplified by the rollout), mean over draws, and its ratio to minmax's per draw (min–max); ` +
      (withTwins ? `twin × = the MSE of the model's twins (its float initializers but the quantization scales moved by one ulp: the same function to float rounding) ÷ the model's, min–max over draws and twins (ratios between rows inside that spread are the rollout's chaos); ` : '') +
      `c0… = per-chunk MSE, mean over draws; quant s = mean wall time of one convert run`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...lines.map(line),
    ...dualPairs(result.entries),
    ...(notes.length ? ['', ...notes] : []),
    '',
    `time: quantization ${(t.quantize / 1000).toFixed(1)} s (${t.jobs.length} convert runs${reused ? `, ${reused} reused from an interrupted run` : ''}; ${s1.length} measured S1${s1Time(s1.map((j) => j.ms))}; ` +
      `${s1Where}), evaluation ${(t.evaluate / 1000).toFixed(1)} s (${result.evaluated} distinct models + fp32${withTwins ? ' and their twins' : ''})`,
    ...(result.fp32Twins?.length ? [`fp32's twins against fp32: final-video MSE ${result.fp32Twins.map((t) => exp(t.mse)).join(', ')}, one-step ${result.fp32Twins.map((t) => exp(t.stepError)).join(', ')}`] : []),
  ].join('\n');
}

/** " (8 prompts × 2 seeds)" when a prompt appears with several seeds. */
function seedNote(prompts: SeededPrompt[]): string {
  const distinct = new Set(prompts.map((p) => p.prompt)).size;
  return distinct < prompts.length ? ` (${distinct} prompts × ${prompts.length / distinct} seeds)` : '';
}

/** The twin spread of one row: twin MSE ÷ the model's, min–max over its draws' twins ('-' without twins). */
function twinCell(e: QualityEntry): string {
  const ratios = e.draws.flatMap((d) => (d.twins ?? []).map((t) => t.mse / d.mse));
  return ratios.length ? range(ratios, (x) => x.toFixed(2)) : '-';
}
