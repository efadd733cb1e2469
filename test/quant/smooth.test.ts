// smooth-quant as a graph rewrite, on the real fixtures (MatMul layers: stories260K,
// tiny-arvd, PP-OCR; Gemm with transB: hello_deepa): per-channel ranges come from a real
// calibration pass in onnxruntime-node over seeded feeds; the smoothed float model must compute
// what the original computes up to float32 rounding, with one Mul per smoothed input and
// the old weights gone. Table checks: a table's smoothing must match the run's options.
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { attr } from '../../src/graph/ir/attribute.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { encodeModel } from '../../src/graph/proto/codec.ts';
import { inlineSink } from '../../src/graph/serde/external-sink.ts';
import { modelToProto } from '../../src/graph/serde/to-proto.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { DEFAULT_QUANT_CONFIG } from '../../src/passes/quant/config.ts';
import { weightMatrix, weightRowAbsMax } from '../../src/passes/quant/layer-weights.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { applySmoothing, smoothingFactors, smoothingOfTable } from '../../src/passes/quant/smooth.ts';
import { fixture } from '../helpers/fixtures.ts';
import { feedsFor, runModel } from '../helpers/ort.ts';
import { GraphBuilder } from './synthetic-graphs.ts';

const toBytes = (m: ReturnType<typeof loadModel>) => encodeModel(modelToProto(m, inlineSink) as Parameters<typeof encodeModel>[0]);

describe('smooth-quant rewrite', () => {
  for (const name of ['stories260K', 'tiny-arvd', 'PP-OCRv4-rec', 'hello_deepa']) {
    it(`${name}: the smoothed float model computes what the original does`, async () => {
      const f = fixture(name);
      const feeds = await feedsFor(f.path, f.feeds);
      const model = loadModel(f.path);
      const { layers } = findLinearLayers(model.graph);
      const calib = checkCalibrationModule({ samples: 1, *feeds() { yield { feeds }; } }, 'seeded feeds');
      const { ranges } = await calibrate(model, layers, calib, DEFAULT_QUANT_CONFIG, { scaleSearch: false, threads: 1 });
      const smoothing = smoothingFactors(layers, ranges, 0.5);
      const inputs = new Set(layers.map((l) => l.input));
      expect(smoothing.groups.length).toBe(inputs.size);
      const factors = smoothing.groups.flatMap((g) => g.factors);
      // Not all ones: the rewrite below has something to undo.
      expect(Math.max(...factors) / Math.min(...factors)).toBeGreaterThan(2);

      const initializersBefore = model.graph.initializers.size;
      const weightInitializers = new Set(layers.filter((l) => model.graph.initializers.get(l.weightValue.name) === l.weightValue).map((l) => l.weightValue)).size;
      const mulsBefore = model.graph.nodes().filter((n) => n.opType === 'Mul').length;
      const { folded, inserted } = applySmoothing(model, layers, smoothing, 'test');
      console.log(`${name}: ${smoothing.groups.length} inputs smoothed, 1/s folded into ${folded} producers, ${inserted} Mul inserted`);
      const after = findLinearLayers(model.graph).layers;
      expect(after.map((l) => l.name)).toEqual(layers.map((l) => l.name));
      for (const l of after) {
        // Every layer reads a smoothed value: from an inserted Mul, or from the producer that took 1/s.
        const p = l.input.producer()!;
        expect(p.metadata.get('qarvd.smoothing')).toBe(p.opType === 'Mul' && p.name.endsWith('/SmoothQuant') ? p.input(0)!.name : l.input.name);
      }
      expect(folded + inserted).toBe(smoothing.groups.length);
      expect(model.graph.nodes().filter((n) => n.opType === 'Mul').length - mulsBefore).toBe(inserted);
      // The old weights (initializers, or Constant nodes in PP-OCR) are gone: none is shared here.
      for (const l of layers) {
        expect(l.weightValue.useCount).toBe(0);
        if (model.graph.initializers.has(l.weightValue.name)) expect(model.graph.initializers.get(l.weightValue.name)).not.toBe(l.weightValue);
        expect(l.weightValue.producer()?.graph).toBeUndefined();
      }
      // A new weight per layer, and a 1/s vector per inserted Mul, replace the old weight initializers
      // (folded constants replace their originals, or add a copy when the original was a Constant node).
      const added = model.graph.initializers.size - (initializersBefore - weightInitializers + layers.length + inserted);
      expect(added).toBeGreaterThanOrEqual(0);
      expect(added).toBeLessThanOrEqual(2 * folded);

      const want = await runModel(f.path, feeds);
      const got = await runModel(toBytes(model), feeds);
      for (const [out, t] of Object.entries(want)) {
        const a = t.data as Float32Array;
        const b = got[out]!.data as Float32Array;
        let num = 0;
        let den = 0;
        for (let i = 0; i < a.length; i++) {
          num += (a[i]! - b[i]!) ** 2;
          den += a[i]! ** 2;
        }
        const rel = Math.sqrt(num / den);
        console.log(`${name} ${out}: smoothed float vs original, relative difference ${rel.toExponential(2)} (factors ${Math.min(...factors).toPrecision(3)}…${Math.max(...factors).toPrecision(3)})`);
        expect(rel).toBeLessThan(1e-5);
      }
    });
  }

  it('a layer list or table that does not fit the graph is refused, naming what differs', () => {
    const model = loadModel(fixture('stories260K').path);
    const { layers } = findLinearLayers(model.graph);
    const l = layers[0]!;
    const ok = { input: l.input.name, layers: [l.name], factors: Array.from({ length: l.K }, () => 2) };
    expect(() => applySmoothing(model, layers, { alpha: 0.5, groups: [{ ...ok, layers: ['nope'] }] }, 'table t.json')).toThrow(/table t\.json: smoothing names layer nope/);
    expect(() => applySmoothing(model, layers, { alpha: 0.5, groups: [{ ...ok, factors: [2] }] }, 'table t.json')).toThrow(new RegExp(`has 1 channels, layer ${l.name.replace(/[/.]/g, '\\$&')} has ${l.K}`));
    expect(() => applySmoothing(model, layers, { alpha: 0.5, groups: [{ ...ok, input: 'x' }] }, 'table t.json')).toThrow(/expects layer .* to read x/);
    const s = { smoothing: { alpha: 0.5, groups: [ok] } };
    expect(() => smoothingOfTable(s, { smoothQuant: false }, 't.json')).toThrow(/was made with smooth-quant \(α 0\.5\); give smooth-quant too/);
    expect(() => smoothingOfTable({}, { smoothQuant: true }, 't.json')).toThrow(/was made without smooth-quant/);
    expect(() => smoothingOfTable(s, { smoothQuant: true, smoothAlpha: 0.7 }, 't.json')).toThrow(/smooth-alpha 0\.5, this run has 0\.7/);
    expect(() => smoothingOfTable({ smoothing: { alpha: 0.5, groups: [{ ...ok, factors: [0] }] } }, { smoothQuant: true }, 't.json')).toThrow(/is malformed/);
    expect(smoothingOfTable(s, { smoothQuant: true }, 't.json')).toBe(s.smoothing);
    expect(() => smoothingFactors(layers, new Map(), 1)).toThrow(/smooth-alpha must be between 0 and 1/);
  });
});

// Synthetic Gemm graphs (no fixture has a Gemm whose alpha is not a power of two): the weight
// maximum the factors use, read in the stored layout, must be that of weightMatrix's matrix.
describe('weightRowAbsMax', () => {
  it("equals max_n |weightMatrix[k, n]| bit for bit, for MatMul and Gemm with transB and an alpha that rounds", () => {
    const K = 24;
    const N = 10;
    const w = seededRandom(7).normalArray(K * N);
    const cases = [
      { op: 'MatMul', dims: [K, N], attrs: [] },
      { op: 'Gemm', dims: [K, N], attrs: [attr.float('alpha', 0.3)] },
      { op: 'Gemm', dims: [N, K], attrs: [attr.int('transB', 1), attr.float('alpha', 1.7)] },
    ];
    for (const c of cases) {
      const b = new GraphBuilder(c.op);
      const x = b.input('x', [2, K]);
      b.output(b.node(c.op, 'fc', [x, b.init('fc.weight', c.dims, w)], c.attrs), [2, N]);
      const [layer] = findLinearLayers(b.graph).layers;
      const m = weightMatrix(layer!);
      const want = Array.from({ length: K }, (_, k) => Math.max(...Array.from(m.subarray(k * N, (k + 1) * N), Math.abs)));
      expect(Array.from(weightRowAbsMax(layer!))).toEqual(want);
    }
  });
});
