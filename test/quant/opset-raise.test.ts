// Raising a model's opset for the emitted forms (src/passes/quant/opset.ts), on small synthetic
// graphs (no bundled real model has these operators at these opsets):
// - a Split without its `split` input at opset 17 (equal parts) needs `num_outputs` from 18: the
//   raise to 21 (weight-only weights written blocked, 4-bit types) adapts it, and the output
//   loads and runs in onnxruntime (before, onnxruntime refused to load it);
// - GroupNormalization changed meaning at 21: W4A8 QDQ (int8 weights for the integer kernels)
//   keeps opset 18 and stores its weights as int8 instead of int4 behind a Cast; weight-only W4,
//   whose DequantizeLinear takes int4, is refused naming the operator and the pass's option.
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph, Model, Node, Value } from '../../src/graph/ir/index.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { relativeError } from '../helpers/quant-reference.ts';
import { createLogger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { quantize } from './quant-fixtures.ts';

const dir = scratchDir('opset-raise');
afterAll(() => removeDir(dir));

const D = 64;
const shape = (d: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: d.map((n) => ({ dim_value: n })) } } });

/** x → fc1 → (Split into halves → Mul, or GroupNormalization) → fc2 → y, at `opset`; `emptySplit`: the Split's `split` input given as ''. */
function build(middle: 'split' | 'group-norm', opset: number, emptySplit = false): Model {
  const rng = seededRandom(3);
  const g = new Graph({ name: middle });
  const x = new Value('x', { type: shape([1, 8, D]) });
  g.addInput(x);
  const init = (name: string, dims: number[]) => g.createInitializer(name, (n) => Tensor.fromFloat32(n, dims, rng.normalArray(dims.reduce((a, b) => a * b, 1))));
  const fc1 = new Node({ opType: 'MatMul', name: '/fc1/MatMul', inputs: [x, init('W1', [D, middle === 'split' ? 2 * D : D])], outputs: ['h1'] });
  const mid =
    middle === 'split'
      ? [new Node({ opType: 'Split', name: '/split', inputs: emptySplit ? [fc1.output(), null] : [fc1.output()], outputs: ['a', 'b'], attributes: [attr.int('axis', -1)] })]
      : [new Node({ opType: 'GroupNormalization', name: '/group_norm', inputs: [fc1.output(), init('scale', [2]), init('bias', [2])], outputs: ['h2'], attributes: [attr.int('num_groups', 2)] })];
  g.append(fc1, ...mid);
  let h = mid[0]!.output(0);
  if (middle === 'split') {
    const mul = new Node({ opType: 'Mul', name: '/mul', inputs: [mid[0]!.output(0), mid[0]!.output(1)], outputs: ['h2'] });
    g.append(mul);
    h = mul.output();
  }
  const fc2 = new Node({ opType: 'MatMul', name: '/fc2/MatMul', inputs: [h, init('W2', [D, D])], outputs: ['y'] });
  g.append(fc2);
  g.addOutput(fc2.output());
  return new Model(g, { opset });
}

const calibration: CalibrationModule = {
  samples: 4,
  async *feeds(ctx) {
    yield { feeds: { x: new ort.Tensor('float32', ctx.random.normalArray(8 * D), [1, 8, D]) } };
  },
};

async function closeToFp32(fp32: Model, quantized: Model, name: string, bound: number): Promise<void> {
  const [a, b] = [join(dir, `${name}-fp32.onnx`), join(dir, `${name}.onnx`)];
  saveModel(fp32, a);
  saveModel(quantized, b);
  const feeds = { x: new ort.Tensor('float32', seededRandom(9).normalArray(8 * D), [1, 8, D]) };
  const [want, got] = [await runModel(a, feeds), await runModel(b, feeds)];
  expect(relativeError(got.y!.data as Float32Array, want.y!.data as Float32Array)).toBeLessThan(bound);
}

describe('raising the opset for the emitted forms', () => {
  for (const emptySplit of [false, true]) {
    it(`a Split without its split input${emptySplit ? " (given as '')" : ''} gets num_outputs at 18: weight-only W8 (blocked weights, opset 21) loads and runs`, async () => {
      const model = build('split', 17, emptySplit);
      await quantize(model, { 'w-bits': '8', 'a-bits': 'none' }, undefined, 'minmax');
      expect(model.opset('')).toBe(21);
      const split = model.graph.nodes().find((n) => n.opType === 'Split')!;
      expect(split.intAttr('num_outputs', 0)).toBe(2);
      expect(split.inputs).toHaveLength(1);
      // Relative squared error of the output, two 8-bit layers.
      await closeToFp32(build('split', 17, emptySplit), model, `split-w8-${emptySplit}`, 0.01);
    });
  }

  it('GroupNormalization (changed at 21): W4A8 QDQ keeps opset 18 with int8-stored weights; weight-only W4 is refused naming it', async () => {
    const model = build('group-norm', 18);
    await quantize(model, { 'w-bits': '4', 'a-bits': '8' }, calibration, 'minmax');
    expect(model.opset('')).toBe(18);
    expect(model.graph.nodes().filter((n) => n.opType === 'Cast' && n.metadata.has('qarvd.layer'))).toEqual([]);
    expect(model.graph.nodes().filter((n) => n.opType === 'DequantizeLinear' && n.input(0)?.initializer?.dataType === DataType.INT8).length).toBeGreaterThan(0);
    // Two 4-bit layers of unit-normal weights with K = 64, 8-bit activations (measured 0.09).
    await closeToFp32(build('group-norm', 18), model, 'group-norm-w4a8', 0.2);
    // The run says that int4-storage was not used.
    const lines: string[] = [];
    const options = resolveOptions(minmax, { 'w-bits': '4', 'a-bits': '8' }) as unknown as SharedQuantValues;
    await runQuantPass(build('group-norm', 18), { log: createLogger({ write: (l) => lines.push(l) }), verbose: false, modelDir: undefined }, options, 'minmax', calibration);
    expect(lines.some((l) => /int4-storage: the model keeps opset 18, below the 21 int4 initializers need .* stored as int8/.test(l)), lines.join('\n')).toBe(true);
    // Weight-only with com.microsoft Q/DQ (no opset raise) says so too.
    lines.length = 0;
    const weightOnly = resolveOptions(minmax, { 'w-bits': '4', 'a-bits': 'none', 'qdq-domain': 'com.microsoft' }) as unknown as SharedQuantValues;
    await runQuantPass(build('group-norm', 18), { log: createLogger({ write: (l) => lines.push(l) }), verbose: false, modelDir: undefined }, weightOnly, 'minmax');
    expect(lines.some((l) => /int4-storage: the model keeps opset 18/.test(l)), lines.join('\n')).toBe(true);
    await expect(quantize(build('group-norm', 18), { 'w-bits': '4', 'a-bits': 'none' }, undefined, 'minmax')).rejects.toThrow(
      /DequantizeLinear of int4 weights needs opset 21, but the model imports opset 18 and GroupNormalization \(node \/group_norm\) changed meaning at opset 21; use --minmax\.qdq-domain com\.microsoft/,
    );
  });
});
