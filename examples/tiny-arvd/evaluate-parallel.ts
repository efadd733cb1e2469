/**
 * {@link evaluateModels} on several cores: the evaluation prompts are dealt round-robin to
 * `workers` child processes (one onnxruntime thread each), each rolls out fp32 and every model
 * on its prompts, and the parts are merged — every video has the same size, so the MSE of the
 * union is the prompt-count-weighted mean of the parts' MSEs (the same for each chunk).
 * Latency is then timed in this process alone, so that the other workers do not disturb it.
 *
 * Why processes and not onnxruntime's intra-op threads: on the 2-core machine these models
 * were measured on, a tiny-arvd-l rollout took about as long with 2 intra-op threads as
 * with 1 (the calls are small), while two processes roll out two videos at once.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type EvaluateOptions, type EvaluationResult, loadRolloutModule, measureLatency, type ModelEvaluation, psnr, type ReferenceVideos } from './evaluate.ts';
import type { SeededPrompt } from './prompts.ts';

/** What {@link evaluateInParallel} takes: the rollout module must be a path (workers import it). */
export interface ParallelEvaluateOptions extends Omit<EvaluateOptions, 'rollout' | 'prompts' | 'threads'> {
  /** Rollout module path (absolute, or relative to the working directory). */
  rollout: string;
  prompts: SeededPrompt[];
  /** Child processes (default 2); 1 evaluates in one child process. */
  workers?: number;
}

/** One worker's job, as sent to `evaluate-worker.ts`. */
export interface WorkerJob {
  fp32Path: string;
  models: EvaluateOptions['models'];
  prompts: SeededPrompt[];
  rollout: string;
  reference?: EvaluateOptions['reference'];
}

const WORKER = fileURLToPath(new URL('./evaluate-worker.ts', import.meta.url));

/** Runs one job in a child process (`node --import tsx evaluate-worker.ts`). */
function runWorker(job: WorkerJob): Promise<EvaluationResult> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    let stderr = '';
    let result: EvaluationResult | undefined;
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('message', (m: { result?: EvaluationResult; error?: string }) => {
      if (m.error) reject(new Error(`evaluation worker: ${m.error}`));
      else result = m.result;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`evaluation worker exited with ${code}: ${stderr.trim()}`));
    });
    child.send(job);
  });
}

/** The reference videos (and fp32's replayed calls) of the prompts `idx`. */
function partOf(reference: ReferenceVideos, idx: number[]): ReferenceVideos {
  const { replays } = reference;
  return { ...reference, videos: idx.map((i) => reference.videos[i]), ...(replays ? { replays: idx.map((i) => replays[i]) } : {}) };
}

/** Evaluates like {@link evaluateModels}, with the prompts spread over `workers` processes. */
export async function evaluateInParallel(options: ParallelEvaluateOptions): Promise<EvaluationResult> {
  const { prompts, latencyRuns = 20 } = options;
  if (latencyRuns > 0 && options.reference) throw new Error('evaluateInParallel: with reference videos give latencyRuns 0 and time the models with measureLatency');
  const workers = Math.max(1, Math.min(options.workers ?? 2, prompts.length));
  const parts = Array.from({ length: workers }, (_, w) => prompts.map((_, i) => i).filter((i) => i % workers === w));
  const { reference } = options;
  const results = await Promise.all(
    parts.map((idx) =>
      runWorker({ fp32Path: options.fp32Path, models: options.models, prompts: idx.map((i) => prompts[i]), rollout: options.rollout, ...(reference ? { reference: partOf(reference, idx) } : {}) }),
    ),
  );
  const merge = (m: number): ModelEvaluation => {
    const pick = (r: EvaluationResult) => (m < 0 ? r.fp32 : r.models[m]);
    const first = pick(results[0]);
    const chunkMse = first.chunkMse.map((_, c) => results.reduce((s, r, w) => s + pick(r).chunkMse[c] * parts[w].length, 0) / prompts.length);
    const mse = results.reduce((s, r, w) => s + pick(r).mse * parts[w].length, 0) / prompts.length;
    const promptMse = new Array<number>(prompts.length);
    const videos = new Array<Float32Array>(prompts.length);
    parts.forEach((idx, w) => idx.forEach((i, j) => ((promptMse[i] = pick(results[w]).promptMse[j]), (videos[i] = pick(results[w]).videos[j]))));
    const stepSums = results.reduce((s, r) => ({ error: s.error + pick(r).stepSums.error, reference: s.reference + pick(r).stepSums.reference }), { error: 0, reference: 0 });
    return { ...first, mse, psnr: psnr(mse), chunkMse, promptMse, videos, stepSums, stepError: stepSums.error / stepSums.reference };
  };
  const replays = new Array<EvaluationResult['replays'][number]>(prompts.length);
  parts.forEach((idx, w) => idx.forEach((i, j) => (replays[i] = results[w].replays[j])));
  const result = { ...results[0], prompts, fp32: merge(-1), models: options.models.map((_, m) => merge(m)), replays };
  return latencyRuns > 0 ? addLatency(result, options.rollout, latencyRuns) : result;
}

/**
 * Times fp32 and every model of `result` in this process (one onnxruntime thread, nothing
 * else of ours running: the workers are done) on the typical call of the first prompt's
 * fp32 rollout, and fills in their latencies.
 */
export async function addLatency(result: EvaluationResult, rollout: string, runs: number): Promise<EvaluationResult> {
  const all = [result.fp32, ...result.models];
  const timed = await measureLatency(all.map((e) => e.path), await loadRolloutModule(rollout), result.prompts[0], runs, 1);
  for (const [m, e] of all.entries()) {
    e.latencyMs = timed.ms[m];
    e.latencyRatio = timed.ms[m] / timed.ms[0];
  }
  return { ...result, latencyRuns: runs, latencyChunk: timed.chunk };
}
