import type { Model } from '../../graph/ir/model.ts';
import type { Value } from '../../graph/ir/value.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import type { ActivationRanges } from '../quant/quantize-layers.ts';
import { chunkTag, contextFor, drawSample, resultValues } from './samples.ts';
import { CalibrationError, type LoadedCalibration, type RunFn } from './module.ts';
import { CalibrationSession } from './session.ts';
import { foldOf, GramStats } from './gram.ts';
import { GramWorker, WEIGHTED_SUM } from './gram-worker.ts';
import { TensorStats } from './tensor-stats.ts';

/** Rows kept per observed tensor and chunk when not told otherwise. */
export const DEFAULT_RESERVOIR_ROWS = 256;

/** Where calibration is, for progress lines. */
export interface CollectProgress {
  phase: 'collect' | 'sensitivity';
  /** Samples (rollouts or feed sets) finished. */
  done: number;
  total: number;
  /** Chunk tag of the latest run call. */
  chunk: number;
  /** In the sensitivity phase: the chunk whose calls run quantized (undefined for the fp32 rollout). */
  quantizedChunk?: number;
  /** Fraction of the phase's work done, in [0, 1]. */
  fraction: number;
  elapsedMs: number;
}

/** What the collect step keeps: statistics per observed layer input, and the calls seen. */
export interface CollectedStats {
  /** Per observed value (a layer input): per-chunk ranges and reservoirs. */
  tensors: Map<Value, TensorStats>;
  /** Chunk tags seen, ascending. */
  chunks: number[];
  /** Run calls per chunk. */
  calls: Map<number, number>;
  samples: number;
  /** Per observed value: per-chunk Gram matrices and row sums (only when asked for, see gram.ts). */
  grams?: Map<Value, GramStats>;
  /**
   * With Gram statistics: per observed value (every one, also those whose sums were dropped),
   * per chunk and fold, its rows and the rows its Gram products cover: what a later α-weighted
   * collection needs to weight each product before the collection ends (gram-stride).
   */
  rowCounts?: RowCounts;
}

/** Rows per value, chunk and fold: all of them, and those in sampled calls (the Gram products). */
export type RowCounts = Map<Value, Map<number, [RowCount, RowCount]>>;
/** See {@link RowCounts}. */
export interface RowCount {
  rows: number;
  gramRows: number;
}

/** Options of {@link collectStatistics}. */
export interface CollectOptions {
  /** Rows kept per tensor and chunk (0: ranges only). Default {@link DEFAULT_RESERVOIR_ROWS}. */
  reservoirRows?: number;
  /** False: no ranges and no reservoirs, only the Gram statistics (a later group's collection, grouped.ts). Default true. */
  ranges?: boolean;
  /**
   * Also accumulate per-chunk Gram matrices for reconstruction, with onnxruntime sessions on
   * `threads` threads, from one call in `stride` of each chunk (row sums from every call).
   * `keep`, when given, is asked whenever a new chunk appears (with the number of chunks seen)
   * which inputs still get Gram statistics; the others' are dropped (memory bound, grouped.ts).
   * `weight`, when given, makes the statistics α-weighted (gram.ts): each product enters one
   * sum per input and fold, multiplied by `weight(input, chunk, fold)`.
   */
  gram?: { threads: number; stride?: number; keep?: (chunks: number) => ReadonlySet<Value>; weight?: (input: Value, chunk: number, fold: 0 | 1) => number };
  progress?: (p: CollectProgress) => void;
}

/**
 * Collect step of calibration: draws every sample of the module (its feeds, or one rollout),
 * runs each call through the augmented model and folds the observed layer inputs into
 * bounded per-chunk statistics. The session stays open for the caller (S1 reuses it).
 */
export async function collectStatistics(session: CalibrationSession, layers: LinearLayer[], options: CollectOptions = {}): Promise<CollectedStats> {
  const { calib } = session;
  const reservoirRows = options.reservoirRows ?? DEFAULT_RESERVOIR_ROWS;
  const inputs = observedInputs(layers);
  const channels = new Map(inputs.map((v) => [v, layers.find((l) => l.input === v)!.K]));
  const tensors = new Map<Value, TensorStats>(options.ranges === false ? [] : inputs.map((v, i) => [v, new TensorStats(channels.get(v)!, reservoirRows, 0x5eed0000 + i)]));
  const weight = options.gram?.weight;
  const grams = options.gram ? new Map<Value, GramStats>(inputs.map((v) => [v, new GramStats(channels.get(v)!, weight !== undefined)])) : undefined;
  const rowCounts: RowCounts | undefined = options.gram ? new Map(inputs.map((v) => [v, new Map()])) : undefined;
  // The products run beside the model, in a worker thread (gram-worker.ts): the same sums.
  const inputIndex = new Map(inputs.map((v, i) => [v, i]));
  const gramWorker = options.gram ? GramWorker.open(new Set(channels.values()), { threads: options.gram.threads }) : undefined;
  const gramStride = options.gram?.stride ?? 1;
  const keep = options.gram?.keep;
  if (!Number.isInteger(gramStride) || gramStride < 1) throw new Error(`gram-stride must be a positive integer, got ${gramStride}`);
  const calls = new Map<number, number>();
  const started = performance.now();
  let sample = 0;
  let lastChunk = 0;
  const run: RunFn = async (feeds, opts) => {
    const chunk = chunkTag(opts?.chunk, calib, sample);
    lastChunk = chunk;
    const out = await session.run(feeds, sample);
    if (grams && keep && !calls.has(chunk)) {
      const kept = keep(calls.size + 1);
      const dropped = [...grams.keys()].filter((v) => !kept.has(v));
      for (const v of dropped) grams.delete(v);
      // The worker's sums of the dropped inputs go too (the memory bound counts them).
      if (dropped.length) gramWorker!.drop(dropped.map((v) => inputIndex.get(v)!));
    }
    // The calls of each chunk are counted across samples; one in `stride` enters the Gram matrices.
    const sampledCall = (calls.get(chunk) ?? 0) % gramStride === 0;
    for (const v of inputs) {
      const stats = tensors.get(v);
      const gram = grams?.get(v);
      if (!stats && !gram) continue;
      const K = channels.get(v)!;
      const t = out[v.name];
      if (!t || !(t.data instanceof Float32Array)) throw new CalibrationError(calib.origin, `observed value ${v.name} is not float32 in onnxruntime's output`, sample);
      if (t.data.length % K !== 0) throw new CalibrationError(calib.origin, `observed value ${v.name} has ${t.data.length} values, not a multiple of its ${K} channels`, sample);
      stats?.add(t.data, chunk);
      if (rowCounts && t.data.length > 0) count(rowCounts.get(v)!, chunk, foldOf(sample), t.data.length / K, sampledCall);
      if (gram && t.data.length > 0) {
        const fold = foldOf(sample);
        gram.addRows(chunk, t.data, fold);
        if (sampledCall && weight) {
          gram.countProduct(chunk, t.data.length / K, fold);
          await gramWorker!.add(inputIndex.get(v)!, WEIGHTED_SUM, fold, t.data, K, weight(v, chunk, fold));
        } else if (sampledCall) await gramWorker!.add(inputIndex.get(v)!, chunk, fold, t.data, K);
      }
    }
    calls.set(chunk, (calls.get(chunk) ?? 0) + 1);
    options.progress?.({ phase: 'collect', done: sample, total: calib.samples, chunk, fraction: sample / calib.samples, elapsedMs: performance.now() - started });
    return session.userView(out);
  };
  let finished = false;
  try {
    for (; sample < calib.samples; sample++) {
      const result = await drawSample(calib, contextFor(calib, sample), run);
      // S1 judges what a rollout returns: check it now rather than after the whole collection.
      if (calib.module.rollout) resultValues(result, calib, sample);
      options.progress?.({ phase: 'collect', done: sample + 1, total: calib.samples, chunk: lastChunk, fraction: (sample + 1) / calib.samples, elapsedMs: performance.now() - started });
    }
    if (gramWorker) {
      for (const s of await gramWorker.finish()) {
        const g = grams!.get(inputs[s.input]!);
        if (s.chunk === WEIGHTED_SUM) g?.setWeighted(s.fold, s.gram);
        else g?.setProducts(s.chunk, s.fold, s.gram, s.gramRows);
      }
    }
    finished = true;
  } finally {
    if (!finished) await gramWorker?.close();
  }
  if (calls.size === 0) throw new CalibrationError(calib.origin, 'ran no model call in any sample');
  return { tensors, chunks: [...calls.keys()].sort((a, b) => a - b), calls, samples: calib.samples, ...(grams ? { grams, rowCounts } : {}) };
}

function count(byChunk: Map<number, [RowCount, RowCount]>, chunk: number, fold: 0 | 1, rows: number, sampled: boolean): void {
  let c = byChunk.get(chunk);
  if (!c) byChunk.set(chunk, (c = [{ rows: 0, gramRows: 0 }, { rows: 0, gramRows: 0 }]));
  c[fold].rows += rows;
  if (sampled) c[fold].gramRows += rows;
}

/** The distinct inputs of the layers, in layer order. */
export function observedInputs(layers: LinearLayer[]): Value[] {
  return [...new Set(layers.map((l) => l.input))];
}

/** The names of the layers reading each observed input (errors about an input name its layers). */
export function readersOf(layers: LinearLayer[]): Map<Value, string[]> {
  const out = new Map<Value, string[]>();
  for (const l of layers) out.set(l.input, [...(out.get(l.input) ?? []), l.name]);
  return out;
}

/** Per-layer per-channel min/max over all chunks (what plain min/max quantization needs). */
export function rangesOf(stats: CollectedStats, layers: LinearLayer[]): ActivationRanges {
  const out: ActivationRanges = new Map();
  for (const l of layers) out.set(l.name, stats.tensors.get(l.input)!.ranges());
  return out;
}

/** Opens the augmented session observing the layers' inputs. */
export function openCalibrationSession(model: Model, layers: LinearLayer[], calib: LoadedCalibration, threads = 0): Promise<CalibrationSession> {
  return CalibrationSession.open(model, observedInputs(layers), calib, threads);
}
