// Golden tests of the emitted graphs, on small synthetic graphs (synthetic-graphs.ts; not real
// models): each case is quantized by q-arvd's layer rewrite (S2 on, W8A8, default options) in
// both formats, printed with its node metadata, report and small constants, and compared with
// test/quant/samples/<case>/<format>.txt. Activation ranges are fixed at [-3, 4] on every
// channel, so the goldens show the emission and do not move when calibration changes.
// Set UPDATE_GOLDEN=1 to rewrite the golden files (then read the diff before committing it).
// Each case also runs in onnxruntime-node against its fp32 graph and against the TS reference.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import type { Model } from '../../src/graph/ir/model.ts';
import { formatFloat, printModel } from '../../src/graph/printer.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { assertValid } from '../../src/graph/verify.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { checkAgainstReference, readQuantizedLayers, relativeError } from '../helpers/quant-reference.ts';
import { DEFAULT_QUANT_CONFIG } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { SYNTHETIC_CASES } from './synthetic-graphs.ts';

const SAMPLES = join(REPO_ROOT, 'test', 'quant', 'samples');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** q-arvd W8A8 with every layer input's range fixed at [-3, 4] per channel. */
function quantizeFixed(model: Model, format: 'qdq' | 'qoperator'): QuantReport {
  const ranges: ActivationRanges = new Map();
  for (const l of findLinearLayers(model.graph).layers) ranges.set(l.name, { min: new Float32Array(l.K).fill(-3), max: new Float32Array(l.K).fill(4) });
  // integer-kernels always: the goldens show the integer forms (these graphs' layers are small
  // enough for the small-layer rule to keep some in float; test/quant/small-layers.test.ts covers that).
  return quantizeLinearLayers(model, { ...DEFAULT_QUANT_CONFIG, format, integerKernels: 'always' }, {}, ranges, 'q-arvd');
}

/** The deterministic printout: the graph with metadata, the report's decisions, the small integer and scalar constants. */
function goldenText(description: string, format: string, model: Model, report: QuantReport): string {
  const lines = [`# ${description} (synthetic graph)`, `# q-arvd W8A8 ${format}`, printModel(model, { metadata: true }).trimEnd(), '# report'];
  for (const l of report.layers) lines.push(`${l.name}: ${l.mode}${l.mode === 'skipped' ? ` (${l.reason})` : `, K=${l.K} N=${l.N} outliers=${l.outliers}`}`);
  lines.push(`totals: ${JSON.stringify(report.totals.layers)}`);
  lines.push('# constants (int64 tensors and scalars)');
  for (const v of model.graph.initializers.values()) {
    const t = v.initializer!;
    if (t.dataType === DataType.INT64) lines.push(`@${v.name} = [${t.toNumbers().join(', ')}]`);
    else if (t.size === 1 && t.dataType === DataType.FLOAT) lines.push(`@${v.name} = ${formatFloat(t.toFloat32()[0]!)}`);
    else if (t.size === 1 && (t.dataType === DataType.UINT8 || t.dataType === DataType.INT8)) lines.push(`@${v.name} = ${t.toNumbers()[0]}`);
  }
  return lines.join('\n') + '\n';
}

describe('golden printouts of synthetic graphs (q-arvd W8A8)', () => {
  for (const c of SYNTHETIC_CASES) {
    for (const format of ['qdq', 'qoperator'] as const) {
      it(`${c.name} (${format}): matches samples/${c.name}/${format}.txt, verifies, and runs close to fp32`, async () => {
        const b = c.build();
        const fp32 = b.model;
        const dir = scratchDir(`golden-${c.name}`);
        try {
          const fp32Path = join(dir, 'fp32.onnx');
          saveModel(fp32, fp32Path);
          const model = loadModel(fp32Path);
          const report = quantizeFixed(model, format);
          assertValid(model, `${c.name} ${format}`);

          const text = goldenText(c.description, format, model, report);
          const file = join(SAMPLES, c.name, `${format}.txt`);
          if (UPDATE) {
            mkdirSync(join(SAMPLES, c.name), { recursive: true });
            writeFileSync(file, text);
          } else {
            expect(existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
            expect(text).toBe(readFileSync(file, 'utf8'));
          }

          const qPath = join(dir, 'q.onnx');
          saveModel(model, qPath);
          const feeds = b.feeds(seededRandom(77));
          const want = await runModel(fp32Path, feeds);
          const got = await runModel(qPath, feeds);
          for (const name of Object.keys(want)) {
            expect(got[name]!.dims).toEqual(want[name]!.dims);
            const err = relativeError(got[name]!.data as Float32Array, want[name]!.data as Float32Array);
            // W8A8 on one or two layers of unit-normal inputs: about 1 % (measured 0.2–1.2 %).
            expect(err, `${name}: relative error ${err}`).toBeLessThan(0.03);
          }
          const ref = await checkAgainstReference(model, feeds);
          expect(ref.layers.filter((l) => l.violations > 0).map((l) => `${l.name}: ${l.firstViolation}`)).toEqual([]);
          expect(ref.layers.length).toBe(report.totals.layers.dual + report.totals.layers.single);
        } finally {
          removeDir(dir);
        }
      });
    }
  }
});

describe('what the golden cases must show', () => {
  const run = async (name: string, format: 'qdq' | 'qoperator') => {
    const b = SYNTHETIC_CASES.find((c) => c.name === name)!.build();
    return { model: b.model, report: quantizeFixed(b.model, format) };
  };

  it('the planted outlier row makes matmul dual-scale, and row 7 is in the outlier branch', async () => {
    const { model, report } = await run('matmul', 'qdq');
    expect(report.layers[0]).toMatchObject({ name: 'fc/MatMul', mode: 'dual', outliers: 32 });
    const [outlier] = readQuantizedLayers(model)[0]!.branches;
    expect(Array.from(outlier!.indices!)).toContain(7);
  });

  it('every other case is single-scale (no planted outlier)', async () => {
    for (const c of SYNTHETIC_CASES.slice(1)) {
      const b = c.build();
      expect(quantizeFixed(b.model, 'qdq').totals.layers.dual, c.name).toBe(0);
    }
  });

  for (const format of ['qdq', 'qoperator'] as const) {
    it(`shared weight is quantized once (${format})`, async () => {
      const { model, report } = await run('shared-weight', format);
      expect(report.layers.map((l) => l.mode)).toEqual(['single', 'single']);
      const layers = readQuantizedLayers(model);
      expect(layers).toHaveLength(2);
      expect(layers[0]!.branches[0]!.weight.tensor).toBe(layers[1]!.branches[0]!.weight.tensor);
      const quantizedWeights = [...model.graph.initializers.values()].filter((v) => v.initializer!.dims.join('x') === '64x32');
      expect(quantizedWeights).toHaveLength(1);
      expect(model.graph.initializers.has('shared.weight')).toBe(false);
    });
  }

  it('the attention MatMul of two activations is skipped with its reason and left in float', async () => {
    const { model, report } = await run('attention-skipped', 'qdq');
    expect(report.layers.find((l) => l.name === 'attn/MatMul')).toMatchObject({ mode: 'skipped', reason: expect.stringMatching(/not constant/) });
    const left = model.graph.nodes().find((n) => n.name === 'attn/MatMul')!;
    expect(left.opType).toBe('MatMul');
    expect(left.metadata.size).toBe(0);
  });

  it('the fp16 model keeps fp32 inputs and outputs', async () => {
    const { model } = await run('fp16-cast', 'qdq');
    expect(model.graph.inputs.map((v) => v.elemType())).toEqual([DataType.FLOAT]);
    expect(model.graph.outputs.map((v) => v.elemType())).toEqual([DataType.FLOAT]);
    expect(model.graph.nodes().some((n) => n.opType === 'Cast')).toBe(false);
    expect(model.graph.initializers.has('fc.weight')).toBe(false);
  });
});
