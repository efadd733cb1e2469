import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { esmInCommonJsHint } from '../../runtime/esm-in-commonjs.ts';
import { importUserModule } from '../../runtime/import-user-module.ts';
import type * as ort from 'onnxruntime-node';
import type { SeededRandom } from '../../kernels/random.ts';
import { superviseModuleCall, type Supervision } from './supervise.ts';

/** What a calibration module's functions are given for each sample. */
export interface CalibrationContext {
  /** Index of the sample (rollout or feed batch), from 0. */
  sample: number;
  /** The prompt of this sample when the module exports `prompts`. */
  prompt?: string;
  /** A generator seeded from the sample index: the same sample always sees the same noise. */
  random: SeededRandom;
  /** Options given to the calibration (reserved; empty today). */
  options: Record<string, unknown>;
}

/** One model input set, optionally tagged with the chunk it generates (for S1). */
export interface FeedSample {
  /** The model's inputs by name. */
  feeds: Record<string, ort.Tensor>;
  /** The chunk these inputs generate (S1); untagged feeds count as chunk 0. */
  chunk?: number;
}

/** Runs the model under calibration; `chunk` tags the call with the chunk it generates. */
export type RunFn = (feeds: Record<string, ort.Tensor>, opts?: { chunk?: number }) => Promise<Record<string, ort.Tensor>>;

/** The `run` function a rollout module's `rollout(run, ctx)` receives (the same type as {@link RunFn}). */
export type RolloutRun = RunFn;

/** The `ctx` a module's `feeds(ctx)` and `rollout(run, ctx)` receive (the same type as {@link CalibrationContext}). */
export type FeedsContext = CalibrationContext;

/**
 * A calibration module: an ES module (or an object passed to the API) that exports either
 * `feeds(ctx)` — an async generator of model inputs — or `rollout(run, ctx)` — an
 * autoregressive generation loop that calls `run` and returns the final result to judge.
 * `samples` (or the length of `prompts`) says how many samples to draw; each sample gets a
 * `ctx` with its index, its prompt and a generator seeded from the index (the same sample
 * sees the same noise in every rollout, which S1 relies on).
 *
 * Plain model (`--q-arvd.calib ./calib.mjs`):
 * ```js
 * import * as ort from 'onnxruntime-node';
 * export const samples = 8;
 * export async function* feeds(ctx) {
 *   const ids = myTokenizer.encode(myTexts[ctx.sample]);   // your data
 *   yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) } };
 * }
 * ```
 * Autoregressive generator: every `run` call is tagged with the chunk it generates (untagged
 * calls and feeds count as chunk 0); the return value is the final result S1 compares.
 * ```js
 * export const prompts = ['square red fast one', 'disc blue slow two'];
 * export async function rollout(run, ctx) {
 *   const video = new Float32Array(FRAMES * FRAME);
 *   for (let chunk = 0; chunk < CHUNKS; chunk++) {
 *     let x = ctx.random.normalArray(CHUNK_FRAMES * FRAME);
 *     for (const [t, tNext] of STEPS) {
 *       const { velocity } = await run(makeFeeds(video, x, chunk, t, ctx.prompt), { chunk });
 *       x = eulerStep(x, velocity, tNext - t);
 *     }
 *     video.set(x, chunk * CHUNK_FRAMES * FRAME);
 *   }
 *   return new ort.Tensor('float32', video, [1, FRAMES, 3, H, W]);
 * }
 * ```
 * (`examples/tiny-arvd/rollout.ts` is a complete one.) Whatever the module throws, or a
 * feed the model rejects, is reported with the module's path and the sample index.
 */
export interface CalibrationModule {
  /** Yields the model inputs of sample `ctx.sample` (plain models). */
  feeds?: (ctx: CalibrationContext) => AsyncIterable<FeedSample> | Iterable<FeedSample>;
  /** Runs one generation with `run` and returns its final result (autoregressive models). */
  rollout?: (run: RunFn, ctx: CalibrationContext) => Promise<ort.Tensor | Record<string, ort.Tensor>>;
  /** How many samples to draw (default: the number of prompts; 1 for a feeds module). */
  samples?: number;
  /** One prompt per sample, handed over as `ctx.prompt`. */
  prompts?: readonly string[];
}

/** A calibration module with where it came from, for messages. */
export interface LoadedCalibration {
  module: CalibrationModule;
  /** Path (or `(api)`) named in errors. */
  origin: string;
  /**
   * The files the samples come from, as real paths (the module file; a prompt list and its
   * tokenizer folder): what a statistics file records and is checked against, so that one file
   * spelt two ways is the same and two files spelt alike are not. Absent for a module given to
   * the API (then `origin`).
   */
  source?: string;
  samples: number;
  /** How calls into the module are supervised (timeout, heartbeat log); defaults apply when absent. */
  supervision?: Supervision;
}

/** An error in the user's calibration module: names the module and, when known, the sample. */
export class CalibrationError extends Error {
  /**
   * @param what what `origin` is, for the message (a prompt list is not a module)
   * @param options `cause`: what the module itself threw, kept with its stack (`--debug` prints it)
   */
  constructor(origin: string, message: string, sample?: number, what = 'calibration module', options?: { cause?: unknown }) {
    super(`${what} ${origin}${sample === undefined ? '' : `, sample ${sample}`}: ${message}`, options);
    this.name = 'CalibrationError';
  }
}

/** Imports and checks a calibration module file. */
export async function loadCalibrationModule(path: string): Promise<LoadedCalibration> {
  const full = resolve(path);
  if (!existsSync(full)) throw new CalibrationError(path, 'file not found');
  let mod: CalibrationModule & { default?: unknown };
  try {
    // Top-level code runs at import: supervised too (a top-level await that never settles).
    mod = await superviseModuleCall({ origin: path, what: 'importing it' }, undefined, async () => (await importUserModule(full)) as CalibrationModule);
  } catch (e) {
    if (e instanceof CalibrationError) throw e;
    // The cause keeps the module's own stack, which --debug prints (the plugin loader does the same).
    throw new CalibrationError(path, `cannot be imported: ${(e as Error).message}${esmInCommonJsHint(full, e)}`, undefined, undefined, { cause: e });
  }
  // `export default { feeds, samples }` is accepted too.
  const def = mod.default as CalibrationModule | undefined;
  if (typeof mod.feeds !== 'function' && typeof mod.rollout !== 'function' && def && typeof def === 'object') mod = def;
  return { ...checkCalibrationModule(mod, path), source: realpathSync(full) };
}

/** Checks the exports of a calibration module (given as an object to the API, or imported). */
export function checkCalibrationModule(mod: CalibrationModule, origin = '(api)'): LoadedCalibration {
  if (typeof mod !== 'object' || mod === null) throw new CalibrationError(origin, `is ${mod === null ? 'null' : typeof mod}, not a module object`);
  const hasFeeds = typeof mod.feeds === 'function';
  const hasRollout = typeof mod.rollout === 'function';
  if (!hasFeeds && !hasRollout) throw new CalibrationError(origin, 'exports neither feeds(ctx) nor rollout(run, ctx)');
  if (hasFeeds && hasRollout) throw new CalibrationError(origin, 'exports both feeds and rollout; export one');
  if (mod.prompts !== undefined && (!Array.isArray(mod.prompts) || !mod.prompts.every((p) => typeof p === 'string'))) throw new CalibrationError(origin, 'prompts must be an array of strings');
  // Named for what it is: its length was reported as "samples … got 0". With samples given, every ctx.prompt would be undefined.
  if (mod.prompts?.length === 0) throw new CalibrationError(origin, 'prompts is an empty list: give at least one prompt');
  const samples = mod.samples ?? mod.prompts?.length ?? (hasFeeds ? 1 : undefined);
  if (samples === undefined) throw new CalibrationError(origin, 'a rollout module must export samples (a number) or prompts (an array)');
  if (!Number.isInteger(samples) || samples < 1) throw new CalibrationError(origin, `samples must be a positive integer, got ${shown(samples)}`);
  return { module: mod, origin, samples };
}

/** A value for a message, with its type when it is not a number: `export const samples = '8'` printed as a bare 8. */
function shown(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `'${v}' (a string)`;
  if (typeof v === 'object') return v === null ? 'null' : Array.isArray(v) ? 'an array' : 'an object';
  return `${String(v)} (a ${typeof v})`;
}
