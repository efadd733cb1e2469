/**
 * Evaluates quantized models against the fp32 model by rolling out the same prompts with the
 * same noise seeds through a rollout module (default: tiny-arvd's `rollout.ts`).
 *
 * Reported per model:
 * - final-video MSE vs the fp32 video (mean over all values of all evaluation videos) and
 *   PSNR = 10·log10(4 / MSE): values lie in [-1, 1], so the peak-to-peak range is 2 and its
 *   square 4 (MSE 0 gives PSNR Infinity);
 * - per-chunk MSE: the same, restricted to the frames of each chunk (chunks are the `chunk`
 *   tags the rollout gives its calls; frames, axis 1 of the video, are split evenly);
 * - size: bytes of the `.onnx` file (external data is not counted) and the ratio to fp32;
 * - CPU latency: the median over `latencyRuns` timed runs of one typical call (the middle call
 *   of the first fp32 rollout), interleaved across models in one process, and the ratio to fp32.
 *
 * CLI:
 * `node --import tsx examples/tiny-arvd/evaluate.ts [--fp32 model.onnx] --model name=path.onnx ...
 *  [--rollout module.ts] [--prompts N] [--latency-runs N] [--out dir]`
 * prints the table; `--out` also writes `result.json` and one PNG strip per prompt (rows: fp32,
 * then the models in order).
 */
import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { seededRandom } from '../../src/kernels/random.ts';
import { writeStrip } from './frames.ts';
import { MODEL_PATH } from './prompt.ts';
import type { SeededPrompt } from './prompts.ts';
import type { RolloutContext, RunModel } from './rollout-module.ts';

/** What the evaluator needs from a rollout module. */
export interface RolloutModule {
  rollout(run: RunModel, ctx: RolloutContext): Promise<ort.Tensor>;
  /** Calibration prompts; used (with seeds 0, 1, …) only if there are no evaluation prompts. */
  prompts?: string[];
  evaluationPrompts?: SeededPrompt[];
}

/** A model to evaluate. */
export interface ModelSpec {
  name: string;
  path: string;
}

export interface EvaluateOptions {
  fp32Path: string;
  models: ModelSpec[];
  /** Prompts and seeds; default: the module's `evaluationPrompts`. */
  prompts?: SeededPrompt[];
  /** Rollout module, or the path of one; default: tiny-arvd's `rollout.ts`. */
  rollout?: string | RolloutModule;
  /** Timed runs per model for the latency median. Default 20; 0 skips latency (NaN). */
  latencyRuns?: number;
  /** onnxruntime intra-op threads per session (0 or undefined: onnxruntime's default). */
  threads?: number;
  /**
   * One-step error: every `stepStride`-th call of each fp32 rollout (from the middle of each
   * stride) is replayed on the model with fp32's own inputs. Default 8 (one call per
   * tiny-arvd chunk); 0 skips it (NaN), and so does a `reference` without `replays`.
   */
  stepStride?: number;
  /**
   * fp32's final videos of these prompts from an earlier evaluation (same rollout module): the
   * reference is not rolled out again. Latency then cannot be measured here (latencyRuns 0).
   */
  reference?: ReferenceVideos;
}

/** fp32's final videos, one per prompt, as an {@link EvaluationResult} has them. */
export interface ReferenceVideos {
  videos: Float32Array[];
  dims: readonly number[];
  chunks: number;
  /** fp32's replayed calls per prompt ({@link EvaluationResult.replays}): with them the one-step error is measured too. */
  replays?: ReplayedCall[][];
}

/** A tensor as plain data, so that it survives a trip to a worker process. */
export interface PlainTensor {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

/** One fp32 call the one-step error replays: its inputs, its chunk and fp32's outputs. */
export interface ReplayedCall {
  feeds: Record<string, PlainTensor>;
  chunk: number;
  outputs: Record<string, PlainTensor>;
}

/** Results for one model (the fp32 entry compares the reference with itself). */
export interface ModelEvaluation {
  name: string;
  path: string;
  /** Mean squared error of the final videos vs fp32, over all prompts. */
  mse: number;
  /** 10·log10(4 / mse) in dB. */
  psnr: number;
  /** MSE per chunk, over all prompts. */
  chunkMse: number[];
  /** MSE per prompt. */
  promptMse: number[];
  /**
   * One-step error: `Σ‖y − y_fp32‖² / Σ‖y_fp32‖²` over the outputs of fp32's own calls
   * replayed on this model (teacher forcing; see {@link EvaluateOptions.stepStride}), with
   * its two sums so that parts of an evaluation can be merged.
   */
  stepError: number;
  stepSums: { error: number; reference: number };
  bytes: number;
  /** bytes / fp32 bytes (below 1 is smaller). */
  sizeRatio: number;
  /** Median milliseconds per model call. */
  latencyMs: number;
  /** latencyMs / fp32 latencyMs (below 1 is faster). */
  latencyRatio: number;
  /** Final videos, one per prompt. */
  videos: Float32Array[];
}

export interface EvaluationResult {
  prompts: SeededPrompt[];
  /** Shape of one final video. */
  videoDims: readonly number[];
  chunks: number;
  latencyRuns: number;
  /** The chunk tag of the call whose latency is measured. */
  latencyChunk: number;
  fp32: ModelEvaluation;
  models: ModelEvaluation[];
  /**
   * fp32's calls that the one-step error replays, per prompt (empty lists when the reference
   * was given without them): what a later evaluation against these videos needs to measure
   * the one-step error as well. Not written to JSON.
   */
  replays: ReplayedCall[][];
}

/** PSNR in dB for values in [-1, 1] (peak-to-peak 2): 10·log10(4 / mse). */
export function psnr(mse: number): number {
  return 10 * Math.log10(4 / mse);
}

/** Loads a rollout module from a path (resolved against the working directory). */
export async function loadRolloutModule(path?: string): Promise<RolloutModule> {
  const mod = (await (path ? import(pathToFileURL(resolve(path)).href) : import('./rollout.ts'))) as Partial<RolloutModule>;
  if (typeof mod.rollout !== 'function') {
    throw new Error(`rollout module ${path ?? './rollout.ts'} does not export a rollout(run, ctx) function`);
  }
  return mod as RolloutModule;
}

/** The module's `evaluationPrompts`, else its `prompts` with seeds 0, 1, …. */
export function evaluationPromptsOf(mod: RolloutModule): SeededPrompt[] {
  return mod.evaluationPrompts ?? (mod.prompts ?? []).map((prompt, seed) => ({ prompt, seed }));
}

interface Rollout {
  video: Float32Array;
  dims: readonly number[];
  /** Every call's inputs; the outputs only of the calls the one-step error replays. */
  calls: { feeds: Record<string, ort.Tensor>; chunk: number; outputs?: Record<string, ort.Tensor> }[];
}

async function rolloutWith(
  mod: RolloutModule,
  session: ort.InferenceSession,
  sample: number,
  p: SeededPrompt,
  stepStride: number,
): Promise<Rollout> {
  const calls: Rollout['calls'] = [];
  const run: RunModel = async (feeds, opts) => {
    const outputs = (await session.run(feeds)) as Record<string, ort.Tensor>;
    calls.push({ feeds, chunk: opts.chunk, ...(isReplayed(calls.length, stepStride) ? { outputs } : {}) });
    return outputs;
  };
  const ctx: RolloutContext = { sample, prompt: p.prompt, random: seededRandom(p.seed) };
  const out = await mod.rollout(run, ctx);
  if (out.type !== 'float32') throw new Error(`rollout returned a ${out.type} tensor; expected float32`);
  return { video: out.data as Float32Array, dims: out.dims, calls };
}

/**
 * The one-step error's sums: the reference rollouts' calls that kept their outputs (every
 * `stepStride`-th, offset stride/2, so not only each chunk's first step from pure noise, see
 * {@link isReplayed}) run on `session` with the reference's inputs, every float output
 * compared with the reference's. An output shaped like the video is compared on the frames
 * of the call's chunk only (frames = axis 1, split evenly over `chunks`, as the video's MSE
 * is): the sampler reads nothing else of it. Unlike the final video, whose error a rollout
 * amplifies chaotically (a shape that starts a pixel away ends elsewhere), this measures
 * what quantization changes in one call, and is stable across prompts; it does not see how
 * errors add up along the rollout.
 */
async function replayError(session: ort.InferenceSession, reference: Rollout[], chunks: number): Promise<{ error: number; reference: number }> {
  let error = 0;
  let energy = 0;
  for (const r of reference) {
    const videoShaped = (t: ort.Tensor) => t.dims.length === r.dims.length && t.dims.every((d, i) => d === r.dims[i]);
    const perChunk = r.video.length / chunks;
    for (const call of r.calls) {
      if (!call.outputs) continue;
      const got = (await session.run(call.feeds)) as Record<string, ort.Tensor>;
      for (const [name, want] of Object.entries(call.outputs)) {
        if (want.type !== 'float32') continue;
        const [from, to] = videoShaped(want) ? [call.chunk * perChunk, (call.chunk + 1) * perChunk] : [0, want.data.length];
        const a = got[name]!.data as Float32Array;
        const b = want.data as Float32Array;
        for (let j = from; j < to; j++) {
          const d = a[j]! - b[j]!;
          error += d * d;
          energy += b[j]! * b[j]!;
        }
      }
    }
  }
  return { error, reference: energy };
}

const plain = (t: ort.Tensor): PlainTensor => ({ type: t.type, dims: [...t.dims], data: t.data });
const mapValues = <A, B>(o: Record<string, A>, f: (a: A) => B): Record<string, B> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));

function toPlainCall(call: Rollout['calls'][number]): ReplayedCall {
  return { feeds: mapValues(call.feeds, plain), chunk: call.chunk, outputs: mapValues(call.outputs!, plain) };
}

function fromPlainCall(call: ReplayedCall): Rollout['calls'][number] {
  const tensor = (t: PlainTensor) => new ort.Tensor(t.type, t.data as never, t.dims);
  return { feeds: mapValues(call.feeds, tensor), chunk: call.chunk, outputs: mapValues(call.outputs, tensor) };
}

/** Whether call `i` of a rollout is one the one-step error replays (every `stride`-th, from stride/2). */
function isReplayed(i: number, stride: number): boolean {
  return stride > 0 && i % stride === stride >> 1;
}

/** Sums of squared differences per chunk (frames = axis 1, split evenly over `chunks`). */
function chunkSquaredErrors(a: Float32Array, b: Float32Array, dims: readonly number[], chunks: number): number[] {
  if (a.length !== b.length) throw new Error(`video sizes differ: ${a.length} vs ${b.length}`);
  const frames = dims.length > 1 ? dims[1] : 1;
  const perFrame = a.length / (dims[0] ?? 1) / frames;
  const sums = new Array<number>(chunks).fill(0);
  for (let i = 0; i < a.length; i++) {
    const frame = Math.floor(i / perFrame) % frames;
    const d = a[i] - b[i];
    sums[Math.min(chunks - 1, Math.floor((frame * chunks) / frames))] += d * d;
  }
  return sums;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Rolls out every model on the evaluation prompts and compares it with the fp32 model. */
export async function evaluateModels(options: EvaluateOptions): Promise<EvaluationResult> {
  const { fp32Path, models, latencyRuns = 20, stepStride = 8 } = options;
  const names = new Set(['fp32']);
  for (const m of models) {
    if (names.has(m.name)) throw new Error(`evaluateModels: duplicate model name "${m.name}" ("fp32" is the reference)`);
    names.add(m.name);
  }
  const mod = typeof options.rollout === 'object' ? options.rollout : await loadRolloutModule(options.rollout);
  const prompts = options.prompts ?? evaluationPromptsOf(mod);
  if (prompts.length === 0) throw new Error('evaluateModels: no evaluation prompts');

  const specs = [{ name: 'fp32', path: fp32Path }, ...models];
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const s of specs) sessions.push(await ort.InferenceSession.create(s.path, sessionOptions(options.threads)));

    const given = options.reference;
    if (given && given.videos.length !== prompts.length) throw new Error(`evaluateModels: ${given.videos.length} reference videos for ${prompts.length} prompts`);
    if (given && latencyRuns > 0) throw new Error('evaluateModels: latency is timed on a call of the fp32 rollout; with reference videos give latencyRuns 0');
    const reference: Rollout[] = [];
    if (given?.replays && given.replays.length !== prompts.length) throw new Error(`evaluateModels: replayed calls for ${given.replays.length} prompts, ${prompts.length} prompts`);
    for (const [i, p] of prompts.entries()) reference.push(given ? { video: given.videos[i], dims: given.dims, calls: (given.replays?.[i] ?? []).map(fromPlainCall) } : await rolloutWith(mod, sessions[0], i, p, stepStride));
    const chunks = given?.chunks ?? Math.max(...reference[0].calls.map((c) => c.chunk)) + 1;
    const typical = given ? undefined : reference[0].calls[reference[0].calls.length >> 1];

    const evaluations: Omit<ModelEvaluation, 'latencyMs' | 'latencyRatio' | 'sizeRatio'>[] = [];
    for (const [m, spec] of specs.entries()) {
      const videos: Float32Array[] = [];
      const chunkSums = new Array<number>(chunks).fill(0);
      const promptMse: number[] = [];
      for (const [i, p] of prompts.entries()) {
        const ref = reference[i];
        const video = m === 0 ? ref.video : (await rolloutWith(mod, sessions[m], i, p, 0)).video;
        const sums = chunkSquaredErrors(video, ref.video, ref.dims, chunks);
        sums.forEach((s, c) => (chunkSums[c] += s));
        promptMse.push(sums.reduce((x, y) => x + y, 0) / video.length);
        videos.push(video);
      }
      // Reference videos from an earlier evaluation without fp32's calls: no one-step error then.
      const replayable = given ? given.replays !== undefined : stepStride > 0;
      const stepSums = replayable ? await replayError(sessions[m], reference, chunks) : { error: NaN, reference: NaN };
      const values = reference.reduce((n, r) => n + r.video.length, 0);
      const mse = chunkSums.reduce((x, y) => x + y, 0) / values;
      evaluations.push({
        name: spec.name,
        path: spec.path,
        mse,
        psnr: psnr(mse),
        chunkMse: chunkSums.map((s) => (s * chunks) / values),
        promptMse,
        stepError: stepSums.error / stepSums.reference,
        stepSums,
        bytes: statSync(spec.path).size,
        videos,
      });
    }

    const latency = typical && latencyRuns > 0 ? await timeCalls(sessions, typical.feeds, latencyRuns) : sessions.map(() => NaN);

    const [fp32, ...rest] = evaluations.map(
      (e, m): ModelEvaluation => ({
        ...e,
        sizeRatio: e.bytes / evaluations[0].bytes,
        latencyMs: latency[m],
        latencyRatio: latency[m] / latency[0],
      }),
    );
    const replays = reference.map((r) => r.calls.filter((c) => c.outputs).map(toPlainCall));
    return { prompts, videoDims: reference[0].dims, chunks, latencyRuns, latencyChunk: typical?.chunk ?? -1, fp32, models: rest, replays };
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** Session options with `threads` intra-op threads (0 or undefined: onnxruntime's default). */
export function sessionOptions(threads?: number): ort.InferenceSession.SessionOptions {
  return threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
}

/**
 * Median ms of one call with `feeds` per session, over `runs` timed runs after 3 warm-ups.
 * The runs are interleaved across sessions so that drift in machine load hits every model alike.
 */
export async function timeCalls(sessions: ort.InferenceSession[], feeds: Record<string, ort.Tensor>, runs: number): Promise<number[]> {
  const times = sessions.map(() => [] as number[]);
  for (const session of sessions) for (let w = 0; w < 3; w++) await session.run(feeds);
  for (let r = 0; r < runs; r++) {
    for (const [m, session] of sessions.entries()) {
      const t0 = performance.now();
      await session.run(feeds);
      times[m].push(performance.now() - t0);
    }
  }
  return times.map(median);
}

/**
 * The latency of each model (fp32 first) on the typical call of `evaluateModels`: the middle
 * call of the fp32 rollout of `prompt`, timed by {@link timeCalls} in this process.
 * @returns median ms per call, and that call's chunk tag.
 */
export async function measureLatency(paths: string[], mod: RolloutModule, prompt: SeededPrompt, runs: number, threads?: number): Promise<{ ms: number[]; chunk: number }> {
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const p of paths) sessions.push(await ort.InferenceSession.create(p, sessionOptions(threads)));
    const { calls } = await rolloutWith(mod, sessions[0], 0, prompt, 0);
    const typical = calls[calls.length >> 1];
    return { ms: await timeCalls(sessions, typical.feeds, runs), chunk: typical.chunk };
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** The result as a plain aligned text table (fp32 first, then the models). */
export function formatTable(result: EvaluationResult): string {
  const exp = (x: number): string => (x === 0 ? '0' : x.toExponential(2));
  const header = [
    'model',
    'MSE',
    'PSNR dB',
    '1-step',
    ...Array.from({ length: result.chunks }, (_, c) => `MSE c${c}`),
    'bytes',
    'size/fp32',
    'ms/call',
    'time/fp32',
  ];
  const rows = [result.fp32, ...result.models].map((e) => [
    e.name,
    exp(e.mse),
    Number.isFinite(e.psnr) ? e.psnr.toFixed(2) : 'inf',
    Number.isNaN(e.stepError) ? '-' : exp(e.stepError),
    ...e.chunkMse.map(exp),
    String(e.bytes),
    e.sizeRatio.toFixed(3),
    Number.isNaN(e.latencyMs) ? '-' : e.latencyMs.toFixed(3),
    Number.isNaN(e.latencyRatio) ? '-' : e.latencyRatio.toFixed(3),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    `${result.prompts.length} prompts; MSE/PSNR of final videos vs fp32 (PSNR = 10·log10(4/MSE)); 1-step: relative error of fp32's calls replayed on the model, not amplified by the rollout; ` +
      (result.latencyRuns > 0 ? `latency = median of ${result.latencyRuns} runs of one chunk-${result.latencyChunk} call` : 'latency not measured'),
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}

/** `result` as JSON, without the videos (PSNR Infinity is written as the string "Infinity"). */
export function resultJson(result: EvaluationResult): string {
  const strip = ({ videos: _videos, ...e }: ModelEvaluation) => e;
  const { replays: _replays, ...rest } = result;
  return JSON.stringify(
    { ...rest, fp32: strip(result.fp32), models: result.models.map(strip) },
    (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v),
    2,
  );
}

async function main(argv: string[]): Promise<void> {
  const args = await yargs(argv)
    .scriptName('evaluate')
    .usage('$0 --fp32 model.onnx --model name=path.onnx ... [--rollout module] [--prompts N] [--out dir]')
    .option('fp32', { type: 'string', default: MODEL_PATH, describe: 'the full-precision reference model' })
    .option('model', { type: 'string', array: true, default: [] as string[], describe: 'name=path of a model to evaluate' })
    .option('rollout', { type: 'string', describe: 'rollout module (default: tiny-arvd rollout.ts)' })
    .option('prompts', { type: 'number', describe: 'use only the first N evaluation prompts' })
    .option('latency-runs', { type: 'number', default: 20, describe: 'timed runs for the latency median' })
    .option('out', { type: 'string', describe: 'folder for result.json and PNG strips' })
    .strict()
    .help()
    .parseAsync();

  const models = args.model.map((spec): ModelSpec => {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new Error(`--model expects name=path, got "${spec}"`);
    return { name: spec.slice(0, eq), path: spec.slice(eq + 1) };
  });
  const mod = await loadRolloutModule(args.rollout);
  let prompts = evaluationPromptsOf(mod);
  if (args.prompts !== undefined) prompts = prompts.slice(0, args.prompts);

  const result = await evaluateModels({
    fp32Path: args.fp32,
    models,
    prompts,
    rollout: mod,
    latencyRuns: args['latency-runs'],
  });
  console.log(formatTable(result));
  if (args.out) {
    mkdirSync(args.out, { recursive: true });
    writeFileSync(join(args.out, 'result.json'), resultJson(result));
    const all = [result.fp32, ...result.models];
    const [batch, frames, channels, height, width] = result.videoDims;
    if (result.videoDims.length !== 5 || batch !== 1) {
      console.log(`wrote ${args.out}/result.json (no PNG strips: videos are [${result.videoDims}], not [1, F, C, H, W])`);
      return;
    }
    for (const [i, p] of result.prompts.entries()) {
      const file = join(args.out, `${String(i).padStart(2, '0')}-${p.prompt.replace(/\s+/g, '-')}.png`);
      writeStrip(file, all.map((e) => e.videos[i]), { shape: { frames, channels, height, width } });
    }
    console.log(`wrote ${args.out}/result.json and ${result.prompts.length} strips (rows: ${all.map((e) => e.name).join(', ')})`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(hideBin(process.argv)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
