// tiny-arvd-l, tiny-arvd-m and tiny-wan through the shared rollout module, calibration draws, and the parallel evaluator
// (which must give the same numbers as the one-process evaluator it splits).
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/kernels/random.ts';
import { evaluateModels } from '../../examples/tiny-arvd/evaluate.ts';
import { evaluateInParallel } from '../../examples/tiny-arvd/evaluate-parallel.ts';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import { CALIBRATION_SET, EVALUATION_SET, HELD_OUT_SET } from '../../examples/tiny-arvd/prompts.ts';
import { calibrationDraw, sessionRunner, type RunModel } from '../../examples/tiny-arvd/rollout-module.ts';
import { tinyArvd } from '../../examples/tiny-arvd/rollout.ts';
import * as large from '../../examples/tiny-arvd-l/rollout.ts';
import * as medium from '../../examples/tiny-arvd-m/rollout.ts';
import * as wan from '../../examples/tiny-wan/rollout.ts';

/** The trained ARVDs beside tiny-arvd, each through the shared rollout module (tiny-arvd-m and tiny-wan: held out, trained after the defaults were chosen). */
const TRAINED = [
  { name: 'tiny-arvd-l', mod: large, module: large.tinyArvdL, shape: { dim: 192, depth: 6 } },
  { name: 'tiny-arvd-m', mod: medium, module: medium.tinyArvdM, shape: { dim: 128, depth: 4, heads: 4, seed: 23 } },
  { name: 'tiny-wan', mod: wan, module: wan.tinyWan, shape: { dim: 128, depth: 4, heads: 4, seed: 29 } },
];

describe.each(TRAINED)('$name rollout module', ({ name, mod, module, shape }) => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(module.modelPath, { intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it('reads its own folder: its width and depth, its own text table, the shared interface', () => {
    expect(existsSync(module.modelPath)).toBe(true);
    expect(module.modelPath).not.toBe(MODEL_PATH);
    expect(module.meta).toMatchObject({ ...shape, frames: 12, chunks: 6, chunk_frames: 2, text_len: 4, text_dim: 32 });
    for (const other of [tinyArvd, ...TRAINED.filter((t) => t.name !== name).map((t) => t.module)]) {
      expect(module.modelPath).not.toBe(other.modelPath);
      expect(module.meta.text_table).not.toEqual(other.meta.text_table);
    }
  });

  it('calibrates on the 16 calibration prompts and evaluates on the other 16, balanced', () => {
    expect(mod.prompts).toEqual(CALIBRATION_SET.map((p) => p.prompt));
    expect(mod.samples).toBe(16);
    expect(mod.evaluationPrompts).toBe(HELD_OUT_SET);
    expect(HELD_OUT_SET.slice(0, 8)).toEqual(EVALUATION_SET);
    const held = HELD_OUT_SET.map((p) => p.prompt);
    expect(new Set(held).size).toBe(16);
    for (const p of held) expect(mod.prompts).not.toContain(p);
    expect(new Set(HELD_OUT_SET.map((p) => p.seed)).size).toBe(16);
    for (const word of ['red', 'green', 'blue', 'yellow']) expect(held.filter((p) => p.includes(word))).toHaveLength(4);
    for (const word of ['square', 'disc', 'slow', 'fast', 'one', 'two']) expect(held.filter((p) => p.split(' ').includes(word))).toHaveLength(8);
  });

  it('makes 48 chunk-tagged calls and returns a finite [1,12,3,16,16] video, the same for the same noise', async () => {
    const chunks: number[] = [];
    const inner = sessionRunner(session);
    const run: RunModel = (feeds, opts) => (chunks.push(opts.chunk), inner(feeds, opts));
    const video = await mod.rollout(run, { sample: 0, prompt: 'disc red fast two', random: seededRandom(7) });
    expect(video.dims).toEqual([1, 12, 3, 16, 16]);
    expect((video.data as Float32Array).every(Number.isFinite)).toBe(true);
    expect(chunks).toEqual(Array.from({ length: 48 }, (_, i) => Math.floor(i / 8)));
    const again = await mod.rollout(inner, { sample: 0, prompt: 'disc red fast two', random: seededRandom(7) });
    expect(again.data).toEqual(video.data);
  });
});

describe('calibration draws', () => {
  /** The first latents fed for a sample: the noise of chunk 0. */
  const firstNoise = async (mod: typeof tinyArvd, sample: number, seed: number) => {
    let first: Float32Array | undefined;
    const stop = new Error('stop');
    const run: RunModel = async (feeds) => {
      first = feeds.latents.data as Float32Array;
      throw stop;
    };
    await mod.rollout(run, { sample, random: seededRandom(seed) }).catch((e: unknown) => {
      if (e !== stop) throw e;
    });
    return Array.from(first!.subarray(0, 16));
  };

  it('draw 0 is the module; draw d reseeds each sample from (d, sample), the same every time', async () => {
    expect(calibrationDraw(tinyArvd, 0)).toBe(tinyArvd);
    const d1 = calibrationDraw(tinyArvd, 1);
    const d2 = calibrationDraw(tinyArvd, 2);
    expect(d1.prompts).toEqual(tinyArvd.prompts);
    // The caller's generator is ignored in draws > 0, so different caller seeds give the same noise.
    expect(await firstNoise(d1, 3, 1)).toEqual(await firstNoise(d1, 3, 2));
    expect(await firstNoise(d1, 3, 1)).not.toEqual(await firstNoise(d1, 4, 1));
    expect(await firstNoise(d1, 3, 1)).not.toEqual(await firstNoise(d2, 3, 1));
    expect(await firstNoise(tinyArvd, 3, 1)).not.toEqual(await firstNoise(tinyArvd, 3, 2));
    expect(() => calibrationDraw(tinyArvd, -1)).toThrow(/non-negative integer/);
  });
});

describe('the parallel evaluator', () => {
  it('gives the one-process evaluator\'s numbers and videos, in prompt order', async () => {
    const prompts = EVALUATION_SET.slice(0, 3);
    // A model that differs from fp32: tiny-arvd-l is not the same network, but any model with
    // the interface will do for comparing the two evaluators.
    const models = [{ name: 'other', path: large.tinyArvdL.modelPath }];
    const rollout = 'examples/tiny-arvd/rollout.ts';
    const one = await evaluateModels({ fp32Path: MODEL_PATH, models, prompts, rollout, latencyRuns: 0, threads: 1 });
    const two = await evaluateInParallel({ fp32Path: MODEL_PATH, models, prompts, rollout, latencyRuns: 2, workers: 2 });
    expect(two.prompts).toEqual(prompts);
    expect(two.models[0].mse).toBeGreaterThan(0);
    expect(two.models[0].mse).toBeCloseTo(one.models[0].mse, 12);
    two.models[0].chunkMse.forEach((c, i) => expect(c).toBeCloseTo(one.models[0].chunkMse[i], 12));
    expect(two.models[0].promptMse).toEqual(one.models[0].promptMse);
    for (let i = 0; i < prompts.length; i++) expect(two.models[0].videos[i]).toEqual(one.models[0].videos[i]);
    expect(two.models[0].latencyMs).toBeGreaterThan(0);
    expect(Number.isNaN(one.models[0].latencyMs)).toBe(true);
    // The one-step error (fp32's calls replayed): zero for fp32 itself, merged exactly from the parts.
    expect(one.fp32.stepError).toBe(0);
    expect(two.models[0].stepError).toBeGreaterThan(0);
    expect(two.models[0].stepError).toBeCloseTo(one.models[0].stepError, 12);
    expect(two.models[0].stepSums.reference).toBeCloseTo(one.models[0].stepSums.reference, 6);
    // Against the videos of an earlier evaluation (as the demo evaluates its q-arvd models):
    // with fp32's replayed calls the one-step error is the same; without them it is not measured.
    const reference = { videos: two.fp32.videos, dims: two.videoDims, chunks: two.chunks };
    const later = await evaluateInParallel({ fp32Path: MODEL_PATH, models, prompts, rollout, latencyRuns: 0, workers: 2, reference: { ...reference, replays: two.replays } });
    expect(later.models[0].mse).toBeCloseTo(one.models[0].mse, 12);
    expect(later.models[0].stepError).toBeCloseTo(one.models[0].stepError, 12);
    const blind = await evaluateModels({ fp32Path: MODEL_PATH, models, prompts, rollout, latencyRuns: 0, threads: 1, reference });
    expect(Number.isNaN(blind.models[0].stepError)).toBe(true);
    // About 7 s on an idle machine; minutes when the two cores are shared with other work.
  }, 300_000);
});
