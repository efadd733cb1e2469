// Graphs with If/Loop subgraphs holding linear layers (an optimum merged decoder's
// use_cache_branch) are refused with the node named, rather than half-quantized. The graph is
// synthetic, built by hand: a MatMul in the main graph, then an If whose branches each hold one.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { AttributeType } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { refuseSubgraphLayers } from '../../src/hf/subgraph-check.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { cli } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'qarvd-hf-if-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const floatType = (...dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });

/** main: h = /model/proj/MatMul(x, w_main); y = /model/If(cond) { then: h·w_then ; else: h·w_else }. */
function syntheticIfModel(): Model {
  const r = seededRandom(7);
  const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
  const g = m.graph;
  const x = new Value('x', { type: floatType(2, 32) });
  const cond = new Value('cond', { type: { tensor_type: { elem_type: DataType.BOOL, shape: { dim: [] } } } });
  g.addInput(x);
  g.addInput(cond);
  const weight = (name: string, k: number, n: number) => {
    const v = new Value(name, { initializer: Tensor.fromFloat32(name, [k, n], r.normalArray(k * n)) });
    g.addInitializer(v);
    return v;
  };
  const wMain = weight('w_main', 32, 32);
  const proj = new Node({ opType: 'MatMul', name: '/model/proj/MatMul', inputs: [x, wMain], outputs: ['h'] });
  g.append(proj);
  const branch = (name: string) => {
    const b = new Graph({ name, parent: g });
    const mm = new Node({ opType: 'MatMul', name: `/model/${name}/MatMul`, inputs: [proj.output(), weight(`w_${name}`, 32, 16)], outputs: [`y_${name}`] });
    b.append(mm);
    mm.output().type = floatType(2, 16);
    b.addOutput(mm.output());
    return b;
  };
  const thenG = branch('then');
  const elseG = branch('else');
  const owner = new Node({
    opType: 'If',
    name: '/model/If',
    inputs: [cond],
    outputs: ['y'],
    attributes: [
      { name: 'then_branch', type: AttributeType.GRAPH, value: thenG },
      { name: 'else_branch', type: AttributeType.GRAPH, value: elseG },
    ],
  });
  g.append(owner);
  thenG.ownerNode = owner;
  elseG.ownerNode = owner;
  owner.output().type = floatType(2, 16);
  g.addOutput(owner.output());
  return m;
}

describe('If/Loop subgraphs with linear layers (synthetic If graph)', () => {
  const input = join(tmp, 'if.onnx');
  saveModel(syntheticIfModel(), input);

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

  it('synthetic If graph: layers the selection leaves out (min-k) do not count', () => {
    expect(() => refuseSubgraphLayers(syntheticIfModel(), { minK: 16 })).toThrow(/node \/model\/If \(If\)/);
    expect(() => refuseSubgraphLayers(syntheticIfModel(), { minK: 64 })).not.toThrow();
  });
});
