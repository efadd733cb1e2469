// Graphs with If/Loop subgraphs holding linear layers (an optimum merged decoder's
// use_cache_branch) are refused with the node named, rather than half-quantized. The graph is
// synthetic (test/helpers/subgraph-models.ts): a MatMul in the main graph, then an If whose
// branches each hold one.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { refuseSubgraphLayers } from '../../src/hf/subgraph-check.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { ifModel } from '../helpers/subgraph-models.ts';
import { tinyModel } from '../helpers/tiny-model.ts';
import { cli } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'qarvd-hf-if-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('If/Loop subgraphs with linear layers (synthetic If graph)', () => {
  const input = join(tmp, 'if.onnx');
  saveModel(ifModel(), input);

  it('synthetic If graph: convert refuses with the node named, and writes nothing', async () => {
    const out = join(tmp, 'if.q.onnx');
    const r = await cli(input, '-o', out, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^convert: error: pass q-arvd \(plugin q-arvd\): node \/model\/If \(If\): linear layers inside If\/Loop subgraphs are not quantized yet; its subgraphs hold 2 \(e\.g\. \/model\/then\/MatMul\)/);
    expect(r.err).toContain('--<pass>.exclude');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
  });

  it('synthetic If graph: with the branch layers excluded the main graph is quantized and still computes the same', async () => {
    const out = join(tmp, 'if.excluded.onnx');
    // integer-kernels always: the main graph's layer (K = 32) would otherwise be kept fp32 by the
    // small-layer rule, and this test reads its DequantizeLinear.
    const r = await cli(input, '-o', out, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.integer-kernels', 'always', '--q-arvd.exclude', '/model/then/*,/model/else/*', '--verify');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/W8 qdq: \d dual-scale, \d single-scale/);
    expect([...loadModel(out).graph].some((n) => n.opType === 'DequantizeLinear')).toBe(true);
    const x = new ort.Tensor('float32', seededRandom(1).normalArray(64), [2, 32]);
    const [a, b] = await Promise.all([input, out].map((f) => ort.InferenceSession.create(f)));
    for (const c of [true, false]) {
      const feeds = { x, cond: new ort.Tensor('bool', new Uint8Array([c ? 1 : 0]), []) };
      const ya = (await a!.run(feeds)).y!.data as Float32Array;
      const yb = (await b!.run(feeds)).y!.data as Float32Array;
      const err = Math.hypot(...ya.map((v, i) => v - yb[i]!)) / Math.hypot(...ya);
      expect(err).toBeLessThan(0.02);
    }
  });

  it('folder of several graphs: the refusal names the graph file, and does not send the user to split decoders transformers.js never loads', async () => {
    // Found by review: which of the folder's graphs held the If was not said, and the advice
    // named decoder_model.onnx and decoder_with_past_model.onnx (transformers.js v4 loads
    // decoder_model_merged.onnx for encoder-decoder models, session_config.js).
    const dir = join(tmp, 's2s');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    saveModel(tinyModel(), join(dir, 'onnx', 'encoder_model.onnx'));
    saveModel(ifModel(), join(dir, 'onnx', 'decoder_model_merged.onnx'));
    const r = await cli(dir, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`convert: error: ${join(dir, 'onnx', 'decoder_model_merged.onnx')}: pass q-arvd (plugin q-arvd): node /model/If (If): linear layers inside If/Loop subgraphs`);
    expect(r.err).toContain('encoder-decoder models load decoder_model_merged.onnx only, never decoder_model.onnx or decoder_with_past_model.onnx');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(dir, 'onnx', 'decoder_model_merged_q4.onnx'))).toBe(false);
  });

  it('synthetic If graph: layers the selection leaves out (min-k) do not count', () => {
    expect(() => refuseSubgraphLayers(ifModel(), { minK: 16 })).toThrow(/node \/model\/If \(If\)/);
    expect(() => refuseSubgraphLayers(ifModel(), { minK: 64 })).not.toThrow();
  });
});
