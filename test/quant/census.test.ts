// The census of what onnxruntime executes: every emitted form (qdq and qoperator; W8A8, W4A8,
// W4A6, W8, W4; dual-scale and single-scale; and reduce-range) is opened in onnxruntime-node
// with `optimizedModelFilePath`, and the optimized graph must run every quantized weight in an
// integer kernel: no DequantizeLinear of a weight matrix survives, no float MatMul/Gemm takes a
// dequantized weight, and there is one integer kernel per emitted branch. Not timed (speed is
// `npm run bench -- speed`).
//
// Models: the real tiny ARVD (examples/tiny-arvd), tiny-wan (examples/tiny-wan: a Conv3d patch
// embedding, 3-D RoPE and RMSNorm qk-norm around the same linears), and a synthetic block with the Wan block's
// structure at a small size (test/helpers/wan-block.ts: 512/1024 channels, 2% planted outlier
// rows in o and ffn.2, so q-arvd splits them). Activation ranges are fixed at [-3, 4]: the
// forms do not depend on calibration, and this keeps the test to seconds.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers, type LayerSelection } from '../../src/passes/quant/linear-layers.ts';
import { toQuantConfig } from '../../src/passes/quant/quant-options.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { type Census, optimizedCensus } from '../helpers/census.ts';
import { feedsFor, runModel, tensorBytes } from '../helpers/ort.ts';
import { removeDir, REPO_ROOT, scratchDir } from '../helpers/files.ts';
import { wanBlock } from '../helpers/wan-block.ts';

const dir = scratchDir('census');
afterAll(() => removeDir(dir));

// `W8 dynamic`: 8-bit weight-only layers with `w8-kernel dynamic`, as onnxruntime's
// quantize_dynamic emits them (qoperator DynamicQuantizeMatMul; qdq the ONNX chain its fusions
// turn into it).
const BITS: Record<string, Pick<QuantConfig, 'wBits' | 'aBits'> & Partial<QuantConfig>> = {
  W8A8: { wBits: 8, aBits: 8 },
  W4A8: { wBits: 4, aBits: 8 },
  W4A6: { wBits: 4, aBits: 6 },
  W8: { wBits: 8, aBits: null },
  'W8 dynamic': { wBits: 8, aBits: null, w8Kernel: 'dynamic' },
  // `w4a8-kernel nbits`: MatMulNBits (int4) behind the static Q → DQ; qoperator only.
  'W4A8 nbits': { wBits: 4, aBits: 8, w4a8Kernel: 'nbits' },
  W4: { wBits: 4, aBits: null },
};

const MODELS: { name: string; load: () => Model }[] = [
  { name: 'tiny-arvd', load: () => loadModel(join(REPO_ROOT, 'examples/tiny-arvd/model.onnx')) },
  { name: 'synthetic block', load: () => wanBlock({ outliers: true, shape: { dim: 512, ffn: 1024 } }) },
  { name: 'tiny-wan', load: () => loadModel(join(REPO_ROOT, 'examples/tiny-wan/model.onnx')) },
];

/**
 * Quantizes with activation ranges fixed at [-3, 4]; returns the branch count (emitted weight ops) and the report's split count.
 * `integer-kernels always` unless the config says otherwise: this test is about the integer
 * forms, and tiny-arvd's layers are small enough for the small-layer rule to keep some in float
 * (test/quant/small-layers.test.ts).
 */
function quantizeFixed(model: Model, partial: Partial<QuantConfig>, selection: LayerSelection = {}): { branches: number; dual: number } {
  const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, integerKernels: 'always', ...partial };
  const ranges: ActivationRanges = new Map();
  for (const l of findLinearLayers(model.graph).layers) ranges.set(l.name, { min: new Float32Array(l.K).fill(-3), max: new Float32Array(l.K).fill(4) });
  const report = quantizeLinearLayers(model, config, selection, config.aBits === null ? undefined : ranges, config.dualScale ? 'q-arvd' : 'minmax');
  const branches = model.graph.nodes().filter((n) => n.metadata.has('qarvd.layer') && ['MatMul', 'MatMulIntegerToFloat', 'MatMulNBits', 'DynamicQuantizeMatMul', 'MatMulInteger'].includes(n.opType)).length;
  return { branches, dual: report.totals.layers.dual };
}

/**
 * Saves `model` as `<name>.onnx`, takes the census of its optimized graph and checks it: no
 * weight in float, no weight Cast left unfolded, one integer kernel per emitted branch.
 */
async function expectIntegerCensus(model: Model, name: string, branches: number): Promise<Census> {
  const path = join(dir, `${name.replaceAll(' ', '-')}.onnx`);
  saveModel(model, path);
  const census = await optimizedCensus(path);
  expect(census.floatWeights, JSON.stringify(census.ops)).toEqual([]);
  expect(census.weightCasts, JSON.stringify(census.ops)).toEqual([]);
  expect(census.integerKernels, JSON.stringify(census.ops)).toBe(branches);
  return census;
}

describe('census of the optimized graph: every quantized weight reaches an integer kernel', () => {
  // q-arvd's default scope outer-w8 mixes 4-bit block layers with 8-bit layers around them in one graph.
  for (const format of ['qdq', 'qoperator'] as const) {
    for (const label of ['W4A8', 'W4A6', 'W4'] as const) {
      const name = `tiny-arvd ${format} ${label} scope outer-w8`;
      it(name, async () => {
        const model = loadModel(join(REPO_ROOT, 'examples/tiny-arvd/model.onnx'));
        const { branches } = quantizeFixed(model, { ...BITS[label], format }, { scope: 'outer-w8' });
        const bits = new Set(model.graph.nodes().map((n) => n.metadata.get('qarvd.decision')).filter((d) => d !== undefined).map((d) => (JSON.parse(d!) as { bits: string }).bits));
        expect(bits.size, [...bits].join(', ')).toBe(2);
        await expectIntegerCensus(model, name, branches);
      });
    }
    // outer-activations float: the layers around the blocks as 8-bit weight-only kernels beside the quantized-activation ones.
    for (const label of ['W8A8', 'W4A8'] as const) {
      const name = `tiny-arvd ${format} ${label} scope outer-w8, outer-activations float`;
      it(name, async () => {
        const model = loadModel(join(REPO_ROOT, 'examples/tiny-arvd/model.onnx'));
        const { branches } = quantizeFixed(model, { ...BITS[label], format, outerActivations: 'float' }, { scope: 'outer-w8' });
        const bits = new Set(model.graph.nodes().map((n) => n.metadata.get('qarvd.decision')).filter((d) => d !== undefined).map((d) => (JSON.parse(d!) as { bits: string }).bits));
        expect([...bits].sort()).toEqual([label, 'W8'].sort());
        await expectIntegerCensus(model, name, branches);
      });
    }
  }

  for (const m of MODELS) {
    for (const format of ['qdq', 'qoperator'] as const) {
      for (const [label, bits] of Object.entries(BITS)) {
        if (bits.w4a8Kernel === 'nbits' && format === 'qdq') continue;
        for (const dualScale of [true, false]) {
          const name = `${m.name} ${format} ${label} ${dualScale ? 'q-arvd' : 'single-scale'}`;
          it(name, async () => {
            const model = m.load();
            const { branches, dual } = quantizeFixed(model, { ...bits, format, dualScale });
            if (m.name === 'synthetic block') expect(dual).toBe(dualScale ? 2 : 0);
            const census = await expectIntegerCensus(model, name, branches);
            if (bits.w8Kernel === 'dynamic') {
              // Nothing of the qdq chain is left. Layers reading the same tensor (tiny-arvd's q, k,
              // v) share one DynamicQuantizeLinear once onnxruntime's common-subexpression
              // elimination has merged theirs; the fusion then stops at MatMulIntegerToFloat fed
              // by it (the same arithmetic, the activation quantized once).
              const { DynamicQuantizeMatMul = 0, MatMulIntegerToFloat = 0, MatMulInteger = 0 } = census.ops;
              expect(DynamicQuantizeMatMul + MatMulIntegerToFloat, JSON.stringify(census.ops)).toBe(branches);
              expect(MatMulInteger, JSON.stringify(census.ops)).toBe(0);
              if (format === 'qoperator' || m.name === 'synthetic block') expect(DynamicQuantizeMatMul).toBe(branches);
            }
          });
        }
      }
    }
  }

  it('the options: w8-kernel nbits by default, dynamic per channel only (refuses block-size naming both options); w4a8-kernel integer by default, nbits qoperator only', () => {
    const base = { wBits: '8', aBits: 'none', format: 'qdq', include: [], exclude: [], minK: 16, wSymmetric: false, aSymmetric: false, qdqDomain: 'ai.onnx', calib: '', report: '' };
    expect(toQuantConfig(base).w8Kernel).toBe('nbits');
    expect(toQuantConfig({ ...base, w8Kernel: 'dynamic' }).w8Kernel).toBe('dynamic');
    expect(() => toQuantConfig({ ...base, w8Kernel: 'dynamic', blockSize: '32' })).toThrow(/block-size 32: w8-kernel dynamic .*per-output-channel/);
    // 4-bit and quantized activations ignore it.
    expect(() => toQuantConfig({ ...base, wBits: '4', w8Kernel: 'dynamic', blockSize: '32' })).not.toThrow();
    // w4a8-kernel: integer by default; nbits only in the qoperator format.
    const w4a8 = { ...base, wBits: '4', aBits: '8' };
    expect(toQuantConfig(w4a8).w4a8Kernel).toBe('integer');
    expect(toQuantConfig({ ...w4a8, format: 'qoperator', w4a8Kernel: 'nbits' }).w4a8Kernel).toBe('nbits');
    expect(() => toQuantConfig({ ...w4a8, w4a8Kernel: 'nbits' })).toThrow(/w4a8-kernel nbits: only with format qoperator/);
    expect(() => toQuantConfig({ ...w4a8, format: 'qoperator', w4a8Kernel: 'nbits', blockSize: '32' })).toThrow(/block-size 32: not supported with w4a8-kernel nbits/);
    // Blocked weights with quantized activations in QDQ: onnxruntime's fusion fails at run time (measured on tiny-arvd, minmax W4A8 block 32).
    expect(() => toQuantConfig({ ...w4a8, blockSize: '32' })).toThrow(/block-size 32: with quantized activations \(a-bits 8\) onnxruntime fuses the blocked weights into MatMulIntegerToFloat/);
    expect(() => toQuantConfig({ ...w4a8, aBits: 'none', blockSize: '32' })).not.toThrow();
  });

  for (const format of ['qdq', 'qoperator'] as const) {
    it(`int4-storage (${format} W4A8, q-arvd): int4 weights behind a Cast that onnxruntime folds; the same optimized graph and outputs as int8 storage, half the weight bytes`, async () => {
      const paths = { int4: join(dir, `int4-${format}.onnx`), int8: join(dir, `int8-${format}.onnx`) };
      for (const [storage, path] of Object.entries(paths)) {
        const model = MODELS[1]!.load();
        quantizeFixed(model, { ...BITS.W4A8, format, int4Storage: storage === 'int4' });
        const casts = model.graph.nodes().filter((n) => n.opType === 'Cast' && n.metadata.has('qarvd.layer'));
        // One per branch: q and ffn.0 single-scale, o and ffn.2 split in two.
        expect(casts.length, storage).toBe(storage === 'int4' ? 6 : 0);
        saveModel(model, path);
      }
      const [int4, int8] = [await optimizedCensus(paths.int4), await optimizedCensus(paths.int8)];
      expect(int4.ops).toEqual(int8.ops);
      expect(int4.weightCasts).toEqual([]);
      expect(int4.floatWeights).toEqual([]);
      const feeds = await feedsFor(paths.int8, { dims: { rows: 16 } });
      const [a, b] = [await runModel(paths.int4, feeds), await runModel(paths.int8, feeds)];
      for (const name of Object.keys(b)) expect(Buffer.from(tensorBytes(a[name]!)).equals(Buffer.from(tensorBytes(b[name]!))), name).toBe(true);
      // The weights are 512·512·2 + 512·1024·2 values (plus the outlier rows stored twice): half a byte each instead of one.
      const saved = statSync(paths.int8).size - statSync(paths.int4).size;
      expect(saved).toBeGreaterThan(0.45 * (512 * 512 * 2 + 512 * 1024 * 2));
      // The census sees a Cast that is not folded (optimizations off).
      expect((await optimizedCensus(paths.int4, { graphOptimizationLevel: 'disabled' })).weightCasts).toHaveLength(6);
    });
  }

  it('reduce-range (7-bit weights in int8) keeps the same kernels', async () => {
    const model = MODELS[1]!.load();
    const { branches } = quantizeFixed(model, { reduceRange: true });
    const path = join(dir, 'reduce-range.onnx');
    saveModel(model, path);
    const census = await optimizedCensus(path);
    expect(census.floatWeights).toEqual([]);
    expect(census.integerKernels).toBe(branches);
  });

  it('the census sees a float weight: the pre-change emission (MatMul → Add join) leaves a float Gemm', async () => {
    // Guards the census itself: a DQ → MatMul → Add, which MatMulAddFusion turns into a float Gemm.
    const model = MODELS[1]!.load();
    quantizeFixed(model, { dualScale: false });
    for (const n of model.graph.nodes().filter((x) => x.opType === 'Sum')) n.opType = 'Add';
    const path = join(dir, 'add-join.onnx');
    saveModel(model, path);
    const census = await optimizedCensus(path);
    expect(census.floatWeights.length).toBeGreaterThan(0);
  });
});
