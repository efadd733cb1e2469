/**
 * Calibration module for tiny-arvd (`convert --q-arvd.calib examples/tiny-arvd/rollout.ts`):
 * generates one video chunk by chunk with the README's Euler flow-matching sampler, tagging
 * every model call with the chunk it generates (the tag the S1 chunk sensitivity and per-chunk
 * loss weights need). The sampler itself is in `rollout-module.ts`, shared with tiny-arvd-l.
 */
import type * as ort from 'onnxruntime-node';
import { createRolloutModule, generateVideoWith } from './rollout-module.ts';
import { CALIBRATION_SET, EVALUATION_SET } from './prompts.ts';

export { sessionRunner, type RolloutContext, type RunModel } from './rollout-module.ts';

/** tiny-arvd's module: 16 calibration prompts, 8 disjoint evaluation prompts. */
export const tinyArvd = createRolloutModule({
  folder: new URL('./', import.meta.url),
  calibrationPrompts: CALIBRATION_SET.map((p) => p.prompt),
  evaluationPrompts: EVALUATION_SET,
});

/**
 * The module contract: `prompts` (calibration), `samples`, `evaluationPrompts` (with seeds,
 * disjoint from `prompts`) and `rollout(run, ctx)` (6 chunks × 8 Euler steps = 48 tagged calls).
 */
export const { prompts, samples, evaluationPrompts, rollout } = tinyArvd;

/**
 * Generates a video for `prompt` with noise from `seededRandom(seed)` (for evaluation).
 * @returns the video data, [1, 12, 3, 16, 16] in row-major order.
 */
export function generateVideo(session: ort.InferenceSession, prompt: string, seed: number): Promise<Float32Array> {
  return generateVideoWith(tinyArvd, session, prompt, seed);
}
