import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as ort from 'onnxruntime-node';
import type { SeededRandom } from '../../kernels/random.ts';

/** What a calibration module's functions are given for each sample. */
export interface CalibrationContext {
  /** Index of the sample (rollout or feed batch), from 0. */
  sample: number;
  /** The prompt of this sample when the module exports `prompts`. */
  prompt?: string;
  /** A generator seeded from the sample index: the same sample always sees the same noise. */
  random: SeededRandom;
  options: Record<string, unknown>;
}

/** One model input set, optionally tagged with the chunk it generates (for S1). */
export interface FeedSample {
  feeds: Record<string, ort.Tensor>;
  chunk?: number;
}

/** Runs the model under calibration; `chunk` tags the call with the chunk it generates. */
export type RunFn = (feeds: Record<string, ort.Tensor>, opts?: { chunk?: number }) => Promise<Record<string, ort.Tensor>>;

/**
 * A calibration module: an ES module (or an object passed to the API) that exports either
 * `feeds(ctx)` — an async generator of model inputs — or `rollout(run, ctx)` — an
 * autoregressive generation loop that calls `run` and returns the final result to judge.
 * `samples` (or the length of `prompts`) says how many samples to draw.
 */
export interface CalibrationModule {
  feeds?: (ctx: CalibrationContext) => AsyncIterable<FeedSample> | Iterable<FeedSample>;
  rollout?: (run: RunFn, ctx: CalibrationContext) => Promise<ort.Tensor | Record<string, ort.Tensor>>;
  samples?: number;
  prompts?: readonly string[];
}

/** A calibration module with where it came from, for messages. */
export interface LoadedCalibration {
  module: CalibrationModule;
  /** Path (or `(api)`) named in errors. */
  origin: string;
  samples: number;
}

/** An error in the user's calibration module: names the module and, when known, the sample. */
export class CalibrationError extends Error {
  constructor(origin: string, message: string, sample?: number) {
    super(`calibration module ${origin}${sample === undefined ? '' : `, sample ${sample}`}: ${message}`);
    this.name = 'CalibrationError';
  }
}

/** Imports and checks a calibration module file. */
export async function loadCalibrationModule(path: string): Promise<LoadedCalibration> {
  const full = resolve(path);
  if (!existsSync(full)) throw new CalibrationError(path, 'file not found');
  let mod: CalibrationModule;
  try {
    mod = (await import(pathToFileURL(full).href)) as CalibrationModule;
  } catch (e) {
    throw new CalibrationError(path, `cannot be imported: ${(e as Error).message}`);
  }
  return checkCalibrationModule(mod, path);
}

/** Checks the exports of a calibration module (given as an object to the API, or imported). */
export function checkCalibrationModule(mod: CalibrationModule, origin = '(api)'): LoadedCalibration {
  const hasFeeds = typeof mod.feeds === 'function';
  const hasRollout = typeof mod.rollout === 'function';
  if (!hasFeeds && !hasRollout) throw new CalibrationError(origin, 'exports neither feeds(ctx) nor rollout(run, ctx)');
  if (hasFeeds && hasRollout) throw new CalibrationError(origin, 'exports both feeds and rollout; export one');
  const samples = mod.samples ?? mod.prompts?.length ?? (hasFeeds ? 1 : undefined);
  if (samples === undefined) throw new CalibrationError(origin, 'a rollout module must export samples (a number) or prompts (an array)');
  if (!Number.isInteger(samples) || samples < 1) throw new CalibrationError(origin, `samples must be a positive integer, got ${String(samples)}`);
  return { module: mod, origin, samples };
}
