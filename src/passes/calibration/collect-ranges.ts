import * as ort from 'onnxruntime-node';
import type { Model } from '../../graph/ir/model.ts';
import { seededRandom } from '../../kernels/random.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import type { ActivationRanges } from '../quant/quantize-layers.ts';
import { augmentModel } from './augment.ts';
import { ChannelRangeAccumulator } from './channel-ranges.ts';
import { CalibrationError, type CalibrationContext, type LoadedCalibration, type RunFn } from './module.ts';

/** Progress callback: samples done of total. */
export type Progress = (done: number, total: number) => void;

/**
 * Augment → collect → compute for per-channel activation ranges: runs the model (with the
 * layer inputs as extra outputs) in onnxruntime-node over the module's feeds or rollouts
 * and returns each layer's per-input-channel min/max.
 */
export async function collectActivationRanges(model: Model, layers: LinearLayer[], calib: LoadedCalibration, progress?: Progress): Promise<ActivationRanges> {
  const inputs = [...new Set(layers.map((l) => l.input))];
  const aug = augmentModel(model, inputs);
  const acc = new Map(inputs.map((v) => [v.name, new ChannelRangeAccumulator(layers.find((l) => l.input === v)!.K)]));
  const userOutputs = model.graph.outputs.map((v) => v.name);
  try {
    const session = await ort.InferenceSession.create(aug.path);
    let sample = 0;
    const run: RunFn = async (feeds) => {
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(feeds);
      } catch (e) {
        throw new CalibrationError(calib.origin, `the model rejected the feeds: ${(e as Error).message}`, sample);
      }
      for (const [name, a] of acc) a.add(out[name]!.data as Float32Array);
      return Object.fromEntries(userOutputs.map((n) => [n, out[n]!]));
    };
    for (; sample < calib.samples; sample++) {
      const ctx = contextFor(calib, sample);
      await drawSample(calib, ctx, run);
      progress?.(sample + 1, calib.samples);
    }
  } finally {
    aug.dispose();
  }
  const ranges: ActivationRanges = new Map();
  for (const l of layers) {
    const a = acc.get(l.input.name)!;
    if (a.samples === 0) throw new CalibrationError(calib.origin, 'produced no samples');
    ranges.set(l.name, { min: a.min, max: a.max });
  }
  return ranges;
}

/** The context of sample `i`: its prompt and a generator seeded from the index. */
export function contextFor(calib: LoadedCalibration, sample: number): CalibrationContext {
  const prompts = calib.module.prompts;
  return { sample, prompt: prompts?.[sample % prompts.length], random: seededRandom(0x5eed + sample), options: {} };
}

/** Runs one sample of the module: all of its feeds, or one rollout. */
export async function drawSample(calib: LoadedCalibration, ctx: CalibrationContext, run: RunFn): Promise<unknown> {
  const { module, origin } = calib;
  try {
    if (module.rollout) return await module.rollout(run, ctx);
    let count = 0;
    for await (const s of module.feeds!(ctx)) {
      if (!s || typeof s !== 'object' || !s.feeds) throw new CalibrationError(origin, 'feeds() yielded something without a feeds record', ctx.sample);
      await run(s.feeds, { chunk: s.chunk });
      count++;
    }
    if (count === 0) throw new CalibrationError(origin, 'feeds() yielded no samples', ctx.sample);
    return undefined;
  } catch (e) {
    if (e instanceof CalibrationError) throw e;
    throw new CalibrationError(origin, `threw: ${(e as Error).message}`, ctx.sample);
  }
}
