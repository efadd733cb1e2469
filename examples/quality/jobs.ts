/**
 * Quantization jobs of the quality table: one `convert` run per (row, bit-width, draw), in
 * child processes, at most `jobs` at a time (one onnxruntime thread each, so two jobs use the
 * two cores of the machine the figures come from).
 *
 * Calibration is shared where the pass allows it: per (bit-width, draw) the first q-arvd row
 * with S1 on measures the chunk sensitivity and saves its calibration table; the other q-arvd
 * rows with S1 on read the curve from that table (`--q-arvd.sensitivity`) instead of measuring
 * it again (S1 costs about 4.5 rollouts per calibration video, the collection one).
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import minmax from '../../src/passes/minmax.ts';
import type { Pass } from '../../src/passes/pass.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { BitWidth, QualityRow } from './rows.ts';

const CONVERT = fileURLToPath(new URL('../../bin/convert.js', import.meta.url));
const ROLLOUT_MODULE = fileURLToPath(new URL('../tiny-arvd/rollout-module.ts', import.meta.url));
/** onnxruntime's quantizer reproduced (dev-time tooling, run through tsx in a child process). */
const RECIPE_CLI = fileURLToPath(new URL('../../bench/peers/onnxruntime-recipe-cli.ts', import.meta.url));
const RECIPES = ['static', 'nbits', 'dynamic'];
const PASSES: Record<Exclude<QualityRow['pass'], 'onnxruntime'>, Pass<any>> = { minmax, 'q-arvd': qArvd };

/** One `convert` run. */
export interface QuantJob {
  /** File stem: `<row>-<bits>-d<draw>`. */
  id: string;
  row: QualityRow;
  bits: BitWidth;
  draw: number;
  /** Pass options as CLI strings (without the calibration table options). */
  options: Record<string, string>;
  output: string;
  /** The calibration table this job saves for the other rows of its (bit-width, draw). */
  saves?: string;
  /** The job whose table gives this job's S1 curve. */
  after?: QuantJob;
  /** The S1 curve (`save-sensitivity`) this job writes as soon as it has measured it; its `after` jobs read that instead of the table. */
  savesSensitivity?: string;
  /** The statistics file (`save-statistics`) this job writes right after its collect step. */
  savesStatistics?: string;
  /** The job whose statistics file this job reads instead of collecting; it starts as soon as that file exists. */
  statisticsFrom?: QuantJob;
  /** Wall time of the run, in ms (set when it has run; NaN when an earlier run's file was reused). */
  ms?: number;
}

/** A row left out at a bit-width, with the reason. */
export interface SkippedRow {
  row: QualityRow;
  bits: BitWidth;
  note: string;
}

/** The CLI string of an option value. */
const cli = (v: string | number | boolean): string => String(v);

/**
 * The options of `row` at `bits`, as the CLI would pass them, or the pass's own message when
 * it does not declare an option or rejects a value (the row is then skipped).
 */
export function rowOptions(row: QualityRow, bits: BitWidth, calib: string): { options: Record<string, string> } | { skip: string } {
  if (row.pass === 'onnxruntime') return recipeOptions(row, calib);
  const pass = PASSES[row.pass];
  const pinned = Object.entries(row.pinned ?? {}).filter(([k]) => k in pass.options);
  const options: Record<string, string> = { ...bits.options, calib, 'calib-threads': '1' };
  for (const [k, v] of [...pinned, ...Object.entries(row.options)]) options[k] = cli(v);
  try {
    resolveOptions(pass, options);
  } catch (e) {
    return { skip: (e as Error).message.replace(/; valid keys: .*/, '') };
  }
  return { options };
}

/** The options of an onnxruntime recipe row: its own, and the calibration module for the static recipe. */
function recipeOptions(row: QualityRow, calib: string): { options: Record<string, string> } | { skip: string } {
  const recipe = String(row.options.recipe);
  if (!RECIPES.includes(recipe)) return { skip: `onnxruntime recipe '${recipe}' unknown; known: ${RECIPES.join(', ')}` };
  const options: Record<string, string> = Object.fromEntries(Object.entries(row.options).map(([k, v]) => [k, cli(v)]));
  if (recipe === 'static') options.calib = calib;
  return { options };
}

/**
 * A calibration module file for draw `draw` of the rollout module at `rolloutPath`
 * (draw 0: the module itself), written into `dir`.
 */
export function drawModuleFile(rolloutPath: string, draw: number, dir: string): string {
  if (draw === 0) return rolloutPath;
  // .mts: an ES module wherever `dir` is (a temp folder has no package.json saying "module").
  const file = join(dir, `calibration-draw-${draw}.mts`);
  writeFileSync(
    file,
    `// Calibration draw ${draw} of ${rolloutPath} (written by examples/quality/jobs.ts).\n` +
      `import * as base from ${JSON.stringify(rolloutPath)};\n` +
      `import { calibrationDraw } from ${JSON.stringify(ROLLOUT_MODULE)};\n` +
      `export const { prompts, samples, rollout } = calibrationDraw(base, ${draw});\n`,
  );
  return file;
}

/**
 * The jobs (and skipped rows) of one model: every row at every bit-width and draw.
 * @param s1From a bit-width label: measure S1 there only and reuse its curve at every
 *   bit-width (the demo's shortcut); default: one curve per (bit-width, draw).
 * @param statistics collect once per draw (in the q-arvd job that measures S1) and let the
 *   draw's other q-arvd jobs, and the minmax jobs that calibrate activations, read that
 *   collection (`load-statistics`: the same models as collecting again, see
 *   src/passes/calibration/stats-file.ts; minmax reads only its exact ranges) when they
 *   reorder channels alike (fold-split: the provider's q-arvd folds, minmax and dual-scale or
 *   fold-split false do not, so those collect their own) and select the same layers; the
 *   minmax jobs left over share one collection per draw and selection among themselves
 *   (their first job collects); needs `s1From`.
 *   The S1 curve is then also written as soon as it is measured (`save-sensitivity`), and
 *   the jobs reusing it start then rather than when the measuring job ends.
 */
export function planJobs(rows: readonly QualityRow[], bitWidths: readonly BitWidth[], calibFiles: string[], dir: string, s1From?: string, statistics = false): { jobs: QuantJob[]; skipped: SkippedRow[] } {
  // One provider per draw (and layer selection) names its files by draw: without s1From each bit-width would have one, writing the same files.
  if (statistics && !s1From) throw new Error('planJobs: shared statistics need s1From (one S1 measurement per draw)');
  const jobs: QuantJob[] = [];
  const skipped: SkippedRow[] = [];
  for (const bits of bitWidths) {
    for (const row of rows) {
      if (row.bits && !row.bits.includes(bits.label)) continue;
      const probe = rowOptions(row, bits, calibFiles[0]);
      if ('skip' in probe) {
        skipped.push({ row, bits, note: probe.skip });
        continue;
      }
      calibFiles.forEach((calib, draw) => {
        const { options } = rowOptions(row, bits, calib) as { options: Record<string, string> };
        const id = `${row.label.replace(/[^A-Za-z0-9]+/g, '-')}-${bits.label}-d${draw}`;
        jobs.push({ id, row, bits, draw, options, output: join(dir, `${id}.onnx`) });
      });
    }
  }
  // The job that measures S1 also provides the shared collection, so it must collect Gram matrices.
  shareSensitivity(jobs, dir, s1From, statistics ? collectsGrams : undefined);
  if (statistics) {
    shareStatistics(jobs, dir);
    shareRanges(jobs, dir);
  }
  return { jobs, skipped };
}

/** True for a q-arvd job that collects Gram matrices (reconstruction or bias correction on; both are by default). */
const collectsGrams = (job: QuantJob): boolean => job.row.pass === 'q-arvd' && !(job.options.reconstruct === 'none' && job.options['bias-correction'] === 'false');

/** True for a minmax job that calibrates activation ranges (the exact min/max a saved collection holds). */
const calibratesRanges = (job: QuantJob): boolean => job.row.pass === 'minmax' && job.options['a-bits'] !== 'none';

/**
 * True for a job whose pass reorders channels before calibrating (q-arvd's fold-split, on unless
 * dual-scale or fold-split is false): a collection is read only by jobs that fold alike, since
 * the statistics file is tied to the model as calibrated (src/passes/quant/fold-split.ts).
 */
const folds = (job: QuantJob): boolean => job.row.pass === 'q-arvd' && job.options['dual-scale'] !== 'false' && job.options['fold-split'] !== 'false';

/**
 * The layers a job quantizes (include, exclude, scope, min-k). A collection is tied to the
 * layers calibrated, and an S1 curve is measured with those layers quantized: both are shared
 * only between jobs that select alike.
 */
const selectionOf = (job: QuantJob): string => JSON.stringify([job.options.include ?? '', job.options.exclude ?? '', job.options.scope ?? 'all', job.options['min-k'] ?? '']);

/** File-name suffix of a job's layer selection: none for every layer, `-s<n>` for the n-th other selection among `jobs`. */
function selectionSuffix(jobs: readonly QuantJob[]): (job: QuantJob) => string {
  const all = JSON.stringify(['', '', 'all', '']);
  const others = [...new Set(jobs.map(selectionOf).filter((s) => s !== all))];
  return (job) => (selectionOf(job) === all ? '' : `-s${others.indexOf(selectionOf(job)) + 1}`);
}

/**
 * The minmax jobs that calibrate activations and read no collection (they calibrate the model
 * unfolded, or select other layers): per draw and layer selection, the first collects and
 * saves, the others read its exact ranges (the same models as collecting again). Their ranges
 * do not depend on the bits, so a table's W8A8, W4A8 and W4A6 minmax rows need one collection.
 */
function shareRanges(jobs: QuantJob[], dir: string): void {
  const suffix = selectionSuffix(jobs);
  const providers = new Map<string, QuantJob>();
  for (const job of jobs) {
    if (job.statisticsFrom || job.savesStatistics || !calibratesRanges(job)) continue;
    const key = `${job.draw}|${selectionOf(job)}`;
    const provider = providers.get(key);
    if (provider) {
      provider.savesStatistics ??= join(dir, `statistics-minmax-d${provider.draw}${suffix(provider)}.bin`);
      job.statisticsFrom = provider;
    } else providers.set(key, job);
  }
}

function shareStatistics(jobs: QuantJob[], dir: string): void {
  const suffix = selectionSuffix(jobs);
  for (const provider of jobs.filter((j) => j.saves)) {
    if (!collectsGrams(provider)) throw new Error(`planJobs: the statistics of draw ${provider.draw} would come from ${provider.id}, which collects no Gram matrices`);
    provider.savesStatistics = join(dir, `statistics-d${provider.draw}${suffix(provider)}.bin`);
    provider.savesSensitivity = join(dir, `sensitivity-d${provider.draw}${suffix(provider)}.json`);
    for (const job of jobs) if (job !== provider && job.draw === provider.draw && (collectsGrams(job) || calibratesRanges(job)) && folds(job) === folds(provider) && selectionOf(job) === selectionOf(provider)) job.statisticsFrom = provider;
  }
}

/**
 * A q-arvd job with quantized activations and S1 on: the jobs that share one S1 curve per
 * draw. Weight-only q-arvd jobs measure S1 too (it weights their Gram matrices) but keep their
 * own, measured at their bits, as the quality tables and the demo run them.
 */
function usesS1(job: QuantJob): boolean {
  return job.row.pass === 'q-arvd' && job.options['a-bits'] !== 'none' && job.options['frame-weighting'] !== 'false' && job.options['scale-search'] !== 'false' && !job.options.sensitivity;
}

function shareSensitivity(jobs: QuantJob[], dir: string, s1From?: string, preferProvider?: (job: QuantJob) => boolean): void {
  const s1Jobs = jobs.filter(usesS1);
  const candidates = s1Jobs.filter((j) => !s1From || j.bits.label === s1From);
  const key = (job: QuantJob) => `${selectionOf(job)}|${s1From ? '' : job.bits.label}|${job.draw}`;
  const suffix = selectionSuffix(jobs);
  const providers = new Map<string, QuantJob>();
  const ordered = preferProvider ? [...candidates.filter(preferProvider), ...candidates.filter((j) => !preferProvider(j))] : candidates;
  for (const job of ordered) {
    if (providers.has(key(job))) continue;
    job.saves = join(dir, `calibration-${job.bits.label}-d${job.draw}${suffix(job)}.json`);
    providers.set(key(job), job);
  }
  for (const job of s1Jobs) if (!job.saves) job.after = providers.get(key(job));
}

/** The full `convert` arguments of a job. */
export function convertArgs(job: QuantJob, fp32Path: string): string[] {
  const options = { ...job.options };
  if (job.saves) options['save-calibration'] = job.saves;
  if (job.after) options.sensitivity = job.after.savesSensitivity ?? job.after.saves!;
  if (job.savesSensitivity) options['save-sensitivity'] = job.savesSensitivity;
  if (job.savesStatistics) options['save-statistics'] = job.savesStatistics;
  if (job.statisticsFrom) options['load-statistics'] = job.statisticsFrom.savesStatistics!;
  const pass = job.row.pass;
  return [fp32Path, '-o', job.output, '--pass', pass, ...Object.entries(options).flatMap(([k, v]) => [`--${pass}.${k}`, v])];
}

/** The node arguments of a job: `convert`, or the onnxruntime recipe for the peer rows. */
export function jobCommand(job: QuantJob, fp32Path: string): string[] {
  if (job.row.pass !== 'onnxruntime') return [CONVERT, ...convertArgs(job, fp32Path)];
  return ['--import', 'tsx', RECIPE_CLI, fp32Path, '-o', job.output, ...Object.entries(job.options).flatMap(([k, v]) => [`--${k}`, v])];
}

/**
 * Resolves once `path` exists (its writer renames it into place complete), polling; rejects
 * if the job writing it ends without it.
 */
async function fileOf(path: string, writer: Promise<void>): Promise<void> {
  let ended = false;
  writer.then(
    () => (ended = true),
    () => (ended = true),
  );
  while (!existsSync(path)) {
    if (ended) throw new Error(`${path} was not written by the job that was to write it`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs node with `args` and resolves with its stderr (the convert log); rejects with it on failure. */
function runConvert(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(stderr) : reject(new Error(`node ${args.join(' ')} exited with ${code}:\n${stderr.trim()}`))));
  });
}

/**
 * Runs the jobs, at most `parallel` at a time; a job that reads another's table starts after
 * it. Jobs that save a table go first (they are the long ones: S1).
 * @param onDone called after each job with its wall time set.
 * @param reuse keep the files an interrupted run with the same plan left (a job whose model,
 *   and table if it saves one, exist is not run again).
 */
export async function runJobs(jobs: QuantJob[], fp32Path: string, parallel: number, onDone?: (job: QuantJob) => void, reuse = false): Promise<void> {
  let free = Math.max(1, parallel);
  const waiting: (() => void)[] = [];
  const acquire = () => (free > 0 ? (free--, Promise.resolve()) : new Promise<void>((r) => waiting.push(r)));
  const release = () => (waiting.length ? waiting.shift()!() : free++);
  const done = new Map<QuantJob, Promise<void>>();
  const ordered = [...jobs.filter((j) => j.saves), ...jobs.filter((j) => !j.saves)];
  const start = (job: QuantJob): Promise<void> => {
    const run = async () => {
      if (job.statisticsFrom) await fileOf(job.statisticsFrom.savesStatistics!, done.get(job.statisticsFrom)!);
      if (job.after?.savesSensitivity) await fileOf(job.after.savesSensitivity, done.get(job.after)!);
      else if (job.after) await done.get(job.after);
      // A job others read from is run again unless its collection was kept as well.
      if (reuse && existsSync(job.output) && (!job.saves || existsSync(job.saves)) && (!job.savesStatistics || existsSync(job.savesStatistics))) {
        job.ms = NaN;
        onDone?.(job);
        return;
      }
      await acquire();
      const t0 = performance.now();
      try {
        // The log beside the model: which phase took how long (calibration, S1, reconstruction).
        writeFileSync(job.output.replace(/\.onnx$/, '') + '.log', await runConvert(jobCommand(job, fp32Path)));
      } finally {
        release();
      }
      job.ms = performance.now() - t0;
      onDone?.(job);
    };
    const p = run();
    done.set(job, p);
    return p;
  };
  await Promise.all(ordered.map(start));
}
