// Layers as PyTorch's exporter writes them in forms the bundled models do not have (found by a
// trial of GPT-2-style exports): equal biases de-duplicated into one initializer read through
// `Identity` nodes (a freshly initialised model's zero biases) were skipped as "Gemm bias C is not
// a float32 constant" — most of such a model stayed float with exit 0; weights that are graph
// inputs without a value (export_params=False) or computed from constants (weight_norm without
// constant folding) were reported as attention products and the model written unchanged.
// Real torch 1.13 exports (test/fixtures/torch-exports/make.py).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../../src/graph/proto/codec.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { inlineSink } from '../../src/graph/serde/external-sink.ts';
import { modelToProto } from '../../src/graph/serde/to-proto.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { REPO_ROOT } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { quantize } from './quant-fixtures.ts';

const fixture = (name: string) => join(REPO_ROOT, 'test/fixtures/torch-exports', `${name}.onnx`);
const toBytes = (m: ReturnType<typeof loadModel>) => encodeModel(modelToProto(m, inlineSink) as Parameters<typeof encodeModel>[0]);

describe('torch exports', () => {
  for (const [name, dims] of [['equal-bias-gemm', [3, 32]], ['equal-bias-matmul', [3, 5, 32]]] as const) {
    it(`${name}: both layers quantized although one reads the shared zero bias through an Identity; the output runs close to fp32`, async () => {
      const model = loadModel(fixture(name));
      const identities = () => [...model.graph].filter((n) => n.opType === 'Identity').length;
      expect(identities()).toBe(1);
      const rng = seededRandom(4);
      const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal()), [...dims]) };
      const fp32 = (await runModel(fixture(name), feeds)).y!.data as Float32Array;
      for (const method of ['minmax', 'q-arvd'] as const) {
        const m = loadModel(fixture(name));
        const report = await quantize(m, { 'w-bits': '8', 'a-bits': 'none', 'integer-kernels': 'always' }, undefined, method);
        expect(report.layers.map((l) => ('reason' in l ? l.reason : l.mode))).toEqual(['single', 'single']);
        // The Identity went with the layer it fed.
        expect([...m.graph].filter((n) => n.opType === 'Identity')).toEqual([]);
        const got = (await runModel(toBytes(m), feeds)).y!.data as Float32Array;
        let err = 0;
        let ref = 0;
        for (let i = 0; i < got.length; i++) {
          err += (got[i]! - fp32[i]!) ** 2;
          ref += fp32[i]! ** 2;
        }
        expect(err / ref).toBeLessThan(1e-3);
      }
    });
  }

  it('weights without a value (export_params=False) and weights computed from constants (weight_norm, no constant folding) are refused by name, not passed as attention', async () => {
    await expect(quantize(loadModel(fixture('no-params')), { 'a-bits': 'none' }, undefined, 'minmax')).rejects.toThrow(/no layer to quantize: .*2 × weight a\.weight is a graph input with no value in the model \(an export with export_params=False\)/);
    await expect(quantize(loadModel(fixture('weight-norm-unfolded')), { 'a-bits': 'none' })).rejects.toThrow(/no layer to quantize: .*2 × weight \S+ is computed from constants by Mul \(an export without constant folding, e\.g\. weight_norm's g·v\/‖v‖\); re-export with do_constant_folding=True/);
  });
});
