// Every real fixture, quantized in both formats at W8A8, W4A8, W8 and W4 (weight-only): the
// model verifies, survives save → load, runs in onnxruntime-node, and every quantized layer's
// runtime output agrees with the TypeScript fake-quant reference (test/helpers/quant-reference.ts)
// within the float-rounding bound stated there. Activation ranges come from a test-only
// calibration module of seeded random inputs (quant-fixtures.ts); the evaluation inputs use
// another seed. The relative output error against fp32 is printed as a table.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { printModel } from '../../src/graph/printer.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { assertValid } from '../../src/graph/verify.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { checkAgainstReference, REFERENCE_SESSION_OPTIONS, readQuantizedLayers, relativeError, roundingBound, withFp32NBits } from '../helpers/quant-reference.ts';
import { BIT_WIDTHS, evalFeeds, FORMATS, loadFixture, QUANT_FIXTURES, quantFixture, quantize, testCalibration } from './quant-fixtures.ts';

interface Row {
  fixture: string;
  format: string;
  bits: string;
  layers: string;
  relErr: number;
  relErrDefault: number;
  worstUlp: number;
  worstBound: number;
  /** Largest max|Δ| / max|Y| over the layers (the brief's suggested form, for comparison). */
  worstRelMax: number;
}

const rows: Row[] = [];
let dir: string;

beforeAll(() => {
  dir = scratchDir('quant-numeric');
});

afterAll(() => {
  removeDir(dir);
  if (rows.length === 0) return;
  const lines = [
    'relative output error ‖y_q − y_fp32‖/‖y_fp32‖ on eval inputs (seed 2024): "ref" with the reference session options',
    '(MatMulNBits accuracy level 1 = fp32), "default" with onnxruntime\'s defaults; and the worst layer |Δ| vs the TS reference',
    'fixture        format     bits  layers(d/s)  rel.err(ref)  rel.err(default)  worst |Δ|/(u·Σ|x̂||ŵ|)  worst |Δ|/bound  worst max|Δ|/max|Y|',
    ...rows.map((r) =>
      `${r.fixture.padEnd(14)} ${r.format.padEnd(10)} ${r.bits.padEnd(5)} ${r.layers.padEnd(12)} ${r.relErr.toExponential(3).padEnd(13)} ${r.relErrDefault.toExponential(3).padEnd(17)} ${r.worstUlp.toFixed(2).padStart(21)}  ${r.worstBound.toFixed(4).padStart(15)}  ${r.worstRelMax.toExponential(2).padStart(19)}`,
    ),
  ];
  console.log(lines.join('\n'));
});

describe('quantized real fixtures agree with the TypeScript fake-quant reference', () => {
  for (const f of QUANT_FIXTURES) {
    describe(f.name, () => {
      const feeds = evalFeeds(f);
      let fp32: Record<string, ort.Tensor>;
      beforeAll(async () => {
        fp32 = await runModel(f.path, feeds);
      });

      // The paper's W4A6 too (a Clip before each activation Q) on the tiny ARVD.
      const widths = f.name === 'tiny-arvd' ? [...BIT_WIDTHS, { label: 'W4A6', options: { 'w-bits': '4', 'a-bits': '6' } } as const] : BIT_WIDTHS;
      for (const format of FORMATS) {
        for (const bits of widths) {
          it(`${format} ${bits.label}: verifies, round-trips, runs, matches the reference per layer`, async () => {
            const model = await loadFixture(f);
            const calib = bits.options['a-bits'] === 'none' ? undefined : testCalibration(f);
            const report = await quantize(model, { ...f.options, format, ...bits.options }, calib);
            const quantized = report.totals.layers.dual + report.totals.layers.single;
            expect(quantized).toBeGreaterThan(0);
            assertValid(model, `${f.name} ${format} ${bits.label}`);

            const path = join(dir, `${f.name}-${format}-${bits.label}.onnx`);
            saveModel(model, path);
            const loaded = loadModel(path);
            assertValid(loaded, 'reloaded');
            expect(printModel(loaded, { metadata: true })).toBe(printModel(model, { metadata: true }));

            // Every quantized layer is read back from the IR of the reloaded file.
            const layers = readQuantizedLayers(loaded);
            expect(layers.map((l) => l.name).sort()).toEqual(report.layers.filter((l) => l.mode !== 'skipped').map((l) => l.name).sort());
            // Layers the small-layer rule keeps fp32 (small-layers.ts) are one float MatMul on the
            // folded weight, their activations not quantized; the others one branch per quantizer.
            const integer = (name: string) => report.layers.find((e) => e.name === name)!.compute !== 'float';
            if (bits.label === 'W4A6') expect(layers.filter((l) => integer(l.name)).every((l) => l.branches.every((b) => b.act?.clip !== undefined))).toBe(true);
            for (const l of layers) {
              const entry = report.layers.find((e) => e.name === l.name)!;
              expect(l.branches.length, l.name).toBe(entry.mode === 'dual' && integer(l.name) ? 2 : 1);
              expect(l.branches.every((b) => (b.act !== undefined) === (bits.options['a-bits'] !== 'none' && integer(l.name))), l.name).toBe(true);
              expect(l.branches.every((b) => b.kind === (format === 'qoperator' && bits.options['a-bits'] !== 'none' && integer(l.name) ? 'int' : 'fq')), l.name).toBe(true);
            }

            const ref = await checkAgainstReference(loaded, feeds, layers);
            const bad = ref.layers.filter((c) => c.violations > 0);
            expect(bad.map((c) => `${c.name}: ${c.violations} over the bound, first ${c.firstViolation}`)).toEqual([]);

            // The saved file itself (no extra outputs) runs, under the reference's settings (fp32
            // compute in MatMulNBits: the session option, and level 1 in the qoperator nodes, saved
            // to a copy) and under onnxruntime's defaults (weight-only layers then run with int8
            // activations, see quant-reference.ts); the table shows both errors against fp32.
            const refPath = join(dir, `${f.name}-${format}-${bits.label}.reference.onnx`);
            withFp32NBits(loaded, () => saveModel(loaded, refPath));
            const outRef = await runWith(refPath, feeds, REFERENCE_SESSION_OPTIONS);
            const outDefault = await runModel(path, feeds);
            const names = Object.keys(fp32);
            for (const k of names) {
              expect(outDefault[k]!.dims).toEqual(fp32[k]!.dims);
              expect(relativeError(outRef[k]!.data as Float32Array, ref.outputs[k]!.data as Float32Array), k).toBeLessThan(1e-5);
            }
            const worst = (out: Record<string, ort.Tensor>) => Math.max(...names.map((k) => relativeError(out[k]!.data as Float32Array, fp32[k]!.data as Float32Array)));
            const relErr = worst(outRef);
            const relErrDefault = worst(outDefault);
            expect(Number.isFinite(relErr) && Number.isFinite(relErrDefault)).toBe(true);
            rows.push({
              fixture: f.name,
              format,
              bits: bits.label,
              layers: `${report.totals.layers.dual}/${report.totals.layers.single}`,
              relErr,
              relErrDefault,
              worstUlp: Math.max(...ref.layers.map((c) => c.worstUlpRatio)),
              worstBound: Math.max(...ref.layers.map((c) => c.worstBoundRatio)),
              worstRelMax: Math.max(...ref.layers.map((c) => c.maxAbsDiff / c.maxAbsY)),
            });
            rmSync(path);
          });
        }
      }
    });
  }
});

async function runWith(path: string, feeds: Record<string, ort.Tensor>, options: ort.InferenceSession.SessionOptions): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(path, options);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

describe('the reference check can fail', () => {
  it('flags a layer whose activation zero point is off by one (stories260K, qdq W8A8)', async () => {
    const f = quantFixture('stories260K');
    const model = await loadFixture(f);
    await quantize(model, { format: 'qdq', 'w-bits': '8', 'a-bits': '8' }, testCalibration(f));
    const layers = readQuantizedLayers(model);
    const target = layers.find((l) => l.name === '/blocks.2/w1/MatMul')!;
    // Tamper with the model: the DequantizeLinear's zero point of the activation goes up by 1.
    // The layer's MatMul is its final node, or under the Sum that adds bias correction's bias.
    const matmul = ['Add', 'Sum'].includes(target.final.opType) ? target.final.inputs.map((v) => v?.producer()).find((p) => p?.opType === 'MatMul')! : target.final;
    const dq = matmul.input(0)!.producer()!;
    expect(dq.opType).toBe('DequantizeLinear');
    // Q and DQ share their zero point initializer, so the DQ gets a tampered copy of its own.
    const zp = dq.input(2)!.initializer!;
    const bytes = zp.bytes().slice();
    bytes[0] = bytes[0]! + 1;
    dq.setInput(2, model.graph.createInitializer('tampered_zero_point', (name) => Tensor.fromBytes(name, zp.dataType, zp.dims, bytes)));
    // The reference still believes the QuantizeLinear's zero point; read it from before the tampering.
    const ref = await checkAgainstReference(model, evalFeeds(f), layers);
    // Only that layer is flagged: every other layer is checked against its own observed input.
    expect(ref.layers.filter((c) => c.violations > 0).map((c) => c.name)).toEqual([target.name]);
  });

  it('states the bound: (K + 4)·u·Σ|x̂||ŵ|', () => {
    expect(roundingBound(64, 1)).toBeCloseTo(68 * 2 ** -24, 20);
  });
});

describe('opset 9 (PP-OCR) and default-domain Q/DQ', () => {
  for (const [bits, needed, what] of [['8', 13, 'per-channel DequantizeLinear'], ['4', 21, 'DequantizeLinear of int4 weights']] as const) {
    it(`W${bits} qdq is refused with a message naming the op, and the model is left untouched`, async () => {
      const f = quantFixture('PP-OCRv4-rec');
      const model = await loadFixture(f);
      const before = printModel(model, { metadata: true });
      const err = await quantize(model, { format: 'qdq', 'w-bits': bits, 'a-bits': 'none' }).then(() => undefined, (e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      const m = new RegExp(`^${what} needs opset ${needed}, but the model imports opset 9 and (\\w+) \\(node ([^)]*)\\) changed meaning at opset [\\d, ]+; use --q-arvd.qdq-domain com.microsoft`).exec(err!.message);
      expect(m, err!.message).not.toBeNull();
      const [, op, nodeName] = m!;
      expect(model.graph.nodes().some((n) => n.opType === op && (n.name || '(unnamed)') === nodeName)).toBe(true);
      expect(printModel(model, { metadata: true })).toBe(before);
    });
  }

  it('W8 w8-kernel dynamic qdq is refused advising what works (format qoperator or w8-kernel nbits: qdq-domain cannot help)', async () => {
    const f = quantFixture('PP-OCRv4-rec');
    const model = await loadFixture(f);
    const before = printModel(model, { metadata: true });
    const err = await quantize(model, { format: 'qdq', 'w-bits': '8', 'a-bits': 'none', 'w8-kernel': 'dynamic', 'qdq-domain': 'com.microsoft' }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/^w8-kernel dynamic \(format qdq: DynamicQuantizeLinear\) needs opset 11, but the model imports opset 9 and \w+ \(node [^)]*\) changed meaning at opset [\d, ]+; use --q-arvd.format qoperator .* or --q-arvd.w8-kernel nbits$/);
    expect(printModel(model, { metadata: true })).toBe(before);
  });
});
