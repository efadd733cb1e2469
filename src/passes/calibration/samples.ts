import { seededRandom } from '../../kernels/random.ts';
import { CalibrationError, type CalibrationContext, type LoadedCalibration, type RunFn } from './module.ts';
import { isTensor } from './session.ts';
import { superviseModuleCall } from './supervise.ts';

/** How many samples a step that takes "the first `n`" rolls out: `n` (0 or absent: all), at most the module's. */
export function firstSamples(calib: LoadedCalibration, n: number | undefined): number {
  return Math.min(calib.samples, n && n > 0 ? n : calib.samples);
}

/**
 * The context of sample `i`: its prompt and a generator seeded from the index, so the same
 * sample sees the same noise in every pass over the samples (collection, and each S1 rollout).
 */
export function contextFor(calib: LoadedCalibration, sample: number): CalibrationContext {
  const prompts = calib.module.prompts;
  return { sample, prompt: prompts?.[sample % prompts.length], random: seededRandom(0x5eed + sample), options: {} };
}

/**
 * Runs one sample of the module: all of its feeds, or one rollout (whose final result is
 * returned). Whatever the module throws is reported with its origin and the sample index;
 * the sample runs supervised (supervise.ts): a hang, a promise that never settles,
 * `process.exit` or an uncaught error fails it with a message instead of ending the process.
 */
export function drawSample(calib: LoadedCalibration, ctx: CalibrationContext, run: RunFn): Promise<unknown> {
  const call = { origin: calib.origin, sample: ctx.sample, samples: calib.samples, what: 'the sample' };
  // A throw from a timer an earlier sample left ends the calibration here.
  calib.supervision?.late?.check();
  return superviseModuleCall(call, calib.supervision, () => drawUnsupervised(calib, ctx, checkedRun(calib, ctx.sample, run)));
}

async function drawUnsupervised(calib: LoadedCalibration, ctx: CalibrationContext, run: RunFn): Promise<unknown> {
  const { module, origin } = calib;
  try {
    if (module.rollout) return await module.rollout(run, ctx);
    let count = 0;
    for await (const s of module.feeds!(ctx)) {
      if (!s || typeof s !== 'object' || !s.feeds) throw new CalibrationError(origin, 'feeds() yielded something without a feeds record (expected { feeds, chunk? })', ctx.sample);
      await run(s.feeds, { chunk: s.chunk });
      count++;
    }
    if (count === 0) throw new CalibrationError(origin, 'feeds() yielded no samples', ctx.sample);
    return undefined;
  } catch (e) {
    if (e instanceof CalibrationError) throw e;
    throw new CalibrationError(origin, `threw: ${(e as Error)?.message ?? String(e)}`, ctx.sample, undefined, { cause: e });
  }
}

/**
 * `run` refusing feeds with NaN or infinite values: they would poison every range and scale
 * downstream, where the message could no longer name the module, the sample and the input.
 */
function checkedRun(calib: LoadedCalibration, sample: number, run: RunFn): RunFn {
  return (feeds, opts) => {
    for (const [name, t] of Object.entries(feeds ?? {})) {
      const d = (t as { data?: unknown })?.data;
      if (!(d instanceof Float32Array || d instanceof Float64Array)) continue;
      // x - x is 0 for every finite x, NaN for NaN and ±Infinity: one test per value, no call.
      for (let i = 0; i < d.length; i++) {
        if (d[i]! - d[i]! !== 0) throw new CalibrationError(calib.origin, `feed ${name} holds ${d[i]} at index ${i}; calibration data must be finite`, sample);
      }
    }
    return run(feeds, opts);
  };
}

/** The chunk of a run call: its tag, 0 when untagged; anything but a non-negative integer is an error. */
export function chunkTag(chunk: unknown, calib: LoadedCalibration, sample: number): number {
  if (chunk === undefined || chunk === null) return 0;
  if (typeof chunk !== 'number' || !Number.isInteger(chunk) || chunk < 0) {
    throw new CalibrationError(calib.origin, `chunk tag must be a non-negative integer, got ${JSON.stringify(chunk)}`, sample);
  }
  return chunk;
}

/**
 * The float values of a rollout's final result: one tensor, or a record of them by name.
 * With `judged` (S1, which measures squared differences of them: one NaN would make the curve
 * NaN) non-finite values are refused, naming the quantized chunk when there is one; the
 * collection, which judges nothing, takes them.
 */
export function resultValues(result: unknown, calib: LoadedCalibration, sample: number, judged?: { quantizedChunk?: number }): Float64Array[] {
  const bad = (): never => {
    throw new CalibrationError(calib.origin, `rollout returned ${describeValue(result)}; it must return the final result to judge, an ort.Tensor or a record of them`, sample);
  };
  const keys = isTensor(result) ? [''] : result && typeof result === 'object' ? Object.keys(result).sort() : bad();
  const tensors: unknown[] = isTensor(result) ? [result] : keys.map((k) => (result as Record<string, unknown>)[k]);
  if (tensors.length === 0) bad();
  return tensors.map((t, i) => {
    if (!isTensor(t)) return bad();
    const d = t.data as ArrayLike<number | bigint>;
    if (typeof d[0] === 'string') return bad();
    const values = Float64Array.from(d as ArrayLike<number>, Number);
    const at = judged ? values.findIndex((v) => !Number.isFinite(v)) : -1;
    if (at >= 0) {
      const name = keys[i] ? `result ${keys[i]}` : 'result';
      const quantizedChunk = judged!.quantizedChunk;
      const message = quantizedChunk === undefined
        ? `rollout returned a ${name} holding ${values[at]} at index ${at}; the final result to judge must be finite`
        : `with chunk ${quantizedChunk} answered by the plainly quantized model (S1), the rollout's ${name} holds ${values[at]} at index ${at}: that model diverges here; --q-arvd.frame-weighting false skips S1, or give a curve with --q-arvd.sensitivity`;
      throw new CalibrationError(calib.origin, message, sample);
    }
    return values;
  });
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object that is not a record of tensors' : `a ${typeof v}`;
}
