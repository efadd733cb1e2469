import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/kernels/random.ts';
import { evaluateModels, formatTable, psnr } from '../../examples/tiny-arvd/evaluate.ts';
import { renderStrip, stripSize, writeStrip } from '../../examples/tiny-arvd/frames.ts';
import { MODEL_PATH, encodePrompt, meta, textEmbedding } from '../../examples/tiny-arvd/prompt.ts';
import { ALL_PROMPTS, CALIBRATION_SET, EVALUATION_SET } from '../../examples/tiny-arvd/prompts.ts';
import {
  generateVideo,
  prompts,
  rollout,
  samples,
  sessionRunner,
  type RunModel,
} from '../../examples/tiny-arvd/rollout.ts';

const FRAME = 3 * 16 * 16;

describe('tiny-arvd prompt encoding', () => {
  it('maps words to [shape, 2 + colour, 6 + speed, 8 + count]', () => {
    expect(encodePrompt('disc red fast two')).toEqual([1, 2, 7, 9]);
    expect(encodePrompt('square yellow slow one')).toEqual([0, 5, 6, 8]);
    expect(encodePrompt('  Disc  BLUE slow two ')).toEqual([1, 4, 6, 9]);
    for (const p of ALL_PROMPTS) expect(encodePrompt(p).map((id) => meta.vocab[id]).join(' ')).toBe(p);
  });

  it('stacks text_table rows into text_emb [1, 4, 32]', () => {
    const emb = textEmbedding('disc green fast one');
    expect(emb.length).toBe(4 * 32);
    [1, 3, 7, 8].forEach((id, i) => expect(Array.from(emb.subarray(i * 32, (i + 1) * 32))).toEqual(Array.from(Float32Array.from(meta.text_table[id]))));
  });

  it('names the bad word and lists the valid ones', () => {
    expect(() => encodePrompt('disc purple fast two')).toThrow(/"purple" is not a valid colour.*red, green, blue, yellow/);
    expect(() => encodePrompt('disc red fast')).toThrow(/3 words; expected 4/);
  });

  it('has disjoint, balanced calibration and evaluation sets', () => {
    expect(ALL_PROMPTS).toHaveLength(32);
    expect(new Set(ALL_PROMPTS).size).toBe(32);
    expect(CALIBRATION_SET).toHaveLength(16);
    expect(EVALUATION_SET).toHaveLength(8);
    const all = [...CALIBRATION_SET, ...EVALUATION_SET];
    expect(new Set(all.map((p) => p.prompt)).size).toBe(24);
    expect(new Set(all.map((p) => p.seed)).size).toBe(24);
    for (const p of all) expect(ALL_PROMPTS).toContain(p.prompt);
    for (const colour of ['red', 'green', 'blue', 'yellow']) {
      expect(CALIBRATION_SET.filter((p) => p.prompt.includes(colour))).toHaveLength(4);
      expect(EVALUATION_SET.filter((p) => p.prompt.includes(colour))).toHaveLength(2);
    }
    expect(prompts).toEqual(CALIBRATION_SET.map((p) => p.prompt));
    expect(samples).toBe(16);
  });
});

describe('tiny-arvd rollout', () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(MODEL_PATH);
  });
  afterAll(async () => {
    await session?.release();
  });

  /** Runs the session and records every call's feeds and chunk tag. */
  const recorder = () => {
    const calls: { feeds: Record<string, ort.Tensor>; chunk: number }[] = [];
    const inner = sessionRunner(session);
    const run: RunModel = (feeds, opts) => {
      calls.push({ feeds, chunk: opts.chunk });
      return inner(feeds, opts);
    };
    return { run, calls };
  };

  it('makes 48 tagged calls following the README sampler and returns a [1,12,3,16,16] video', async () => {
    const { run, calls } = recorder();
    const t0 = performance.now();
    const video = await rollout(run, { sample: 0, prompt: 'disc red fast two', random: seededRandom(7) });
    console.log(`tiny-arvd: one video (48 calls) in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(video.type).toBe('float32');
    expect(video.dims).toEqual([1, 12, 3, 16, 16]);
    const data = video.data as Float32Array;
    expect(data.every(Number.isFinite)).toBe(true);
    const inRange = data.filter((v) => v >= -1.5 && v <= 1.5).length;
    expect(inRange / data.length).toBeGreaterThan(0.99);

    expect(calls).toHaveLength(48);
    expect(calls.map((c) => c.chunk)).toEqual(Array.from({ length: 48 }, (_, i) => Math.floor(i / 8)));

    // Chunk 2, step 1 (t = 0.875): earlier chunks final, later frames zero, mask up to frame 5.
    const { feeds } = calls[2 * 8 + 1];
    expect(Array.from(feeds.timesteps.data as Float32Array)).toEqual([0, 0, 0, 0, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875]);
    expect(Array.from(feeds.frame_mask.data as Float32Array)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    const latents = feeds.latents.data as Float32Array;
    expect(latents.subarray(0, 4 * FRAME)).toEqual(data.subarray(0, 4 * FRAME));
    expect(latents.subarray(6 * FRAME).every((v) => v === 0)).toBe(true);
    expect(Array.from(feeds.text_emb.data as Float32Array)).toEqual(Array.from(textEmbedding('disc red fast two')));
  });

  it('is deterministic for a seed, differs across seeds, and defaults to the calibration prompts', async () => {
    const a = await generateVideo(session, 'square blue slow one', 11);
    const b = await generateVideo(session, 'square blue slow one', 11);
    const c = await generateVideo(session, 'square blue slow one', 12);
    expect(b).toEqual(a);
    const diff = a.reduce((s, v, i) => s + (v - c[i]) ** 2, 0) / a.length;
    expect(diff).toBeGreaterThan(1e-3);

    const bySample = await rollout(sessionRunner(session), { sample: samples + 1, random: seededRandom(5) });
    const byPrompt = await generateVideo(session, prompts[1], 5);
    expect(bySample.data).toEqual(byPrompt);
  });
});

describe('tiny-arvd evaluation and frames', () => {
  it('gives MSE 0 and PSNR Infinity for the fp32 model against itself', async () => {
    const result = await evaluateModels({
      fp32Path: MODEL_PATH,
      models: [{ name: 'same', path: MODEL_PATH }],
      prompts: EVALUATION_SET.slice(0, 1),
      latencyRuns: 5,
    });
    const [same] = result.models;
    expect(result.chunks).toBe(6);
    expect(result.videoDims).toEqual([1, 12, 3, 16, 16]);
    for (const e of [result.fp32, same]) {
      expect(e.mse).toBe(0);
      expect(e.psnr).toBe(Infinity);
      expect(e.chunkMse).toEqual([0, 0, 0, 0, 0, 0]);
      expect(e.sizeRatio).toBe(1);
      expect(e.latencyMs).toBeGreaterThan(0);
    }
    expect(same.videos[0]).toEqual(result.fp32.videos[0]);
    expect(psnr(0.01)).toBeCloseTo(26.0206, 3);

    const table = formatTable(result).split('\n');
    expect(table).toHaveLength(5);
    expect(table[3]).toMatch(/^fp32 .* 0 +inf /);
    expect(table[4]).toMatch(/^same /);
    expect(new Set(table.slice(1).map((l) => l.length)).size).toBe(1);
  });

  it('writes a PNG strip of rows × 12 upscaled frames with gaps', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiny-arvd-'));
    try {
      const videos = [-1, 0, 1].map((v) => new Float32Array(12 * FRAME).fill(v));
      const file = join(dir, 'strip.png');
      expect(writeStrip(file, videos)).toEqual({ width: 12 * 64 + 11 * 2, height: 3 * 64 + 2 * 2 });
      expect(stripSize(3, { scale: 2, gap: 1 })).toEqual({ width: 12 * 32 + 11, height: 3 * 32 + 2 });
      const png = PNG.sync.read(readFileSync(file));
      expect([png.width, png.height]).toEqual([790, 196]);
      const px = (x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4));
      expect(px(0, 0)).toEqual([0, 0, 0, 255]);
      expect(px(64, 0)).toEqual([255, 255, 255, 255]); // gap
      expect(px(100, 70)).toEqual([128, 128, 128, 255]);
      expect(px(789, 195)).toEqual([255, 255, 255, 255]);
      expect(() => renderStrip([new Float32Array(10)])).toThrow(/expected 9216/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
