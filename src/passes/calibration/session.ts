import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { importOnnxruntime } from '../../runtime/optional-import.ts';
import type { Model } from '../../graph/ir/model.ts';
import type { Value } from '../../graph/ir/value.ts';
import { augmentModel, type AugmentedModel } from './augment.ts';
import { CalibrationError, type LoadedCalibration } from './module.ts';

/** One observed value in this many is checked for NaN/Infinity (see `checkObserved`). */
const OVERFLOW_STRIDE = 16;

/** onnxruntime session options of calibration: `threads` 0 lets onnxruntime choose. */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
}

/**
 * The fp32 model under calibration in onnxruntime-node, with the observed values as extra
 * graph outputs (the augment step). `run` checks the user's feeds against the model's
 * inputs first, so a wrong name is reported as such rather than as an onnxruntime message.
 */
export class CalibrationSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly augmented: AugmentedModel,
    /** The model's own outputs (what `run` hands back to the user's module). */
    readonly userOutputs: string[],
    readonly calib: LoadedCalibration,
  ) {}

  static async open(model: Model, observe: Value[], calib: LoadedCalibration, threads: number): Promise<CalibrationSession> {
    const userOutputs = model.graph.outputs.map((v) => v.name);
    const aug = augmentModel(model, observe);
    try {
      const { InferenceSession } = await importOnnxruntime();
      const session = await openTemporaryCopy(InferenceSession, aug.path, threads, 'to calibrate it (the model with its layer inputs as extra outputs, a temporary copy)');
      return new CalibrationSession(session, aug, userOutputs, calib);
    } catch (e) {
      aug.dispose();
      throw e;
    }
  }

  /**
   * SHA-256 of the model onnxruntime runs here: the model under calibration with the observed
   * layer inputs as extra outputs, so it names both the model and the layers observed (its
   * folder holds the file and any external data, and nothing else).
   */
  fingerprint(): string {
    const hash = createHash('sha256');
    const dir = dirname(this.augmented.path);
    for (const name of readdirSync(dir).sort()) hash.update(name).update(readFileSync(join(dir, name)));
    return hash.digest('hex');
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  /** Runs the augmented model: every output, the observed values included. */
  async run(feeds: Record<string, ort.Tensor>, sample: number): Promise<ort.InferenceSession.ReturnType> {
    checkFeeds(feeds, this.session.inputNames, this.calib.origin, sample);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (e) {
      throw new CalibrationError(this.calib.origin, `the model rejected the feeds: ${(e as Error).message}`, sample);
    }
    this.checkObserved(out, sample);
    return out;
  }

  /**
   * Refuses a NaN or infinite value in an observed layer input: its range could not be
   * quantized, and here the message can still name the value, the module and the sample.
   * Every {@link OVERFLOW_STRIDE}-th value is looked at: an overflow spreads over whole rows
   * of the activations downstream, and a full scan of every observed value would add about a
   * tenth to the collection (measured on the tiny ARVD: 1.35e9 values). An isolated value the
   * stride misses still fails later, as a non-finite activation range.
   */
  private checkObserved(out: ort.InferenceSession.ReturnType, sample: number): void {
    for (const [name, t] of Object.entries(out)) {
      if (this.userOutputs.includes(name) || !(t.data instanceof Float32Array)) continue;
      const d = t.data;
      for (let i = d.length ? (d.length - 1) % OVERFLOW_STRIDE : 0; i < d.length; i += OVERFLOW_STRIDE) {
        // x - x is 0 for every finite x, NaN for NaN and ±Infinity: one test, no call.
        if (d[i]! - d[i]! !== 0) {
          throw new CalibrationError(this.calib.origin, `the model's value ${name} (the input of a layer to quantize) holds ${d[i]} at index ${i} with this sample's feeds; a quantization range must be finite`, sample);
        }
      }
    }
  }

  /** The user's outputs of a full result. */
  userView(out: ort.InferenceSession.ReturnType): Record<string, ort.Tensor> {
    return Object.fromEntries(this.userOutputs.map((n) => [n, out[n]!]));
  }

  async dispose(): Promise<void> {
    try {
      await this.session.release();
    } finally {
      this.augmented.dispose();
    }
  }
}

/** Checks that `feeds` is a record of tensors naming exactly the model's inputs. */
export function checkFeeds(feeds: unknown, inputNames: readonly string[], origin: string, sample: number): asserts feeds is Record<string, ort.Tensor> {
  if (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds)) {
    throw new CalibrationError(origin, `feeds must be a record of input name → ort.Tensor, got ${feeds === null ? 'null' : Array.isArray(feeds) ? 'an array' : typeof feeds}`, sample);
  }
  const given = Object.keys(feeds);
  const unknown = given.filter((n) => !inputNames.includes(n));
  if (unknown.length) throw new CalibrationError(origin, `feeds name ${unknown.map((n) => `'${n}'`).join(', ')}, which the model does not have; its inputs are ${inputNames.map((n) => `'${n}'`).join(', ')}`, sample);
  const missing = inputNames.filter((n) => !given.includes(n));
  if (missing.length) throw new CalibrationError(origin, `feeds lack the model input(s) ${missing.map((n) => `'${n}'`).join(', ')}`, sample);
  for (const n of given) {
    if (!isTensor((feeds as Record<string, unknown>)[n])) throw new CalibrationError(origin, `feed '${n}' is not an ort.Tensor`, sample);
  }
}

/** Duck-typed: a module may bring its own copy of onnxruntime-node, so `instanceof` would lie. */
export function isTensor(t: unknown): t is ort.Tensor {
  if (typeof t !== 'object' || t === null) return false;
  const o = t as Record<string, unknown>;
  return typeof o.type === 'string' && Array.isArray(o.dims) && typeof o.data === 'object' && o.data !== null;
}

/**
 * An onnxruntime session on a temporary copy of the model (calibration's augmented model, S1's
 * plainly quantized one). onnxruntime's refusal names the copy's path, gone by the time the
 * message is read (a user trial): the message names the model and `why` there is a copy.
 */
export async function openTemporaryCopy(sessions: typeof ort.InferenceSession, path: string, threads: number, why: string): Promise<ort.InferenceSession> {
  try {
    return await sessions.create(path, sessionOptions(threads));
  } catch (e) {
    const message = String((e as Error).message ?? e).replace(`Load model from ${path} failed:`, '').split(path).join('the model').trim();
    throw new Error(`onnxruntime cannot load the model ${why}: ${message}`, { cause: e });
  }
}
