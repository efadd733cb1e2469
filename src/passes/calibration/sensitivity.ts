/**
 * S1 — final-quality guided frame weighting (METHOD.md S1):
 *
 * 1. Roll out every sample with the fp32 model: final results `V`.
 * 2. For each chunk i, roll out again with the plainly quantized model (min/max, no search)
 *    answering only the `run` calls tagged i, fp32 everywhere else: final results `V⁽ⁱ⁾`.
 *    The calls before the first chunk-i call are those of the fp32 rollout (same seed, same
 *    feeds), so they are answered from that rollout's outputs when their feeds hash the same;
 *    a module whose feeds differ (it draws its noise differently) simply runs them again.
 * 3. `s_i` = mean squared difference of `V⁽ⁱ⁾` and `V`, averaged over the samples; normalised
 *    to sum 1; `α_i` = the normalised curve rescaled to mean 1.
 * Memory: one sample's fp32 call outputs at most (capped), never all samples'; with
 * `fp32Results`, also the final results of the first samples (at most
 * {@link FP32_RESULTS_MAX_BYTES}), which the split check reads.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { importOnnxruntime } from '../../runtime/optional-import.ts';
import type { CollectProgress } from './collect.ts';
import { CalibrationError, type LoadedCalibration, type RunFn } from './module.ts';
import { chunkTag, contextFor, drawSample, firstSamples, resultValues } from './samples.ts';
import { openTemporaryCopy, type CalibrationSession } from './session.ts';

/** A chunk sensitivity curve. */
export interface SensitivityCurve {
  /** Chunk tags, ascending. */
  chunks: number[];
  /** Raw `s_i`: mean squared difference of the final results (absent when read from a file without it). */
  mse?: number[];
  /** `s_i / Σ s`. */
  normalized: number[];
  /** Rollouts averaged (measured curves). */
  samples?: number;
  /** Where it came from: `measured`, or the file it was read from. */
  source: string;
}

/** Options of {@link measureSensitivity}. */
export interface SensitivityOptions {
  /** Samples to roll out (the first n of the module's); default all. */
  samples?: number;
  threads?: number;
  progress?: (p: CollectProgress) => void;
  /** Bytes of fp32 call outputs kept for reuse within one sample. Default 256 MiB. */
  cacheBytes?: number;
  /** Where a curve that cannot mean what it should is reported (see {@link measureSensitivity}). */
  warn?: (message: string) => void;
  /**
   * When given, fp32's final result of each sample is pushed here, in sample order, while they
   * fit in {@link FP32_RESULTS_MAX_BYTES} (the first n samples): the split check compares its
   * candidates with these same rollouts instead of rolling fp32 out again.
   */
  fp32Results?: Float64Array[][];
  /** Bytes of {@link fp32Results} kept at most. Default {@link FP32_RESULTS_MAX_BYTES}. */
  fp32ResultsMaxBytes?: number;
}

/** Bytes of fp32 final results {@link SensitivityOptions.fp32Results} keeps at most (8 bytes a value). */
export const FP32_RESULTS_MAX_BYTES = 256 * 2 ** 20;

/**
 * Measures the chunk sensitivity of a rollout module. Two module mistakes make the curve
 * meaningless without failing anything, so they are reported through `options.warn`: a
 * rollout that does not feed the model the same inputs when run again with the same context
 * (noise from `Math.random` instead of `ctx.random`: every curve value is then the distance
 * between two unrelated rollouts), and a result that no chunk's quantization changes (a
 * result not computed from the model's outputs).
 * @param fp32 the open calibration session (the fp32 model)
 * @param quantizedPath the plainly quantized model, as a file
 * @param chunks the chunk tags calibration saw
 */
export async function measureSensitivity(fp32: CalibrationSession, quantizedPath: string, calib: LoadedCalibration, chunks: number[], options: SensitivityOptions = {}): Promise<SensitivityCurve> {
  if (!calib.module.rollout) throw new Error('internal: S1 needs a rollout module');
  const samples = firstSamples(calib, options.samples);
  const cacheBytes = options.cacheBytes ?? 256 * 2 ** 20;
  const quant = await openTemporaryCopy((await importOnnxruntime()).InferenceSession, quantizedPath, options.threads ?? 0, "quantized for S1's measurement (a temporary copy)");
  const started = performance.now();
  const sums = new Float64Array(chunks.length);
  // Samples whose rollout, run again with the same context, fed the model other inputs before the quantized chunk.
  const unreproducible: number[] = [];
  try {
    for (let sample = 0; sample < samples; sample++) {
      // The fp32 rollout, recording each call's feed hash and outputs.
      const record: { hash: string; out?: Record<string, ort.Tensor> }[] = [];
      let kept = 0;
      let lastChunk = 0;
      let rollouts = 0;
      const report = (quantizedChunk?: number) =>
        options.progress?.({ phase: 'sensitivity', done: sample, total: samples, chunk: lastChunk, quantizedChunk, fraction: (sample + rollouts / (chunks.length + 1)) / samples, elapsedMs: performance.now() - started });
      const fp32Run: RunFn = async (feeds, opts) => {
        lastChunk = chunkTag(opts?.chunk, calib, sample);
        const out = fp32.userView(await fp32.run(feeds, sample));
        const bytes = outputBytes(out);
        const entry: { hash: string; out?: Record<string, ort.Tensor> } = { hash: feedHash(feeds) };
        if (kept + bytes <= cacheBytes) {
          entry.out = out;
          kept += bytes;
        }
        record.push(entry);
        report();
        return out;
      };
      const reference = resultValues(await drawSample(calib, contextFor(calib, sample), fp32Run), calib, sample, {});
      rollouts++;
      const results = options.fp32Results;
      // Only a prefix of the samples: the check rolls out the rest itself.
      if (results && results.length === sample && resultBytes([...results, reference]) <= (options.fp32ResultsMaxBytes ?? FP32_RESULTS_MAX_BYTES)) results.push(reference);
      for (let ci = 0; ci < chunks.length; ci++) {
        const target = chunks[ci]!;
        let call = 0;
        let replaying = true;
        const run: RunFn = async (feeds, opts) => {
          const chunk = chunkTag(opts?.chunk, calib, sample);
          lastChunk = chunk;
          const index = call++;
          report(target);
          if (chunk === target) {
            replaying = false;
            return (await quant.run(feeds)) as Record<string, ort.Tensor>;
          }
          const cached = replaying ? record[index] : undefined;
          const hash = cached ? feedHash(feeds) : undefined;
          // Every call before the quantized chunk is the fp32 rollout's call again, with the same
          // inputs: one that differs there (noise drawn after the first call, too) is not reproducible.
          if (cached && cached.hash !== hash && !unreproducible.includes(sample)) unreproducible.push(sample);
          if (cached?.out && cached.hash === hash) return cached.out;
          replaying = false;
          return fp32.userView(await fp32.run(feeds, sample));
        };
        const result = resultValues(await drawSample(calib, contextFor(calib, sample), run), calib, sample, { quantizedChunk: target });
        sums[ci]! += meanSquaredDifference(result, reference, calib, sample);
        rollouts++;
      }
      options.progress?.({ phase: 'sensitivity', done: sample + 1, total: samples, chunk: lastChunk, fraction: (sample + 1) / samples, elapsedMs: performance.now() - started });
    }
  } finally {
    await quant.release();
  }
  const mse = Array.from(sums, (s) => s / samples);
  if (unreproducible.length) {
    options.warn?.(`${calib.origin}: rolled out again with the same context, sample(s) ${unreproducible.join(', ')} fed the model other inputs before any call was quantized, so S1 compares unrelated rollouts and its curve is noise; draw every random number from ctx.random (README "Calibration modules"), or --q-arvd.frame-weighting false`);
  }
  if (mse.every((v) => v === 0)) {
    options.warn?.(`${calib.origin}: quantizing any one chunk left the rollout's result unchanged, so S1 weighs every chunk alike (α = 1): a discrete result (token ids) or one not computed from run()'s outputs; rollout should return continuous values the model generated (the final video, latents or logits)`);
  } else {
    // A user trial: a rollout returning only its last chunk's frames gave the others α ≈ 0.001, without a word.
    const faint = faintChunks(chunks, mse);
    if (faint.length) {
      // The chunk named is the most sensitive one after the first faint chunk (the most sensitive of all may come before it).
      const later = chunks.map((c, i) => ({ c, e: mse[i]! })).filter((x) => x.c > faint[0]!);
      const top = later.reduce((a, b) => (b.e > a.e ? b : a)).c;
      options.warn?.(`${calib.origin}: quantizing chunk(s) ${faint.join(', ')} changed the rollout's result (mean squared) by less than ${FAINT_CHUNK * 100}% of what a later chunk's did (chunk ${top}), though their error reaches every later frame, so S1 gives their calls almost no weight (α ${alphaFromSensitivity(normalize(mse)).map((a) => a.toFixed(3)).join(', ')}); if rollout returns only part of the video (the last chunk's frames), return all of it`);
    }
  }
  return { chunks: [...chunks], mse, normalized: normalize(mse), samples, source: 'measured' };
}

/** A chunk whose quantization changes the result (mean squared) by less than this fraction of a later chunk's is warned about. */
export const FAINT_CHUNK = 1e-3;

/**
 * The chunks (tags, in rollout order) whose quantization changed the result by less than
 * {@link FAINT_CHUNK} of what some later chunk's did. An earlier chunk's error reaches every
 * later frame, so in a result that holds the whole video it cannot be a thousand times smaller
 * than a later chunk's own; a curve that falls along the rollout (the paper's, however long)
 * gives none. A result that leaves out the earlier chunks' frames gives them.
 */
export function faintChunks(chunks: readonly number[], mse: readonly number[]): number[] {
  const order = chunks.map((c, i) => ({ c, e: mse[i]! })).sort((a, b) => a.c - b.c);
  return order.filter((x, i) => order.slice(i + 1).some((later) => x.e < later.e * FAINT_CHUNK)).map((x) => x.c);
}

/** `s / Σ s` (uniform when every value is 0; left as it is when it already sums to 1). */
export function normalize(s: readonly number[]): number[] {
  const total = s.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) < 1e-12) return [...s];
  return total > 0 ? s.map((v) => v / total) : s.map(() => 1 / s.length);
}

/** The loss weights: the normalised curve rescaled to mean 1. */
export function alphaFromSensitivity(normalized: readonly number[]): number[] {
  const n = normalize(normalized);
  return n.map((v) => v * n.length);
}

/**
 * Reads a sensitivity curve from a JSON file: a bare array of numbers, or an object whose
 * `sensitivity` is such an array or a curve (`{ chunks?, normalized | mse }`) — so a saved
 * calibration table or a pass report can be given as it is. Values are normalised; chunk
 * tags, when the file has them, must be the chunks calibration saw.
 */
export function readSensitivityFile(path: string, chunks: number[]): SensitivityCurve {
  const fail = (what: string): never => {
    throw new Error(`sensitivity file ${path}: ${what}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return fail(`cannot be read as JSON (${(e as Error).message})`);
  }
  let values: unknown = json;
  let fileChunks: unknown;
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const o = json as Record<string, unknown>;
    values = o.sensitivity;
    fileChunks = o.chunks;
    if (values && typeof values === 'object' && !Array.isArray(values)) {
      const curve = values as Record<string, unknown>;
      fileChunks = curve.chunks ?? fileChunks;
      values = curve.normalized ?? curve.mse;
    }
  }
  const isNumbers = (x: unknown): x is number[] => Array.isArray(x) && x.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (!isNumbers(values) || values.length === 0) return fail('expected an array of numbers, or { "sensitivity": [...] }');
  if (values.some((v) => v < 0)) fail('sensitivities must not be negative');
  if (fileChunks !== undefined) {
    if (!isNumbers(fileChunks) || fileChunks.length !== values.length) fail('"chunks" must be an array of chunk tags as long as the curve');
    const byChunk = new Map((fileChunks as number[]).map((c, i) => [c, values[i]!]));
    const missing = chunks.filter((c) => !byChunk.has(c));
    if (missing.length) fail(`has no value for chunk(s) ${missing.join(', ')} (it covers chunks ${(fileChunks as number[]).join(', ')})`);
    return { chunks: [...chunks], normalized: normalize(chunks.map((c) => byChunk.get(c)!)), source: path };
  }
  if (values.length !== chunks.length) fail(`has ${values.length} values, but calibration saw ${chunks.length} chunk(s) (${chunks.join(', ')})`);
  return { chunks: [...chunks], normalized: normalize(values), source: path };
}

/** The mean squared difference of two final results of one sample (refused when their shapes differ). */
export function meanSquaredDifference(a: Float64Array[], b: Float64Array[], calib: LoadedCalibration, sample: number): number {
  if (a.length !== b.length || a.some((x, i) => x.length !== b[i]!.length)) {
    throw new CalibrationError(calib.origin, 'rollout returned results of different shapes for the same sample', sample);
  }
  let sum = 0;
  let n = 0;
  a.forEach((x, t) => {
    const y = b[t]!;
    for (let i = 0; i < x.length; i++) sum += (x[i]! - y[i]!) ** 2;
    n += x.length;
  });
  return n ? sum / n : 0;
}

function feedHash(feeds: Record<string, ort.Tensor>): string {
  const h = createHash('sha1');
  for (const name of Object.keys(feeds).sort()) {
    const t = feeds[name]!;
    h.update(`${name}|${t.type}|${t.dims.join('x')}|`);
    const d = t.data as ArrayBufferView | string[];
    if (Array.isArray(d)) h.update(JSON.stringify(d));
    else h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

function resultBytes(results: Float64Array[][]): number {
  let n = 0;
  for (const r of results) for (const x of r) n += x.byteLength;
  return n;
}

function outputBytes(out: Record<string, ort.Tensor>): number {
  let n = 0;
  for (const t of Object.values(out)) n += (t.data as ArrayBufferView).byteLength ?? 0;
  return n;
}
