// tiny-arvd-m, the third ARVD (trained here after the defaults were chosen, a held-out check of
// them): its rollout module reads its own folder and drives the shared interface.
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/kernels/random.ts';
import { sessionRunner, type RunModel } from '../../examples/tiny-arvd/rollout-module.ts';
import { tinyArvd } from '../../examples/tiny-arvd/rollout.ts';
import { CALIBRATION_SET, HELD_OUT_SET } from '../../examples/tiny-arvd/prompts.ts';
import { tinyArvdL } from '../../examples/tiny-arvd-l/rollout.ts';
import * as medium from '../../examples/tiny-arvd-m/rollout.ts';

describe('tiny-arvd-m rollout module', () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(medium.tinyArvdM.modelPath, { intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it('reads its own folder: width 128, 4 blocks, its own text table, the shared interface and prompt sets', () => {
    expect(medium.tinyArvdM.meta).toMatchObject({ dim: 128, depth: 4, heads: 4, frames: 12, chunks: 6, chunk_frames: 2, text_len: 4, text_dim: 32, seed: 23 });
    for (const other of [tinyArvd, tinyArvdL]) {
      expect(medium.tinyArvdM.modelPath).not.toBe(other.modelPath);
      expect(medium.tinyArvdM.meta.text_table).not.toEqual(other.meta.text_table);
    }
    expect(medium.prompts).toEqual(CALIBRATION_SET.map((p) => p.prompt));
    expect(medium.evaluationPrompts).toBe(HELD_OUT_SET);
  });

  it('makes 48 chunk-tagged calls and returns a finite [1,12,3,16,16] video, the same for the same noise', async () => {
    const chunks: number[] = [];
    const inner = sessionRunner(session);
    const run: RunModel = (feeds, opts) => (chunks.push(opts.chunk), inner(feeds, opts));
    const a = await medium.rollout(run, { sample: 0, prompt: 'square blue slow one', random: seededRandom(3) });
    expect(a.dims).toEqual([1, 12, 3, 16, 16]);
    expect((a.data as Float32Array).every(Number.isFinite)).toBe(true);
    expect(chunks).toEqual(Array.from({ length: 48 }, (_, i) => Math.floor(i / 8)));
    const b = await medium.rollout(inner, { sample: 0, prompt: 'square blue slow one', random: seededRandom(3) });
    expect(b.data).toEqual(a.data);
  });
});
