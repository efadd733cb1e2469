// onnxruntime's quantizer reproduced (bench/peers/onnxruntime-recipe.ts): the formulas of its
// Python source on numbers worked by hand (the rounding cases where numpy's half-to-even or C's
// roundf differ from Math.round), the layout of MatMulNBits checked by onnxruntime itself on a
// synthetic two-MatMul model (no bundled model has a K that is not a multiple of 32, an odd
// block count or a MatMul output that is a graph output), and every recipe's output of
// tiny-arvd loaded and run in onnxruntime-node against fp32.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  computeScaleZp,
  type Feeds,
  quantizeBlockwise4,
  quantizeDynamicInt8,
  quantizeInt8PerChannel,
  quantizeMatMulNBits,
  quantizeStaticQdq,
  recordCalibrationFeeds,
} from '../../bench/peers/onnxruntime-recipe.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';

const dir = mkdtempSync(join(tmpdir(), 'qarvd-peers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f32 = Math.fround;

describe('quant_utils formulas', () => {
  it('compute_scale_zp: range widened to 0, zero point rounded half to even, scale in float32', () => {
    // −rmin/scale = 126.5 exactly: numpy rounds to 126 (Math.round would give 127).
    expect(computeScaleZp(-126.5, 128.5, 0, 255, false)).toEqual({ scale: 1, zeroPoint: 126 });
    expect(computeScaleZp(-1, 3, 0, 255, false)).toEqual({ scale: f32(4 / 255), zeroPoint: 64 });
    // A positive range still includes 0: zero point 0.
    expect(computeScaleZp(0.5, 2, 0, 255, false)).toEqual({ scale: f32(2 / 255), zeroPoint: 0 });
    // Symmetric int8 weights: 2·max|w| / 254, zero point 0.
    expect(computeScaleZp(-0.3, 1.27, -127, 127, true)).toEqual({ scale: f32((2 * f32(1.27)) / 254), zeroPoint: 0 });
    // A zero range: scale 1, zero point 0.
    expect(computeScaleZp(0, 0, 0, 255, false)).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('per-channel int8 weights: max|w| = 127 gives scale 1, and halves round to even', () => {
    // [3, 2] row-major; channel (axis 1) 0 = [127, 2.5, -3.5], channel 1 = [-254, 1.5, 0.5].
    const w = Float32Array.of(127, -254, 2.5, 1.5, -3.5, 0.5);
    const q = quantizeInt8PerChannel(w, 3, 2, 1);
    expect([...q.scales]).toEqual([1, 2]);
    // 2.5 → 2 and −3.5 → −4 (half to even); channel 1: −127, 0.75 → 1, 0.25 → 0.
    expect([...q.data]).toEqual([127, -127, 2, 1, -4, 0]);
    // Axis 0 (a Gemm with transB): rows are the channels.
    expect([...quantizeInt8PerChannel(Float32Array.of(127, 63.5, -1, 0.5), 2, 2, 0).data]).toEqual([127, 64, -127, 64]);
  });
});

describe('MLAS blockwise 4-bit (quantize_matmul_4bits)', () => {
  // One column, K = 32: min −2.5, max 5 → scale 7.5 / 15 = 0.5, zero point roundf(2.5 / 0.5) = 5.
  const column = new Float32Array(32);
  column.set([-2.5, 5, -0.25, 0.25]);

  it('asymmetric: scale, zero point and packed nibbles of a known block (roundf: half away from zero)', () => {
    const q = quantizeBlockwise4(column, 32, 1, 32, false);
    expect([...q.scales]).toEqual([0.5]);
    // −2.5 → 0, 5 → 15, −0.25 → 4.5 → 5 (half away; half to even would give 4), 0.25 → 5.5 → 6, 0 → 5.
    expect([...q.packed]).toEqual([0xf0, 0x65, ...Array(14).fill(0x55)]);
    // Block 0's zero point in the low nibble; the missing block 1 keeps MLAS's default 8.
    expect([...q.zeroPoints!]).toEqual([0x85]);
  });

  it('symmetric: scale −m / 8 from the value of larger magnitude, implicit zero point 8, no zero-point tensor', () => {
    const q = quantizeBlockwise4(column, 32, 1, 32, true);
    expect([...q.scales]).toEqual([-0.625]);
    // v / −0.625 + 8: −2.5 → 12, 5 → 0, −0.25 → 8.4 → 8, 0.25 → 7.6 → 8, 0 → 8.
    expect([...q.packed]).toEqual([0x0c, 0x88, ...Array(14).fill(0x88)]);
    expect(q.zeroPoints).toBeUndefined();
  });

  it('refuses a block size MatMulNBits does not take', () => {
    expect(() => quantizeBlockwise4(column, 32, 1, 24, false)).toThrow(/power of two/);
  });
});

// Synthetic: x [4, 80] → MatMul W1 [80, 48] → h → MatMul W2 [48, 8] → y (a graph output).
// K = 80 makes three blocks of 32 (the last partial, an odd count).
const K = 80;
const H = 48;
const N = 8;
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}
const rand = lcg(7);
const W1 = Float32Array.from({ length: K * H }, (_, i) => rand() * (i % 17 === 0 ? 3 : 0.5));
const W2 = Float32Array.from({ length: H * N }, () => rand() * 0.4);
const synthetic = join(dir, 'two-matmuls.onnx');
{
  const g = new Graph({ name: 'two-matmuls' });
  const model = new Model(g, { irVersion: 8, opset: 17 });
  const type = (dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const x = new Value('x', { type: type([4, K]) });
  g.addInput(x);
  const w1 = new Value('W1', { initializer: Tensor.fromFloat32('W1', [K, H], W1) });
  const w2 = new Value('W2', { initializer: Tensor.fromFloat32('W2', [H, N], W2) });
  g.addInitializer(w1);
  g.addInitializer(w2);
  const m1 = new Node({ opType: 'MatMul', name: 'mm1', inputs: [x, w1], outputs: ['h'] });
  const m2 = new Node({ opType: 'MatMul', name: 'mm2', inputs: [m1.output(), w2], outputs: ['y'] });
  g.append(m1, m2);
  m2.output().type = type([4, N]);
  g.addOutput(m2.output());
  saveModel(model, synthetic);
}
const xs = Array.from({ length: 6 }, () => Float32Array.from({ length: 4 * K }, () => rand() * 2));
const feedsOf = (x: Float32Array): Feeds => ({ x: new ort.Tensor('float32', x, [4, K]) });

async function run(path: string, feeds: Feeds, output = 'y'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  try {
    return (await s.run(feeds))[output]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** x [M, k] · w [k, n] in float64. */
function matmul(x: ArrayLike<number>, w: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let c = 0; c < k; c++) for (let j = 0; j < n; j++) y[i * n + j]! += x[i * k + c]! * w[c * n + j]!;
  return y;
}

/** Naive RTN per column and block of 32 rows, the way the Python docs describe it (float64). */
function naiveRtn(w: Float32Array, k: number, n: number): Float64Array {
  const out = new Float64Array(k * n);
  for (let j = 0; j < n; j++) {
    for (let b = 0; b < k; b += 32) {
      const rows = Array.from({ length: Math.min(32, k - b) }, (_, i) => w[(b + i) * n + j]!);
      const lo = Math.min(0, ...rows);
      const hi = Math.max(0, ...rows);
      const scale = (hi - lo) / 15;
      const zp = Math.min(15, Math.max(0, Math.round(-lo / scale)));
      rows.forEach((v, i) => (out[(b + i) * n + j] = (Math.min(15, Math.max(0, Math.round(v / scale + zp))) - zp) * scale));
    }
  }
  return out;
}

const maxRelDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
};

describe('recipes on a synthetic model, checked by onnxruntime', () => {
  it('MatMulNBits: onnxruntime reads the packed blocks, scales and zero points as the weights RTN gives', async () => {
    const out = join(dir, 'nbits.onnx');
    const report = quantizeMatMulNBits(synthetic, out, { blockSize: 32 });
    expect(report.nodes).toEqual(['mm1', 'mm2']);
    const m = loadModel(out);
    const ops = m.graph.nodes().map((n) => `${n.domain}.${n.opType}`);
    expect(ops).toEqual(['com.microsoft.MatMulNBits', 'com.microsoft.MatMulNBits']);
    const q = m.graph.nodes()[0]!;
    expect(q.inputs.map((v) => v!.initializer?.describe())).toEqual([undefined, 'u8[48x3x16]', 'f32[144]', 'u8[96]']);
    expect(q.intAttr('accuracy_level', -1)).toBe(-1);
    expect(m.opset('com.microsoft')).toBe(1);
    // The float weights are gone; the graph output keeps its name.
    expect([...m.graph.initializers.keys()].some((n) => n === 'W1' || n === 'W2')).toBe(false);
    // No accuracy level: onnxruntime dequantizes B to float32, so its output is x · Ŵ1 · Ŵ2.
    const x = xs[0]!;
    const expected = matmul(matmul(x, naiveRtn(W1, K, H), 4, K, H), naiveRtn(W2, H, N), 4, H, N);
    expect(maxRelDiff(await run(out, feedsOf(x)), expected)).toBeLessThan(1e-5);
  });

  it('quantize_static QDQ: MinMax ranges over the feeds, uint8 activations and per-channel int8 weights, output close to fp32', async () => {
    const out = join(dir, 'static.onnx');
    const report = await quantizeStaticQdq(synthetic, out, { calibration: xs.map(feedsOf) });
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of xs) for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    expect(report.activations!.get('x')).toEqual({ ...computeScaleZp(lo, hi, 0, 255, false), min: lo, max: hi });
    expect([...report.activations!.keys()].sort()).toEqual(['h', 'x', 'y']);
    const m = loadModel(out);
    const count = (op: string) => m.graph.nodes().filter((n) => n.opType === op).length;
    expect([count('QuantizeLinear'), count('DequantizeLinear'), count('MatMul')]).toEqual([3, 5, 2]);
    const w1 = m.graph.initializers.get('W1_quantized')!.initializer!;
    expect(w1.describe()).toBe('i8[80x48]');
    expect(m.graph.nodes().find((n) => n.name === 'W1_DequantizeLinear')!.intAttr('axis', -1)).toBe(1);
    expect(m.graph.outputs.map((v) => v.name)).toEqual(['y']);
    expect(m.producerName).toBe('onnx.quantize');
    const x = xs[1]!;
    const fp32 = await run(synthetic, feedsOf(x));
    const y = await run(out, feedsOf(x));
    const rel = maxRelDiff(y, fp32);
    expect(rel).toBeGreaterThan(0);
    expect(rel).toBeLessThan(0.03);
  });

  it('quantize_dynamic: DynamicQuantizeLinear → MatMulInteger with int8 per-tensor weights, output close to fp32', async () => {
    const out = join(dir, 'dynamic.onnx');
    expect(quantizeDynamicInt8(synthetic, out).nodes).toEqual(['mm1', 'mm2']);
    const m = loadModel(out);
    expect(m.graph.nodes().map((n) => n.opType)).toEqual(['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul', 'DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul']);
    const x = xs[2]!;
    const rel = maxRelDiff(await run(out, feedsOf(x)), await run(synthetic, feedsOf(x)));
    expect(rel).toBeGreaterThan(0);
    expect(rel).toBeLessThan(0.03);
  });

  it('leaves the input model untouched', () => {
    const m = loadModel(synthetic);
    expect(m.graph.nodes().map((n) => n.opType)).toEqual(['MatMul', 'MatMul']);
  });
});

describe('recipes on tiny-arvd, run in onnxruntime-node', () => {
  const model = new URL('../../examples/tiny-arvd/model.onnx', import.meta.url).pathname;
  const rollout = new URL('../../examples/tiny-arvd/rollout.ts', import.meta.url).pathname;

  it('each output loads, runs and stays near fp32 on calibration feeds (one rollout: 48 calls)', async () => {
    const oneRollout = join(dir, 'one-rollout.mts');
    writeFileSync(oneRollout, `export { prompts, rollout } from ${JSON.stringify(rollout)};\nexport const samples = 1;\n`);
    const feeds = await recordCalibrationFeeds(model, oneRollout);
    expect(feeds).toHaveLength(48);
    const outs = { static: join(dir, 'ta-static.onnx'), nbits: join(dir, 'ta-nbits.onnx'), dynamic: join(dir, 'ta-dyn.onnx') };
    const st = await quantizeStaticQdq(model, outs.static, { calibration: feeds });
    const nb = quantizeMatMulNBits(model, outs.nbits, { blockSize: 32, accuracyLevel: 4 });
    const dy = quantizeDynamicInt8(model, outs.dynamic);
    // Every MatMul in QDQ (attention's activation × activation ones too); the weight-only
    // recipes take the 37 with a constant B and leave the 12 attention MatMuls float.
    expect(st.nodes).toHaveLength(49);
    expect([nb.nodes.length, nb.skipped.length, dy.nodes.length, dy.skipped.length]).toEqual([37, 12, 37, 12]);
    const sample = [feeds[3]!, feeds[20]!, feeds[47]!];
    const ref = await Promise.all(sample.map((f) => run(model, f, 'velocity')));
    const err: Record<string, number> = {};
    for (const [name, path] of Object.entries(outs)) {
      let num = 0;
      let den = 0;
      for (const [i, f] of sample.entries()) {
        const y = await run(path, f, 'velocity');
        for (let j = 0; j < y.length; j++) [num, den] = [num + (y[j]! - ref[i]![j]!) ** 2, den + ref[i]![j]! ** 2];
      }
      err[name] = Math.sqrt(num / den);
    }
    console.log('tiny-arvd velocity, relative RMS error vs fp32:', err);
    for (const e of Object.values(err)) expect(e).toBeGreaterThan(0);
    // 8-bit recipes well under the 4-bit one; all far from a broken model (error ≈ 1).
    expect(err.static!).toBeLessThan(0.35);
    expect(err.dynamic!).toBeLessThan(0.25);
    expect(err.nbits!).toBeLessThan(0.7);
  }, 120_000);
});
