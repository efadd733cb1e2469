/**
 * The rollout module of a tiny-arvd-family model, made from its folder: `tiny-arvd` and
 * `tiny-arvd-l` share the interface, the prompt encoding and the sampler (tiny-arvd README),
 * and differ only in `model.onnx` and `meta.json`. Each model's `rollout.ts` is a thin module
 * over {@link createRolloutModule}; `convert --q-arvd.calib <folder>/rollout.ts` imports it.
 *
 * Module contract (the project's calibration hook): `prompts`, `samples` and
 * `rollout(run, ctx)`; an evaluator may also read `evaluationPrompts`.
 */
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';
import { readMeta, textEmbedding, type TinyArvdMeta } from './prompt.ts';
import type { SeededPrompt } from './prompts.ts';

/** Runs the model under calibration once; `opts.chunk` is the chunk this call generates. */
export type RunModel = (
  feeds: Record<string, ort.Tensor>,
  opts: { chunk: number },
) => Promise<Record<string, ort.Tensor>>;

/** Per-sample context handed to `rollout` by its caller. */
export interface RolloutContext {
  /** Index of the calibration sample. */
  sample: number;
  /** Prompt to use; defaults to `prompts[sample % prompts.length]`. */
  prompt?: string;
  /** Noise source, already seeded for this sample by the caller. */
  random: SeededRandom;
  options?: Record<string, unknown>;
}

/** A model's rollout module: what `convert --q-arvd.calib` and the evaluator read. */
export interface ArvdRolloutModule {
  /** Absolute path of the fp32 `model.onnx`. */
  modelPath: string;
  meta: TinyArvdMeta;
  /** Calibration prompts. */
  prompts: string[];
  /** Number of calibration videos. */
  samples: number;
  /** Evaluation prompts with their noise seeds (disjoint from `prompts`). */
  evaluationPrompts: SeededPrompt[];
  /**
   * Generates one video: `chunks` × (timesteps − 1) calls of `run`, each tagged `{ chunk }`.
   * @returns the final video, float32 [1, frames, channels, height, width].
   */
  rollout(run: RunModel, ctx: RolloutContext): Promise<ort.Tensor>;
}

/** What {@link createRolloutModule} takes. */
export interface RolloutModuleSpec {
  /** The model folder (a `file:` URL ending in `/`) holding `model.onnx` and `meta.json`. */
  folder: URL;
  calibrationPrompts: string[];
  evaluationPrompts: SeededPrompt[];
}

/** Builds the rollout module of the model in `spec.folder` (tiny-arvd README → "Sampling"). */
export function createRolloutModule(spec: RolloutModuleSpec): ArvdRolloutModule {
  const meta = readMeta(spec.folder);
  const prompts = [...spec.calibrationPrompts];
  const frame = meta.channels * meta.height * meta.width;
  const videoDims = [1, meta.frames, meta.channels, meta.height, meta.width];

  async function rollout(run: RunModel, ctx: RolloutContext): Promise<ort.Tensor> {
    const prompt = ctx.prompt ?? prompts[ctx.sample % prompts.length];
    const textEmb = new ort.Tensor('float32', textEmbedding(prompt, meta), [1, meta.text_len, meta.text_dim]);
    const ts = meta.sampler.timesteps;
    const video = new Float32Array(meta.frames * frame);
    for (let chunk = 0; chunk < meta.chunks; chunk++) {
      const first = chunk * meta.chunk_frames;
      const end = first + meta.chunk_frames;
      const x = ctx.random.normalArray(meta.chunk_frames * frame);
      const frameMask = new ort.Tensor('float32', new Float32Array(meta.frames).fill(1, 0, end), [1, meta.frames]);
      for (let s = 0; s + 1 < ts.length; s++) {
        const [t, tNext] = [ts[s], ts[s + 1]];
        // Frames after chunk c are still zero in `video`, as the README asks.
        const latents = video.slice();
        latents.set(x, first * frame);
        const timesteps = new Float32Array(meta.frames);
        timesteps.fill(t, first);
        const out = await run(
          {
            latents: new ort.Tensor('float32', latents, videoDims),
            timesteps: new ort.Tensor('float32', timesteps, [1, meta.frames]),
            frame_mask: frameMask,
            text_emb: textEmb,
          },
          { chunk },
        );
        const velocity = out.velocity;
        if (!velocity) throw new Error('tiny-arvd rollout: the model returned no "velocity" output');
        const v = (velocity.data as Float32Array).subarray(first * frame, end * frame);
        const dt = tNext - t;
        for (let i = 0; i < x.length; i++) x[i] += dt * v[i];
      }
      video.set(x, first * frame);
    }
    return new ort.Tensor('float32', video, videoDims);
  }

  return {
    modelPath: fileURLToPath(new URL('./model.onnx', spec.folder)),
    meta,
    prompts,
    samples: prompts.length,
    evaluationPrompts: spec.evaluationPrompts,
    rollout,
  };
}

/**
 * Calibration draw `draw` of a module: the same calibration prompts, rolled out with other
 * noise. Draw 0 is the module itself (the noise the caller seeds, as `convert` does); draw
 * d > 0 seeds each sample's noise from (d, sample) and ignores the caller's generator, so
 * every pass over the samples (collection, each S1 rollout) still sees the same noise for the
 * same sample. Evaluation seeds (90001…) are far from these, so draws share no noise with it.
 */
export function calibrationDraw<M extends Pick<ArvdRolloutModule, 'rollout' | 'prompts' | 'samples'>>(mod: M, draw: number): M {
  if (!Number.isInteger(draw) || draw < 0) throw new Error(`calibrationDraw: draw must be a non-negative integer, got ${draw}`);
  if (draw === 0) return mod;
  return {
    ...mod,
    rollout: (run: RunModel, ctx: RolloutContext) => mod.rollout(run, { ...ctx, random: seededRandom(drawSeed(draw, ctx.sample)) }),
  };
}

/** The noise seed of `sample` in calibration draw `draw` (> 0). */
export function drawSeed(draw: number, sample: number): number {
  return 20_000 + 1_000 * draw + sample;
}

/** Wraps a session as a `RunModel` (the chunk tag is ignored). */
export function sessionRunner(session: ort.InferenceSession): RunModel {
  return async (feeds) => (await session.run(feeds)) as Record<string, ort.Tensor>;
}

/**
 * Generates a video for `prompt` with noise from `seededRandom(seed)` (for evaluation).
 * @returns the video data, [1, frames, channels, height, width] in row-major order.
 */
export async function generateVideoWith(
  mod: Pick<ArvdRolloutModule, 'rollout'>,
  session: ort.InferenceSession,
  prompt: string,
  seed: number,
): Promise<Float32Array> {
  const video = await mod.rollout(sessionRunner(session), { sample: 0, prompt, random: seededRandom(seed) });
  return video.data as Float32Array;
}
