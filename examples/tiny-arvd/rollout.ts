/**
 * Calibration module for tiny-arvd: generates one video chunk by chunk with the README's
 * Euler flow-matching sampler, tagging every model call with the chunk it generates (the tag
 * the S1 chunk sensitivity and per-chunk loss weights need).
 *
 * Module contract (the project's calibration hook): `prompts`, `samples` and
 * `rollout(run, ctx)`; an evaluator may also read `evaluationPrompts`.
 */
import * as ort from 'onnxruntime-node';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';
import { meta, textEmbedding } from './prompt.ts';
import { CALIBRATION_SET, EVALUATION_SET, type SeededPrompt } from './prompts.ts';

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

/** The calibration prompts. */
export const prompts: string[] = CALIBRATION_SET.map((p) => p.prompt);
/** Number of calibration videos. */
export const samples = prompts.length;
/** Evaluation prompts with their noise seeds (disjoint from `prompts`). */
export const evaluationPrompts: SeededPrompt[] = EVALUATION_SET;

const FRAME = meta.channels * meta.height * meta.width;
const VIDEO_DIMS = [1, meta.frames, meta.channels, meta.height, meta.width];

/**
 * Generates one video: 6 chunks × 8 Euler steps = 48 calls of `run`, each tagged `{ chunk }`.
 * @returns the final video, float32 [1, 12, 3, 16, 16].
 */
export async function rollout(run: RunModel, ctx: RolloutContext): Promise<ort.Tensor> {
  const prompt = ctx.prompt ?? prompts[ctx.sample % prompts.length];
  const textEmb = new ort.Tensor('float32', textEmbedding(prompt), [1, meta.text_len, meta.text_dim]);
  const ts = meta.sampler.timesteps;
  const video = new Float32Array(meta.frames * FRAME);
  for (let chunk = 0; chunk < meta.chunks; chunk++) {
    const first = chunk * meta.chunk_frames;
    const end = first + meta.chunk_frames;
    const x = ctx.random.normalArray(meta.chunk_frames * FRAME);
    const frameMask = new ort.Tensor('float32', new Float32Array(meta.frames).fill(1, 0, end), [1, meta.frames]);
    for (let s = 0; s + 1 < ts.length; s++) {
      const [t, tNext] = [ts[s], ts[s + 1]];
      // Frames after chunk c are still zero in `video`, as the README asks.
      const latents = video.slice();
      latents.set(x, first * FRAME);
      const timesteps = new Float32Array(meta.frames);
      timesteps.fill(t, first);
      const out = await run(
        {
          latents: new ort.Tensor('float32', latents, VIDEO_DIMS),
          timesteps: new ort.Tensor('float32', timesteps, [1, meta.frames]),
          frame_mask: frameMask,
          text_emb: textEmb,
        },
        { chunk },
      );
      const velocity = out.velocity;
      if (!velocity) throw new Error('tiny-arvd rollout: the model returned no "velocity" output');
      const v = (velocity.data as Float32Array).subarray(first * FRAME, end * FRAME);
      const dt = tNext - t;
      for (let i = 0; i < x.length; i++) x[i] += dt * v[i];
    }
    video.set(x, first * FRAME);
  }
  return new ort.Tensor('float32', video, VIDEO_DIMS);
}

/** Wraps a session as a `RunModel` (the chunk tag is ignored). */
export function sessionRunner(session: ort.InferenceSession): RunModel {
  return async (feeds) => (await session.run(feeds)) as Record<string, ort.Tensor>;
}

/**
 * Generates a video for `prompt` with noise from `seededRandom(seed)` (for evaluation).
 * @returns the video data, [1, 12, 3, 16, 16] in row-major order.
 */
export async function generateVideo(
  session: ort.InferenceSession,
  prompt: string,
  seed: number,
): Promise<Float32Array> {
  const video = await rollout(sessionRunner(session), { sample: 0, prompt, random: seededRandom(seed) });
  return video.data as Float32Array;
}
