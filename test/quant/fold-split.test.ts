// fold-split (src/passes/quant/fold-split.ts): on the real tiny ARVD models, each block's
// ffn.2 has its outlier channels moved last through ffn.0 and the tanh-Gelu between them; the
// fp32 function is unchanged (onnxruntime, real first-step inputs); the emitted split layers
// read their outlier branch with a Slice in the graph onnxruntime optimizes and runs; with
// fold-split false the pass writes what the layer rewrite alone writes. The negative case
// (a producer output with a second reader) uses a synthetic graph: no real model has one
// small enough to build by hand, and the point is the refusal.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import type { Model } from '../../src/graph/ir/model.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import constantsToInitializers from '../../src/passes/constants-to-initializers.ts';
import { silentLogger } from '../../src/passes/log.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { DEFAULT_QUANT_CONFIG } from '../../src/passes/quant/config.ts';
import { foldedExternalSource, foldSplits } from '../../src/passes/quant/fold-split.ts';
import { permuteMatrixInPlace } from '../../src/kernels/permute.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { evalFeeds, quantFixture, quantize, testCalibration } from './quant-fixtures.ts';
import { GraphBuilder, weightWithOutliers } from './synthetic-graphs.ts';

const dir = scratchDir('fold-split');
const measured: string[] = [];
afterAll(() => {
  removeDir(dir);
  if (measured.length) console.log(['fp32 model before and after fold-split, first sampler step of a real prompt:', ...measured].join('\n'));
});

const MODELS = ['tiny-arvd', 'tiny-arvd-l'] as const;
const pathOf = (m: string) => join(REPO_ROOT, 'examples', m, 'model.onnx');

/** The sampler's first step on a real prompt: text rows of the model's own table, pure noise, t = 1 on every frame. */
function firstStepFeeds(m: string): Record<string, ort.Tensor> {
  const meta = JSON.parse(readFileSync(join(REPO_ROOT, 'examples', m, 'meta.json'), 'utf8')) as { vocab: string[]; text_table: number[][]; frames: number; channels: number; height: number; width: number };
  const words = ['red', 'square', 'slow', 'one'].map((w) => meta.vocab.indexOf(w));
  const { frames, channels, height, width } = meta;
  return {
    latents: new ort.Tensor('float32', seededRandom(7).normalArray(frames * channels * height * width), [1, frames, channels, height, width]),
    timesteps: new ort.Tensor('float32', new Float32Array(frames).fill(1), [1, frames]),
    frame_mask: new ort.Tensor('float32', new Float32Array(frames).fill(1), [1, frames]),
    text_emb: new ort.Tensor('float32', Float32Array.from(words.flatMap((w) => meta.text_table[w]!)), [1, words.length, meta.text_table[0]!.length]),
  };
}

/** The nodes of the graph onnxruntime runs (all optimizations, `optimizedModelFilePath`). */
async function optimizedNodes(path: string): Promise<{ opType: string; name: string }[]> {
  const optimized = `${path}.optimized.onnx`;
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3, optimizedModelFilePath: optimized });
  await s.release();
  return [...loadModel(optimized).graph.nodes()].map((n) => ({ opType: n.opType, name: n.name }));
}

describe('fold-split on the tiny ARVD models', () => {
  for (const m of MODELS) {
    it(`${m}: every block's ffn.2 folds through ffn.0, and the fp32 model computes the same`, async () => {
      const model = loadModel(pathOf(m));
      const { folds, skipped } = foldSplits(model, findLinearLayers(model.graph).layers, DEFAULT_QUANT_CONFIG);
      const ffn2 = folds.filter((f) => /\/ffn\/ffn\.2\/MatMul$/.test(f.consumer));
      expect(ffn2.length).toBe(m === 'tiny-arvd' ? 3 : 6);
      for (const f of ffn2) {
        expect(f.producers).toEqual([f.consumer.replace('ffn.2', 'ffn.0')]);
        // TorchScript's tanh approximation of Gelu at opset 17: Mul, Pow or Mul, Add, Tanh, Mul.
        expect(f.through).toContain('Tanh');
        expect(f.outliers).toBeGreaterThan(0);
      }
      // Attention projections read a Gather, Reshape or LayerNormalization: refused with the reason.
      expect(skipped.length).toBeGreaterThan(0);
      for (const s of skipped) expect(s.reason).toMatch(/not an elementwise op|also read by|no linear layer/);
      const folded = join(dir, `${m}-folded-fp32.onnx`);
      saveModel(model, folded);
      const feeds = firstStepFeeds(m);
      const want = (await runModel(pathOf(m), feeds)).velocity!.data as Float32Array;
      const got = (await runModel(folded, feeds)).velocity!.data as Float32Array;
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      measured.push(`  ${m}: max |folded − original| ${diff.toExponential(2)}, max |y| ${scale.toFixed(2)}`);
      // The same function: float summation order only (a wrong permutation moves outputs by O(scale)).
      expect(diff, `max |folded − original| ${diff} against max |y| ${scale}`).toBeLessThan(1e-5 * scale);
    });

    it(`${m}: q-arvd's split ffn.2 layers read their outlier branch with a Slice in onnxruntime's optimized graph`, async () => {
      const model = loadModel(pathOf(m));
      // Weight-only needs no calibration; integer-kernels always: the small-layer rule keeps these layers in float compute, unsplit.
      const report = await quantize(model, { 'a-bits': 'none', 'integer-kernels': 'always' });
      expect(report.foldSplit?.folded.length).toBeGreaterThan(0);
      const path = join(dir, `${m}-w8.onnx`);
      saveModel(model, path);
      const nodes = await optimizedNodes(path);
      for (const f of report.foldSplit!.folded) {
        expect(report.layers.find((l) => l.name === f.consumer)?.mode, f.consumer).toBe('dual');
        const branch = nodes.filter((n) => n.name.startsWith(`${f.consumer}/qarvd/outlier/`));
        expect(branch.map((n) => n.opType), f.consumer).toContain('Slice');
        expect(branch.map((n) => n.opType), f.consumer).not.toContain('Gather');
      }
      // Split layers that were not folded still gather their channels; the report gives each one's reason, and only theirs.
      const notFolded = report.layers.filter((l) => l.mode === 'dual' && !report.foldSplit!.folded.some((f) => f.consumer === l.name));
      expect(notFolded.length).toBeGreaterThan(0);
      expect(report.foldSplit!.notFolded.map((x) => x.consumer)).toEqual(notFolded.map((l) => l.name));
      for (const l of notFolded) expect(nodes.some((n) => n.name.startsWith(`${l.name}/qarvd/outlier/`) && n.opType === 'Gather'), l.name).toBe(true);
    });
  }

  it('stories260K (SwiGLU): w2 folds through both w1 and w3 (Sigmoid, Mul), and the fp32 model computes the same', async () => {
    const f = quantFixture('stories260K');
    const model = loadModel(join(REPO_ROOT, f.path));
    const { folds } = foldSplits(model, findLinearLayers(model.graph).layers, DEFAULT_QUANT_CONFIG);
    const w2 = folds.filter((x) => /\/w2\/MatMul$/.test(x.consumer));
    expect(w2.length).toBeGreaterThan(0);
    for (const x of w2) {
      expect(x.producers).toEqual([x.consumer.replace('w2', 'w1'), x.consumer.replace('w2', 'w3')]);
      expect([...new Set(x.through)].sort()).toEqual(['Mul', 'Sigmoid']);
    }
    const folded = join(dir, 'stories260K-folded-fp32.onnx');
    saveModel(model, folded);
    const feeds = evalFeeds(f);
    const [want, got] = [Object.values(await runModel(join(REPO_ROOT, f.path), feeds))[0]!.data as Float32Array, Object.values(await runModel(folded, feeds))[0]!.data as Float32Array];
    let [diff, scale] = [0, 0];
    want.forEach((v, i) => ((diff = Math.max(diff, Math.abs(got[i]! - v))), (scale = Math.max(scale, Math.abs(v)))));
    measured.push(`  stories260K: max |folded − original| ${diff.toExponential(2)}, max |y| ${scale.toFixed(2)} (logits of 16 random tokens)`);
    expect(diff, `max |folded − original| ${diff} against max |y| ${scale}`).toBeLessThan(1e-5 * scale);
  });

  it('tiny-arvd-l in external data: the permuted weights stay out of memory (permuted when read) and hold the bytes the in-memory fold gives', () => {
    const inMemory = loadModel(pathOf('tiny-arvd-l'));
    foldSplits(inMemory, findLinearLayers(inMemory.graph).layers, DEFAULT_QUANT_CONFIG);
    const external = join(dir, 'tiny-arvd-l-external.onnx');
    saveModel(loadModel(pathOf('tiny-arvd-l')), external, { externalData: true });
    const streamed = loadModel(external);
    const { folds } = foldSplits(streamed, findLinearLayers(streamed.graph).layers, DEFAULT_QUANT_CONFIG);
    expect(folds.length).toBe(6);
    const permuted = folds.flatMap((f) => [f.consumer, ...f.producers]).map((name) => findLinearLayers(streamed.graph).layers.find((l) => l.name === name)!.weight);
    for (const t of permuted) {
      expect(t.isInMemory, t.name).toBe(false);
      expect(t.external, t.name).toBeUndefined();
      expect(Buffer.compare(t.bytes(), inMemory.graph.initializers.get(t.name)!.initializer!.bytes()), t.name).toBe(0);
    }
  });

  it('tiny-arvd-l in external data, on worker threads: the workers read and reorder the permuted weights themselves, and the model is the in-memory one byte for byte', async () => {
    const external = join(dir, 'tiny-arvd-l-external-q.onnx');
    saveModel(loadModel(pathOf('tiny-arvd-l')), external, { externalData: true });
    const streamed = loadModel(external);
    // What the workers are handed: the data file's location and the permutation, no bytes.
    const { folds } = foldSplits(streamed, findLinearLayers(streamed.graph).layers, DEFAULT_QUANT_CONFIG);
    const sources = folds.flatMap((f) => [f.consumer, ...f.producers]).map((name) => foldedExternalSource(findLinearLayers(streamed.graph).layers.find((l) => l.name === name)!.weight));
    expect(sources.every((s) => s && s.permutation.order.length > 0)).toBe(true);
    expect(new Set(sources.map((s) => s!.permutation.axis))).toEqual(new Set([0, 1]));
    const convert = async (path: string, threads: number, bits: string) => {
      const m = loadModel(path);
      await quantize(m, { 'w-bits': bits, 'a-bits': 'none', threads });
      return m;
    };
    const bytes = (m: Model) => new Map([...m.graph.initializers.values()].map((v) => [v.name, Buffer.from(v.initializer!.bytes())]));
    // W8 too: its widened normal branches are written into one buffer reused from layer to layer
    // (spilled before the next), with one thread and two.
    for (const [bits, threads] of [['4', 2], ['8', 2], ['8', 1]] as const) {
      const [streamed, inMemory] = [await convert(external, threads, bits), await convert(pathOf('tiny-arvd-l'), 1, bits)];
      const [a, b] = [bytes(streamed), bytes(inMemory)];
      expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
      for (const [name, v] of a) expect(Buffer.compare(v, b.get(name)!), `W${bits}, ${threads} thread(s): ${name}`).toBe(0);
    }
  });

  it('permuteMatrixInPlace moves rows (axis 0, every cycle shape) and columns (axis 1) as a copy by order does', () => {
    const byOrder = (m: number[], rows: number, cols: number, axis: 0 | 1, order: number[]) =>
      m.map((_, x) => (axis === 0 ? m[order[Math.floor(x / cols)]! * cols + (x % cols)] : m[Math.floor(x / cols) * cols + order[x % cols]!]));
    const rng = seededRandom(11);
    for (const [rows, cols] of [[3, 4], [7, 5], [64, 3]] as const) {
      for (const axis of [0, 1] as const) {
        const n = axis === 0 ? rows : cols;
        for (let t = 0; t < 5; t++) {
          // Random orders (fixed points, 2-cycles, long cycles), and outliers-last as fold-split makes them.
          const order = t === 4 ? [...Array(n).keys()].filter((i) => i % 3 !== 1).concat([...Array(n).keys()].filter((i) => i % 3 === 1)) : [...Array(n).keys()].sort(() => rng.next() - 0.5);
          const m = Array.from({ length: rows * cols }, (_, i) => i);
          const got = Uint32Array.from(m);
          permuteMatrixInPlace(got, rows, cols, { axis, order: Int32Array.from(order) });
          expect([...got], `${rows}×${cols} axis ${axis} order ${order.join(',')}`).toEqual(byOrder(m, rows, cols, axis, order));
        }
      }
    }
  });

  it('tiny-arvd W8A8: a calibration table made with the folds reproduces the model byte for byte, and is refused with fold-split false', async () => {
    const f = quantFixture('tiny-arvd');
    const table = join(dir, 'table.json');
    const raw = { 'reconstruct': 'none', 'bias-correction': false, 'frame-weighting': false, 'integer-kernels': 'always' };
    const fresh = loadModel(pathOf('tiny-arvd'));
    const report = await quantize(fresh, { ...raw, 'save-calibration': table }, testCalibration(f, 2));
    expect(report.foldSplit?.folded.length).toBe(3);
    expect((JSON.parse(readFileSync(table, 'utf8')) as { folds: unknown[] }).folds).toEqual(report.foldSplit!.folded);
    const loaded = loadModel(pathOf('tiny-arvd'));
    await quantize(loaded, { ...raw, 'load-calibration': table });
    const [a, b] = [join(dir, 'fresh.onnx'), join(dir, 'loaded.onnx')];
    saveModel(fresh, a);
    saveModel(loaded, b);
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
    await expect(quantize(loadModel(pathOf('tiny-arvd')), { ...raw, 'load-calibration': table, 'fold-split': false })).rejects.toThrow(
      /table\.json was made with fold-split folding \/blocks\.0\/ffn\/ffn\.0\/MatMul → \/blocks\.0\/ffn\/ffn\.2\/MatMul, .* this run has no fold-split fold: .*quantize with fold-split true as the table was/,
    );
    // Read by another model (fold-split on both sides): the message names the model, not the option.
    await expect(quantize(loadModel(pathOf('tiny-arvd-l')), { ...raw, 'load-calibration': table })).rejects.toThrow(
      /table\.json: its fold-split folded 3 layer pair\(s\) \(first \/blocks\.0\/ffn\/ffn\.2\/MatMul\), this run folds 6 .*made on another model or on other layers/,
    );
  });

  it('tiny-arvd-l with fold-split false: the pass writes exactly what the layer rewrite alone writes (no permutation), Gathers as before', async () => {
    const viaPass = loadModel(pathOf('tiny-arvd-l'));
    const report = await quantize(viaPass, { 'a-bits': 'none', 'integer-kernels': 'always', 'fold-split': false });
    expect(report.foldSplit).toBeUndefined();
    const direct = loadModel(pathOf('tiny-arvd-l'));
    quantizeLinearLayers(direct, { ...DEFAULT_QUANT_CONFIG, aBits: null, integerKernels: 'always' }, {});
    const [a, b] = [join(dir, 'no-fold-pass.onnx'), join(dir, 'no-fold-direct.onnx')];
    saveModel(viaPass, a);
    saveModel(direct, b);
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
    const ops = (await optimizedNodes(a)).filter((n) => /\/ffn\/ffn\.2\/MatMul\/qarvd\/outlier\//.test(n.name)).map((n) => n.opType);
    expect(ops).toContain('Gather');
    expect(ops).not.toContain('Slice');
  });
});

describe('fold-split refusals (synthetic graphs: the patterns are built on purpose)', () => {
  /** x → up (MatMul + bias) → Relu → down, down's rows 3, 10, 17 planted outliers; `extra` adds a second reader of up's output, a per-channel Mul, or stores up's weight in float16 behind a Cast. */
  function ffn(extra: 'none' | 'second-reader' | 'channel-constant' | 'fp16' | 'constant-node'): Model {
    const b = new GraphBuilder(`ffn-${extra}`);
    const x = b.input('x', [4, 32]);
    const upWeight =
      extra === 'fp16'
        ? b.node('Cast', 'up/Cast', [b.initF16('up.weight', [32, 64], weightWithOutliers(1, 32, 64))], [attr.int('to', DataType.FLOAT)])
        : extra === 'constant-node'
          ? b.node('Constant', 'up.weight', [], [attr.tensor('value', Tensor.fromFloat32('up.weight', [32, 64], weightWithOutliers(1, 32, 64)))])
          : b.init('up.weight', [32, 64], weightWithOutliers(1, 32, 64));
    const up = b.node('MatMul', 'up', [x, upWeight]);
    const h = b.node('Add', 'up_bias', [up, b.init('up.bias', [64], seededRandom(2).normalArray(64))]);
    const act = extra === 'channel-constant' ? b.node('Mul', 'scale', [h, b.init('channel_scale', [64], new Float32Array(64).fill(0.5))]) : b.node('Relu', 'relu', [h]);
    const down = b.node('MatMul', 'down', [act, b.init('down.weight', [64, 32], weightWithOutliers(3, 64, 32, [3, 10, 17]))]);
    b.output(down, [4, 32]);
    if (extra === 'second-reader') b.output(b.node('Sigmoid', 'side', [h]), [4, 64]);
    return b.model;
  }
  const fold = (model: Model) => foldSplits(model, findLinearLayers(model.graph).layers, { ...DEFAULT_QUANT_CONFIG, align: 1 });

  it('folds the plain pattern (the control for the refusals below)', () => {
    const { folds } = fold(ffn('none'));
    expect(folds).toEqual([{ consumer: 'down', producers: ['up'], through: ['Relu'], outliers: 3, K: 64 }]);
  });

  it('folds through a float16 weight behind a Cast (2-byte elements), and onnxruntime computes the same', async () => {
    const model = ffn('fp16');
    const before = join(dir, 'ffn-fp16.onnx');
    saveModel(model, before);
    expect(fold(model).folds.map((x) => x.consumer)).toEqual(['down']);
    const after = join(dir, 'ffn-fp16-folded.onnx');
    saveModel(model, after);
    const feeds = { x: new ort.Tensor('float32', seededRandom(5).normalArray(4 * 32), [4, 32]) };
    const [want, got] = [(await runModel(before, feeds)).down_out!.data as Float32Array, (await runModel(after, feeds)).down_out!.data as Float32Array];
    const diff = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i]!)), 0);
    expect(diff).toBeLessThan(1e-5 * want.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
    expect(model.graph.initializers.get('up.weight')!.initializer!.dataType).toBe(DataType.FLOAT16);
  });

  it("refuses when the producer's output has a second reader, and leaves every weight as it was", () => {
    const model = ffn('second-reader');
    const before = [...model.graph.initializers.values()].map((v) => v.initializer!.bytes().slice());
    const { folds, skipped } = fold(model);
    expect(folds).toEqual([]);
    expect(skipped.find((x) => x.consumer === 'down')).toEqual({ consumer: 'down', reason: 'up_bias_out is also read by side (Sigmoid)' });
    [...model.graph.initializers.values()].forEach((v, i) => expect(Buffer.compare(v.initializer!.bytes(), before[i]!), v.name).toBe(0));
  });

  it('names a weight stored as a Constant node, and folds it once constants-to-initializers has lifted it', async () => {
    const model = ffn('constant-node');
    const { folds, skipped } = fold(model);
    expect(folds).toEqual([]);
    expect(skipped.find((x) => x.consumer === 'down')?.reason).toBe("up's weight up.weight_out is a Constant node's output, not an initializer (--pass constants-to-initializers before this pass lifts it, and the fold can then be made)");
    await constantsToInitializers.run(model, { log: silentLogger, verbose: false, modelDir: undefined }, {});
    expect(fold(model).folds.map((x) => x.consumer)).toEqual(['down']);
  });

  it('refuses a per-channel constant on the way', () => {
    const { folds, skipped } = fold(ffn('channel-constant'));
    expect(folds).toEqual([]);
    expect(skipped.find((x) => x.consumer === 'down')?.reason).toBe('scale (Mul) has a constant channel_scale of shape [64], not a scalar');
  });
});

describe('fold-split when the pass fails', () => {
  // Synthetic x → up (+bias) → Relu → down with planted outlier rows in down (no real model
  // has a calibration module that fails on purpose).
  const build = () => {
    const b = new GraphBuilder('ffn');
    const x = b.input('x', [4, 32]);
    const up = b.node('MatMul', 'up', [x, b.init('up.weight', [32, 64], weightWithOutliers(1, 32, 64))]);
    const h = b.node('Add', 'up_bias', [up, b.init('up.bias', [64], seededRandom(2).normalArray(64))]);
    b.output(b.node('MatMul', 'down', [b.node('Relu', 'relu', [h]), b.init('down.weight', [64, 32], weightWithOutliers(3, 64, 32, [3, 10, 17]))]), [4, 32]);
    return b;
  };
  const snapshot = (b: GraphBuilder) => new Map([...b.graph.initializers.values()].map((v) => [v.name, Buffer.from(v.initializer!.bytes()).toString('base64')]));

  it('puts the permuted weights back when calibration fails (the model as given), and folds when it succeeds', async () => {
    const failing = build();
    const before = snapshot(failing);
    await expect(quantize(failing.model, { 'w-bits': '8', 'a-bits': '8', align: '1' }, { samples: 2, feeds: () => { throw new Error('calibration data unavailable'); } })).rejects.toThrow(/calibration data unavailable/);
    expect(snapshot(failing)).toEqual(before);
    // The same graph with working calibration is folded: the restore above had something to undo.
    const working = build();
    const report = await quantize(working.model, { 'w-bits': '8', 'a-bits': '8', align: '1' }, working.calibration());
    expect(report.foldSplit?.folded.map((f) => f.consumer)).toEqual(['down']);
  });
});
