// Calibration's pure parts, without onnxruntime: the bounded statistics (reservoir, per-chunk
// ranges), the tail percentiles and the tiled product, and the α-weighted scale search checked
// against a brute-force evaluation with the reference kernels.
import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { fakeQuantMatmul, matmul } from '../../src/kernels/gemm.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { percentileSorted } from '../../src/kernels/statistics.ts';
import { RowReservoir } from '../../src/passes/calibration/reservoir.ts';
import { gemmNT, transpose } from '../../src/passes/calibration/row-gemm.ts';
import { fakeQuant, rowSample, searchLayer, tailPercentiles, weightParamsFromChoice } from '../../src/passes/calibration/search.ts';
import { alphaFromSensitivity, normalize } from '../../src/passes/calibration/sensitivity.ts';
import { TensorStats } from '../../src/passes/calibration/tensor-stats.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { planLayer } from '../../src/passes/quant/plan.ts';
import { weightMatrix } from '../../src/passes/quant/layer-weights.ts';

describe('bounded statistics', () => {
  it('keeps at most `capacity` rows, the same rows for the same seed and data', () => {
    const rows = (seed: number) => {
      const r = new RowReservoir(3, 8, seed);
      for (let b = 0; b < 50; b++) r.add(Float32Array.from({ length: 3 * 7 }, (_, i) => b * 7 + Math.floor(i / 3)));
      return r;
    };
    const a = rows(1);
    expect(a.seen).toBe(350);
    expect(a.kept).toBe(8);
    expect(a.rows().length).toBe(24);
    expect(Array.from(rows(1).rows())).toEqual(Array.from(a.rows()));
    expect(Array.from(rows(2).rows())).not.toEqual(Array.from(a.rows()));
    // Every kept row is a whole input row (its three values equal its index).
    const kept = a.rows();
    for (let i = 0; i < 8; i++) expect(kept[3 * i]).toBe(kept[3 * i + 2]);
  });

  it('samples rows uniformly (each of 100 rows kept about capacity/100 of the time)', () => {
    const counts = new Float64Array(100);
    for (let seed = 0; seed < 400; seed++) {
      const r = new RowReservoir(1, 10, seed);
      r.add(Float32Array.from({ length: 100 }, (_, i) => i));
      for (const v of r.rows()) counts[v]!++;
    }
    // Expected 40 per row; a binomial(400, 0.1) stays within ±25 with overwhelming probability.
    for (const c of counts) expect(Math.abs(c - 40)).toBeLessThan(25);
  });

  it('keeps ranges and reservoirs per chunk, and the union as the min/max ranges', () => {
    const s = new TensorStats(2, 4, 7);
    s.add(Float32Array.of(1, -1, 2, 0), 0);
    s.add(Float32Array.of(-5, 3), 2);
    expect(s.chunks()).toEqual([0, 2]);
    expect(Array.from(s.chunk(0)!.ranges.min)).toEqual([1, -1]);
    expect(Array.from(s.chunk(2)!.ranges.max)).toEqual([-5, 3]);
    const u = s.ranges();
    expect([Array.from(u.min), Array.from(u.max)]).toEqual([[-5, -1], [2, 3]]);
    expect(s.chunk(0)!.extremes.kept + s.chunk(0)!.reservoir.kept).toBe(2);
  });

  it('memory does not grow with the number of rows', () => {
    const r = new RowReservoir(64, 256, 3);
    const block = new Float32Array(64 * 1000);
    r.add(block);
    const len = r.rows().length;
    for (let i = 0; i < 20; i++) r.add(block);
    expect(r.rows().length).toBe(len);
    expect(len).toBe(64 * 256);
  });
});

describe('numeric helpers', () => {
  it('tail percentiles equal the full-sort percentiles (numpy linear)', () => {
    const r = seededRandom(3);
    for (let t = 0; t < 50; t++) {
      const n = 1 + r.int(3000);
      const v = Float32Array.from({ length: n }, () => (t % 3 === 0 ? r.int(4) : r.normal() ** 3));
      const sorted = Float32Array.from(v).sort();
      const ps = [0.999, 0.9999, 0.99999];
      expect(tailPercentiles(v, ps)).toEqual(ps.map((p) => percentileSorted(sorted, p)));
      expect(tailPercentiles(v, ps.map((p) => 1 - p))).toEqual(ps.map((p) => percentileSorted(sorted, 1 - p)));
    }
  });

  it('gemmNT(A, Bᵀ) equals the reference matmul for shapes with remainders', () => {
    const r = seededRandom(5);
    for (const [M, K, N] of [[1, 1, 1], [5, 3, 7], [8, 16, 4], [9, 33, 13]] as const) {
      const a = r.normalArray(M * K);
      const b = r.normalArray(K * N);
      const got = gemmNT(a, M, K, transpose(b, K, N), N);
      const want = matmul(a, b, M, K, N);
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
    }
  });

  it('α is the normalised curve rescaled to mean 1', () => {
    expect(normalize([2, 1, 1])).toEqual([0.5, 0.25, 0.25]);
    expect(alphaFromSensitivity([0.5, 0.25, 0.25])).toEqual([1.5, 0.75, 0.75]);
    expect(alphaFromSensitivity([0, 0])).toEqual([1, 1]);
  });
});

/** A one-MatMul model `y = x·W` with W `[K, N]`, and its layer. */
function oneLayer(w: Float32Array, K: number, N: number) {
  const g = new Graph({ name: 'one' });
  const model = new Model(g, { irVersion: 8, opset: 17 });
  const f32 = (dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const x = new Value('x', { type: f32([1, K]) });
  g.addInput(x);
  const wv = new Value('W', { initializer: Tensor.fromFloat32('W', [K, N], w) });
  g.addInitializer(wv);
  const mm = new Node({ opType: 'MatMul', name: 'mm', inputs: [x, wv], outputs: ['y'] });
  g.append(mm);
  g.addOutput(mm.outputs[0]!);
  const { layers } = findLinearLayers(g);
  return { model, layer: layers[0]! };
}

describe('the α-weighted scale search', () => {
  const K = 32;
  const N = 8;
  const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, wBits: 4, aBits: 8, dualScale: false };
  const r = seededRandom(11);
  const w = r.normalArray(K * N);
  const { layer } = oneLayer(w, K, N);
  // Chunk 0: N(0, 1) rows and one row with a large value in channel 3 (clipping it is
  // costly); chunk 1: plain N(0, 1) rows (a finer grid is what matters there).
  const stats = new TensorStats(K, 256, 1);
  for (let b = 0; b < 8; b++) {
    const rows0 = r.normalArray(32 * K);
    if (b === 0) rows0[5 * K + 3] = 40;
    stats.add(rows0, 0);
    stats.add(r.normalArray(32 * K), 1);
  }

  it('scores every candidate with Σ α_i ‖Q(x_i)·Q(W) − x_i·W‖² / Σ α_i, as the reference kernels compute it, and keeps the least', () => {
    const plan = planLayer(layer, config);
    const rows = rowSample(stats, [0, 1], [1, 1]);
    const res = searchLayer(plan, weightMatrix(layer), stats, rows, config, { search: true, weights: true });
    const br = res.branches[0]!;
    const ref = matmul(rows.x, w, rows.M, K, N);
    for (const c of br.actCandidates) {
      const y = fakeQuantMatmul(rows.x, w, rows.M, K, N, { scale: c.scale, zeroPoint: c.zeroPoint, type: 'uint8' }, { scales: br.weight!.scales, zeroPoints: br.weight!.zeroPoints, type: 'int4' });
      let num = 0;
      let den = 0;
      for (let i = 0; i < rows.M; i++) {
        let e = 0;
        for (let j = 0; j < N; j++) e += (y[i * N + j]! - ref[i * N + j]!) ** 2;
        num += rows.weight[i]! * e;
        den += rows.weight[i]!;
      }
      // The search's products are float32 sums (gemmF32): the same error up to about 1e-6 of it.
      expect(Math.abs(c.error - num / den) / (num / den)).toBeLessThan(1e-5);
    }
    const best = Math.min(...br.actCandidates.map((c) => c.error));
    expect(br.actCandidates.find((c) => c.candidate === br.actCandidate)!.error).toBe(best);
    expect(br.chunkMax[0]).toBe(40);
    // Weights: the chosen columns never do worse than min/max on the same objective.
    expect(br.weight!.error.chosen).toBeLessThanOrEqual(br.weight!.error.minmax);
    expect(br.weight!.choice).toHaveLength(N);
    // The choice string reproduces the scales (what a loaded calibration table does).
    const again = weightParamsFromChoice(weightMatrix(layer), K, N, 'int4', false, br.weight!.choice);
    expect(Array.from(again.scales)).toEqual(Array.from(br.weight!.scales));
    // Min/max is a candidate, so the chosen quantizer is never worse on the objective.
    expect(best).toBeLessThanOrEqual(br.actCandidates[0]!.error);
    expect(br.actCandidates[0]!.candidate).toBe('minmax');
    expect(res.outputError.before).toHaveLength(2);
  });

  it('follows α: weighting the outlier chunk keeps its outliers, weighting the plain chunk clips them', () => {
    const plan = planLayer(layer, config);
    const pick = (alpha: number[]) => searchLayer(plan, weightMatrix(layer), stats, rowSample(stats, [0, 1], alpha), config, { search: true, weights: false }).branches[0]!.actCandidate;
    expect(pick([1.98, 0.02])).toBe('minmax');
    expect(pick([0.02, 1.98])).not.toBe('minmax');
  });

  it('fake-quantizes as Clip → QuantizeLinear → DequantizeLinear (6-bit grid)', () => {
    const out = fakeQuant(Float32Array.of(-1, 0, 0.26, 10), { type: 'uint8', scale: 0.1, zeroPoint: 10, clip: [-1, 5.3], range: [-1, 5.3] });
    expect(Array.from(out)).toEqual([-1, 0, Math.fround(0.3), Math.fround(5.3)]);
  });
});
