// S2 (dual-scale) evidence: on layers with outlier input channels the split's weight error is
// below the single-scale error; planted outliers in a synthetic weight are found; layers
// without outliers are emitted exactly as minmax emits them; dual-scale false splits nothing.
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { printGraph } from '../../src/graph/printer.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { channelNorms } from '../../src/kernels/statistics.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { checkAgainstReference, readQuantizedLayers } from '../helpers/quant-reference.ts';
import { evalFeeds, loadFixture, QUANT_FIXTURES, quantFixture, quantize, testCalibration } from './quant-fixtures.ts';
import { GraphBuilder, weightWithOutliers } from './synthetic-graphs.ts';

const table: string[] = [];

/**
 * The split's branch structure is what these tests read: the small-layer rule would keep these
 * small layers in float compute (one MatMul, no branches; test/quant/small-layers.test.ts).
 */
const INTEGER = { 'integer-kernels': 'always' } as const;

afterAll(() => {
  if (table.length) console.log(['weight error ‖Ŵ − W‖_F/‖W‖_F of the dual-scale layers: single-scale → dual-scale', ...table].join('\n'));
});

/** Layers the fixtures are known to split (S2 finds outliers there at the default τ, γ, align). */
const EXPECTED_DUAL: Record<string, (name: string) => boolean> = {
  stories260K: (n) => n === '/MatMul',
  'tiny-arvd': (n) => /\/ffn\/ffn\.2\/MatMul$/.test(n),
  'PP-OCRv4-rec': () => false,
  hello_deepa: () => false,
};

describe('dual-scale weight error is below single-scale on every layer with outliers (real fixtures)', () => {
  for (const f of QUANT_FIXTURES) {
    for (const wBits of ['8', '4'] as const) {
      it(`${f.name} W${wBits}`, async () => {
        const model = await loadFixture(f);
        const report = await quantize(model, { ...f.options, 'w-bits': wBits, 'a-bits': 'none' });
        const dual = report.layers.filter((l) => l.mode === 'dual');
        expect(dual.length).toBeGreaterThan(0);
        const candidates = report.layers.filter((l) => l.mode !== 'skipped');
        const expected = candidates.filter((l) => EXPECTED_DUAL[f.name]!(l.name));
        if (f.name === 'stories260K' || f.name === 'tiny-arvd') expect(expected.length).toBeGreaterThan(0);
        for (const l of expected) expect(l.mode, l.name).toBe('dual');
        for (const l of dual) {
          const { single, dual: d } = l.weightError!;
          expect(d, l.name).toBeDefined();
          expect(d!, `${l.name}: dual ${d} vs single ${single}`).toBeLessThan(single);
          expect(l.outliers).toBeGreaterThan(0);
        }
        // A single-scale layer has no split to report.
        for (const l of candidates.filter((x) => x.mode === 'single')) expect(l.weightError!.dual, l.name).toBeUndefined();
        const gains = dual.map((l) => l.weightError!.single / l.weightError!.dual!);
        table.push(
          `${f.name.padEnd(13)} W${wBits}: ${String(dual.length).padStart(2)} of ${candidates.length} layers dual; single/dual error ratio ${Math.min(...gains).toFixed(3)}–${Math.max(...gains).toFixed(3)}` +
            dual.filter((l) => expected.includes(l)).slice(0, 3).map((l) => `; ${l.name} ${l.weightError!.single.toExponential(3)} → ${l.weightError!.dual!.toExponential(3)}`).join(''),
        );
      });
    }
  }
});

describe('synthetic [128, 64] weight with planted outlier rows', () => {
  const K = 128;
  const N = 64;
  const planted = [5, 41, 77, 120];

  function build(): GraphBuilder {
    const b = new GraphBuilder('planted');
    const x = b.input('x', [4, K]);
    b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [K, N], weightWithOutliers(11, K, N, planted, 8))]), [4, N]);
    return b;
  }

  for (const wBits of ['8', '4'] as const) {
    it(`W${wBits}: detected rows are the planted ones plus alignment padding, and dual error < single error`, async () => {
      const b = build();
      const w = b.graph.initializers.get('fc.weight')!.initializer!.toFloat32().slice();
      const report = await quantize(b.model, { 'w-bits': wBits, 'a-bits': '8', ...INTEGER }, b.calibration());
      const entry = report.layers[0]!;
      expect(entry).toMatchObject({ name: 'fc/MatMul', mode: 'dual', outliers: 32 });
      expect(entry.weightError!.dual!).toBeLessThan(entry.weightError!.single);

      const [outlier, normal] = readQuantizedLayers(b.model)[0]!.branches;
      const detected = Array.from(outlier!.indices!);
      // Every planted row is detected; the padding to align = 32 is the next-largest rows by norm.
      for (const k of planted) expect(detected).toContain(k);
      const norms = channelNorms(w, K, N);
      const byNorm = Array.from({ length: K }, (_, k) => k).sort((a, c) => norms[c]! - norms[a]! || a - c);
      expect(new Set(detected)).toEqual(new Set(byNorm.slice(0, 32)));
      expect(byNorm.slice(0, planted.length).sort((a, c) => a - c)).toEqual(planted);
      // 32 of 128 channels: the normal branch reads all of X (emit.ts readsAllRows), else exactly the other channels.
      if (normal!.indices) expect([...detected, ...Array.from(normal!.indices)].sort((a, c) => a - c)).toEqual(Array.from({ length: K }, (_, k) => k));
      else expect(normal!.weight.K).toBe(K);
      table.push(`synthetic     W${wBits}: planted ${planted.join(',')} + ${32 - planted.length} padding rows; ${entry.weightError!.single.toExponential(3)} → ${entry.weightError!.dual!.toExponential(3)}`);

      // And the split graph computes what the reference says (eval seed 99; calibration uses 0x5eed + i).
      const ref = await checkAgainstReference(b.model, b.feeds(seededRandom(99)));
      expect(ref.layers[0]!.violations).toBe(0);
    });
  }

  it('with few outliers (32 of 1024 channels) the normal branch reads all of X: its outlier rows hold the zero point, and the layer computes what the reference says', async () => {
    const wideK = 1024;
    const b = new GraphBuilder('planted_wide');
    const x = b.input('x', [4, wideK]);
    b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [wideK, N], weightWithOutliers(12, wideK, N, planted, 8))]), [4, N]);
    const report = await quantize(b.model, { 'w-bits': '8', 'a-bits': '8' }, b.calibration());
    expect(report.layers[0]).toMatchObject({ mode: 'dual', outliers: 32 });
    const [outlier, normal] = readQuantizedLayers(b.model)[0]!.branches;
    const detected = Array.from(outlier!.indices!);
    for (const k of planted) expect(detected).toContain(k);
    expect(normal!.indices).toBeUndefined();
    expect(normal!.weight.K).toBe(wideK);
    const heldAtZero = (k: number) => Array.from({ length: N }, (_, n) => normal!.weight.values[k * N + n] === normal!.weight.zeroPoints[n]).every(Boolean);
    expect(detected.filter((k) => !heldAtZero(k))).toEqual([]);
    // One Gather (the outlier branch's), not two.
    expect(b.graph.nodes().filter((n) => n.opType === 'Gather').length).toBe(1);
    const ref = await checkAgainstReference(b.model, b.feeds(seededRandom(99)));
    expect(ref.layers[0]!.violations).toBe(0);
  });

  // w8-kernel dynamic: the activation quantizer is derived per call from what each branch
  // reads (the outlier branch its gathered channels, the normal branch all of X here).
  for (const format of ['qdq', 'qoperator'] as const) {
    it(`w8-kernel dynamic, ${format}: the split layer (normal branch reading all of X) computes what the reference says`, async () => {
      const wideK = 1024;
      const b = new GraphBuilder('planted_wide_dynamic');
      const x = b.input('x', [4, wideK]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [wideK, N], weightWithOutliers(12, wideK, N, planted, 8))]), [4, N]);
      const report = await quantize(b.model, { 'w-bits': '8', 'a-bits': 'none', 'w8-kernel': 'dynamic', format, ...INTEGER });
      expect(report.layers[0]).toMatchObject({ mode: 'dual', outliers: 32 });
      const layer = readQuantizedLayers(b.model)[0]!;
      expect(layer.branches.map((br) => `${br.kind} ${br.indices ? br.indices.length : 'all'}`)).toEqual(['dyn 32', 'dyn all']);
      const ref = await checkAgainstReference(b.model, b.feeds(seededRandom(99)));
      expect(ref.layers[0]!.violations, ref.layers[0]!.firstViolation).toBe(0);
    });
  }

  it('w8-kernel dynamic, qoperator: the reference check flags a weight scale off by 0.1%', async () => {
    const wideK = 1024;
    const b = new GraphBuilder('planted_wide_dynamic_tampered');
    const x = b.input('x', [4, wideK]);
    b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [wideK, N], weightWithOutliers(12, wideK, N, planted, 8))]), [4, N]);
    await quantize(b.model, { 'w-bits': '8', 'a-bits': 'none', 'w8-kernel': 'dynamic', format: 'qoperator', ...INTEGER });
    // Read before the tampering: the reference keeps believing the emitted scales.
    const layers = readQuantizedLayers(b.model);
    const op = b.model.graph.nodes().find((n) => n.opType === 'DynamicQuantizeMatMul' && !n.name.includes('outlier'))!;
    const scale = op.input(2)!.initializer!;
    const scaled = Float32Array.from(scale.toFloat32(), (v) => v * 1.001);
    op.setInput(2, b.model.graph.createInitializer('tampered_scale', (name) => Tensor.fromFloat32(name, scale.dims, scaled)));
    const ref = await checkAgainstReference(b.model, b.feeds(seededRandom(99)), layers);
    expect(ref.layers[0]!.violations).toBeGreaterThan(0);
  });

  it('contiguous outlier channels (32 consecutive of 1024) are read by a Slice, not a Gather, and the layer computes what the reference says', async () => {
    const wideK = 1024;
    const consecutive = Array.from({ length: 32 }, (_, i) => 400 + i);
    for (const format of ['qdq', 'qoperator'] as const) {
      const b = new GraphBuilder('planted_consecutive');
      const x = b.input('x', [4, wideK]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [wideK, N], weightWithOutliers(13, wideK, N, consecutive, 8))]), [4, N]);
      const m = b.model;
      const report = await quantize(m, { 'w-bits': '8', 'a-bits': '8', format }, b.calibration());
      expect(report.layers[0]).toMatchObject({ mode: 'dual', outliers: 32 });
      expect(Array.from(readQuantizedLayers(m)[0]!.branches[0]!.indices!)).toEqual(consecutive);
      const reads = m.graph.nodes().filter((n) => n.metadata.has('qarvd.layer') && (n.opType === 'Gather' || n.opType === 'Slice'));
      expect(reads.map((n) => n.opType)).toEqual(['Slice']);
      const ref = await checkAgainstReference(m, b.feeds(seededRandom(99)));
      expect(ref.layers[0]!.violations).toBe(0);
    }
  });

  // The Slice's form per opset (emit.ts readChannels): negative axes only from Slice-11; Slice-10
  // takes inputs, Slice-1 (opsets 1–9) attributes; without X's rank below 11, a Gather. Synthetic
  // graphs: no real model here is at opset 10, and the opset-9 one (PP-OCR, run in every form by
  // fixtures-numeric.test.ts) has neither contiguous outlier channels nor typed MatMul inputs.
  // format qoperator keeps the model's opset (com.microsoft ops); X is [2, 4, 256], so a Slice
  // on any axis but the last would fail to run or to match the reference.
  for (const { opset, typed, read } of [
    { opset: 9, typed: true, read: 'Slice starts=[100] ends=[132] axes=[2]' },
    { opset: 9, typed: false, read: 'Gather axis=-1' },
    { opset: 10, typed: true, read: 'Slice(100, 132, axes 2)' },
    { opset: 10, typed: false, read: 'Gather axis=-1' },
    { opset: 11, typed: false, read: 'Slice(100, 132, axes -1)' },
    { opset: 17, typed: true, read: 'Slice(100, 132, axes -1)' },
  ]) {
    it(`opset ${opset}, X's rank ${typed ? 'declared' : 'unknown'}: contiguous outlier channels are read by ${read}, and onnxruntime computes what the reference says`, async () => {
      const wideK = 256;
      const consecutive = Array.from({ length: 32 }, (_, i) => 100 + i);
      const b = new GraphBuilder(`consecutive_opset${opset}`, opset);
      const input = b.input('x', [2, 4, wideK]);
      // An untyped X: the output of a node the model declares no value_info for.
      const x = typed ? input : b.node('Relu', 'relu', [input]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [wideK, N], weightWithOutliers(13, wideK, N, consecutive, 8))]), [2, 4, N]);
      const report = await quantize(b.model, { 'w-bits': '8', 'a-bits': '8', format: 'qoperator', ...INTEGER }, b.calibration());
      expect(report.layers[0]).toMatchObject({ mode: 'dual', outliers: 32 });
      expect(b.model.opset('')).toBe(opset);
      const [reader] = b.graph.nodes().filter((n) => n.metadata.has('qarvd.layer') && (n.opType === 'Gather' || n.opType === 'Slice'));
      const consts = reader!.inputs.slice(1).map((v) => v!.constTensor()!.toNumbers().join(','));
      const printed =
        reader!.opType === 'Gather' ? `Gather axis=${reader!.intAttr('axis', 0)}`
        : reader!.inputs.length === 1 ? `Slice ${['starts', 'ends', 'axes'].map((a) => `${a}=[${reader!.intsAttr(a)}]`).join(' ')}`
        : `Slice(${consts[0]}, ${consts[1]}, axes ${consts[2]})`;
      expect(printed).toBe(read);
      expect(Array.from(readQuantizedLayers(b.model)[0]!.branches[0]!.indices!)).toEqual(consecutive);
      const ref = await checkAgainstReference(b.model, b.feeds(seededRandom(99)));
      expect(ref.layers[0]!.violations).toBe(0);
    });
  }

  it('with align 1 exactly the planted rows are detected', async () => {
    const b = build();
    const report = await quantize(b.model, { 'w-bits': '8', 'a-bits': 'none', align: 1, ...INTEGER });
    expect(report.layers[0]).toMatchObject({ mode: 'dual', outliers: planted.length });
    expect(Array.from(readQuantizedLayers(b.model)[0]!.branches[0]!.indices!)).toEqual(planted);
  });

  it('without planted rows the same layer is single-scale', async () => {
    const b = new GraphBuilder('flat');
    const x = b.input('x', [4, K]);
    b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [K, N], weightWithOutliers(11, K, N))]), [4, N]);
    const report = await quantize(b.model, { 'w-bits': '8', 'a-bits': 'none' });
    expect(report.layers[0]).toMatchObject({ mode: 'single', outliers: 0 });
  });
});

/** The nodes of one layer (metadata qarvd.layer) as printed lines, and the bytes of the initializers they read. */
function layerPrintout(model: Model, name: string): { lines: string[]; initializers: Map<string, string> } {
  const tag = `qarvd.layer=${name}`;
  const lines = printGraph(model.graph, { metadata: true })
    .split('\n')
    .filter((l) => l.endsWith(tag) || l.includes(`${tag} `))
    // The decision names the method; everything else must be identical.
    .map((l) => l.replace(/\\"method\\":\\"(q-arvd|minmax)\\"/, '\\"method\\":\\"…\\"'));
  const initializers = new Map<string, string>();
  for (const n of model.graph.nodes()) {
    if (n.metadata.get('qarvd.layer') !== name) continue;
    for (const v of n.inputs) {
      if (v?.initializer) initializers.set(v.name, createHash('sha256').update(v.initializer.bytes()).digest('hex'));
    }
  }
  return { lines, initializers };
}

// q-arvd's calibration (the calibration issue) searches activation and weight scales by the
// layer output error unless `scale-search` is false, and reconstructs the weights and corrects
// the biases from calibration statistics unless `reconstruct none` and `bias-correction false`;
// minmax keeps plain min/max. So S2 alone is compared: weight-only with the defaults (no
// calibration data, so round to nearest), and with activations with the search and the
// reconstruction off. fold-split is off too: it permutes the split layers' producers (their
// weight bytes in another column order) and so moves every later layer's input by float rounding
// (test/quant/fold-split.test.ts covers it).
const SAME_AS_MINMAX = [
  { label: 'W8 weight-only (defaults)', options: { 'w-bits': '8', 'a-bits': 'none', 'fold-split': false } },
  // scope all: q-arvd's default gives the layers around the blocks 8-bit weights (outer-w8), minmax's does not.
  { label: 'W4 weight-only (defaults)', options: { 'w-bits': '4', 'a-bits': 'none', 'fold-split': false, scope: 'all' } },
  // outer-activations quantized: q-arvd's default keeps the inputs of the layers around the blocks float, minmax's does not.
  { label: 'W8A8, scale-search false', options: { 'w-bits': '8', 'a-bits': '8', 'scale-search': false, reconstruct: 'none', 'bias-correction': false, 'fold-split': false, 'outer-activations': 'quantized' } },
] as const;

describe('layers without outliers: q-arvd emits exactly what minmax emits', () => {
  for (const name of ['stories260K', 'tiny-arvd'] as const) {
    for (const format of ['qdq', 'qoperator'] as const) {
      for (const bits of SAME_AS_MINMAX) {
        it(`${name} ${bits.label} ${format}: identical nodes and initializer bytes on every single-scale layer`, async () => {
          const f = quantFixture(name);
          const qModel = await loadFixture(f);
          const mModel = await loadFixture(f);
          const calib = bits.options['a-bits'] === 'none' ? undefined : testCalibration(f);
          const q = await quantize(qModel, { ...f.options, format, ...bits.options }, calib);
          const { 'scale-search': _s, reconstruct: _r, 'fold-split': _f, 'outer-activations': _o, ...minmaxOptions } = { ...f.options, format, ...bits.options } as Record<string, unknown>;
          const m = await quantize(mModel, minmaxOptions, calib, 'minmax');
          expect(m.method).toBe('minmax');
          expect(m.totals.layers.dual).toBe(0);
          const single = q.layers.filter((l) => l.mode === 'single');
          expect(single.length).toBeGreaterThan(0);
          expect(q.totals.layers.dual).toBeGreaterThan(0);
          for (const l of single) {
            const a = layerPrintout(qModel, l.name);
            const b = layerPrintout(mModel, l.name);
            expect(a.lines.length, l.name).toBeGreaterThan(0);
            expect(a.lines, l.name).toEqual(b.lines);
            expect(a.initializers, l.name).toEqual(b.initializers);
            expect(a.initializers.size, l.name).toBeGreaterThanOrEqual(3);
          }
          // And the dual layers differ (so the comparison above could fail).
          const d = q.layers.find((l) => l.mode === 'dual')!;
          expect(layerPrintout(qModel, d.name).lines).not.toEqual(layerPrintout(mModel, d.name).lines);
        });
      }
    }
  }

  it('q-arvd with dual-scale false (and scale-search false) prints the same graph as minmax, up to the method name', async () => {
    const f = quantFixture('stories260K');
    const qModel = await loadFixture(f);
    const mModel = await loadFixture(f);
    await quantize(qModel, { 'w-bits': '4', 'a-bits': '8', 'dual-scale': false, 'scale-search': false, reconstruct: 'none', 'bias-correction': false, scope: 'all' }, testCalibration(f));
    await quantize(mModel, { 'w-bits': '4', 'a-bits': '8' }, testCalibration(f), 'minmax');
    const norm = (m: Model) => printGraph(m.graph, { metadata: true }).replace(/\\"method\\":\\"(q-arvd|minmax)\\"/g, '');
    expect(norm(qModel)).toBe(norm(mModel));
    expect(norm(qModel)).toContain('qarvd.decision');
  });
});

describe('dual-scale false', () => {
  for (const f of QUANT_FIXTURES) {
    it(`${f.name}: no Gather is emitted, every layer is single-scale, the report still shows what S2 would gain`, async () => {
      const on = await loadFixture(f);
      const off = await loadFixture(f);
      const gathersBefore = off.graph.nodes().filter((n) => n.opType === 'Gather').length;
      // fold-split off: this compares S2's split with no split, channel for channel (the fold would
      // read folded layers with a Slice and sum their error terms in another order).
      const rOn: QuantReport = await quantize(on, { ...f.options, 'w-bits': '8', 'a-bits': 'none', 'fold-split': false, ...INTEGER });
      const rOff: QuantReport = await quantize(off, { ...f.options, 'w-bits': '8', 'a-bits': 'none', 'dual-scale': false, ...INTEGER });
      const emitted = (m: Model) => m.graph.nodes().filter((n) => n.opType === 'Gather' && n.metadata.has('qarvd.layer'));
      // Every split gathers its outlier channels; its normal branch gathers too unless it reads all of X (few outliers).
      expect(emitted(on).filter((n) => n.name.includes('/outlier/')).length).toBe(rOn.totals.layers.dual);
      expect(emitted(on).length).toBeLessThanOrEqual(2 * rOn.totals.layers.dual);
      expect(emitted(off)).toEqual([]);
      expect(off.graph.nodes().filter((n) => n.opType === 'Gather').length).toBe(gathersBefore);
      expect(rOff.totals.layers.dual).toBe(0);
      expect(rOff.totals.layers.single).toBe(rOn.totals.layers.single + rOn.totals.layers.dual);
      for (const l of rOn.layers.filter((x) => x.mode === 'dual')) {
        const o = rOff.layers.find((x) => x.name === l.name)!;
        expect(o.mode).toBe('single');
        expect(o.weightError).toEqual(l.weightError);
      }
      expect(readQuantizedLayers(off).every((l) => l.branches.length === 1 && !l.branches[0]!.indices)).toBe(true);
    });
  }
});

describe('w8-kernel dynamic on tiny-arvd: every layer computes what the reference says', () => {
  // A real model: biases inside the kernel, layers sharing an input (q, k, v: one merged
  // DynamicQuantizeLinear in the qdq form after onnxruntime's optimizations), split layers whose
  // normal branch gathers (K = 64, 32 outliers) and ones reading all of X (K = 256).
  for (const format of ['qdq', 'qoperator'] as const) {
    it(format, async () => {
      const f = quantFixture('tiny-arvd');
      const model = await loadFixture(f);
      await quantize(model, { ...f.options, 'w-bits': '8', 'a-bits': 'none', 'w8-kernel': 'dynamic', format, ...INTEGER });
      const layers = readQuantizedLayers(model);
      expect(layers.every((l) => l.branches.every((br) => br.kind === 'dyn'))).toBe(true);
      expect(layers.some((l) => l.branches.length === 2 && l.branches.every((br) => br.indices))).toBe(true);
      expect(layers.some((l) => l.branches.length === 2 && l.branches.some((br) => !br.indices))).toBe(true);
      const ref = await checkAgainstReference(model, evalFeeds(f), layers);
      for (const l of ref.layers) expect(l.violations, `${l.name}: ${l.firstViolation}`).toBe(0);
    });
  }
});

describe('w4a8-kernel nbits on tiny-arvd: MatMulNBits behind the static Q → DQ computes what the reference says', () => {
  // The reference check runs MatMulNBits at accuracy level 1 (fp32 compute), so this checks the
  // model's own arithmetic: the fake-quantized activation times the int4 weight.
  it('qoperator W4A8', async () => {
    const f = quantFixture('tiny-arvd');
    const model = await loadFixture(f);
    // scope all: every layer 4-bit (outer-w8's 8-bit layers would run MatMulIntegerToFloat).
    const report = await quantize(model, { ...f.options, 'w-bits': '4', 'a-bits': '8', 'w4a8-kernel': 'nbits', format: 'qoperator', scope: 'all', ...INTEGER }, testCalibration(f));
    expect(report.layers.some((l) => l.mode === 'dual')).toBe(true);
    const ops = new Set(model.graph.nodes().filter((n) => n.metadata.has('qarvd.layer')).map((n) => n.opType));
    expect([...ops].sort()).toEqual(expect.arrayContaining(['DequantizeLinear', 'MatMulNBits', 'QuantizeLinear']));
    expect(ops.has('MatMulIntegerToFloat')).toBe(false);
    const layers = readQuantizedLayers(model);
    expect(layers.every((l) => l.branches.every((br) => br.act && br.weight.type === 'uint4'))).toBe(true);
    const ref = await checkAgainstReference(model, evalFeeds(f), layers);
    for (const l of ref.layers) expect(l.violations, `${l.name}: ${l.firstViolation}`).toBe(0);
  });
});
