// Synthetic models with linear layers inside If/Loop subgraphs, built by hand: no bundled real
// model has layers in subgraphs (an optimum merged decoder's use_cache_branch would, but is
// large). Used by test/safety/subgraph-layers.test.ts and test/hf/subgraph-check.test.ts.
import { AttributeType } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { seededRandom } from '../../src/kernels/random.ts';

const floatType = (...dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
const scalarType = (elem: number) => ({ tensor_type: { elem_type: elem, shape: { dim: [] } } });

/** A [k, n] float weight of seeded normal values. */
function weight(name: string, k: number, n: number, random: ReturnType<typeof seededRandom>): Value {
  return new Value(name, { initializer: Tensor.fromFloat32(name, [k, n], random.normalArray(k * n)) });
}

/** Where the If branches' MatMuls read their weight from. */
export type WeightHome = 'parent, shared by both branches' | 'parent, one per branch' | 'branch';

/**
 * main: h = /model/proj/MatMul(x[2,32], w_main[32,32]);
 * y = /model/If(cond) { then: /model/then/MatMul(h, W) ; else: /model/else/MatMul(h, W') },
 * the branch weights [32,16] where `home` says (default: one per branch, in the main graph).
 */
export function ifModel(home: WeightHome = 'parent, one per branch'): Model {
  const r = seededRandom(7);
  const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
  const g = m.graph;
  const x = new Value('x', { type: floatType(2, 32) });
  const cond = new Value('cond', { type: scalarType(DataType.BOOL) });
  g.addInput(x);
  g.addInput(cond);
  const wMain = weight('w_main', 32, 32, r);
  g.addInitializer(wMain);
  const proj = new Node({ opType: 'MatMul', name: '/model/proj/MatMul', inputs: [x, wMain], outputs: ['h'] });
  g.append(proj);
  const shared = home === 'parent, shared by both branches' ? weight('w_shared', 32, 16, r) : undefined;
  if (shared) g.addInitializer(shared);
  const branch = (name: string) => {
    const b = new Graph({ name, parent: g });
    let w = shared;
    if (!w) {
      w = weight(`w_${name}`, 32, 16, r);
      (home === 'branch' ? b : g).addInitializer(w);
    }
    const mm = new Node({ opType: 'MatMul', name: `/model/${name}/MatMul`, inputs: [proj.output(), w], outputs: [`y_${name}`] });
    b.append(mm);
    mm.output().type = floatType(2, 16);
    b.addOutput(mm.output());
    return b;
  };
  const [thenG, elseG] = [branch('then'), branch('else')];
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
  thenG.ownerNode = elseG.ownerNode = owner;
  owner.output().type = floatType(2, 16);
  g.addOutput(owner.output());
  return m;
}

/** h = /model/Loop(3 times) { h ← /body/MatMul(h, W) }, with W[32,32] in the main graph or in the body. */
export function loopModel(home: 'parent' | 'body'): Model {
  const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
  const g = m.graph;
  const h0 = new Value('h0', { type: floatType(2, 32) });
  g.addInput(h0);
  const trips = new Value('trips', { initializer: Tensor.fromBytes('trips', DataType.INT64, [], new Uint8Array(new BigInt64Array([3n]).buffer)) });
  const go = new Value('go', { initializer: Tensor.fromBytes('go', DataType.BOOL, [], new Uint8Array([1])) });
  g.addInitializer(trips);
  g.addInitializer(go);
  const body = new Graph({ name: 'body', parent: g });
  const i = new Value('i', { type: scalarType(DataType.INT64) });
  const c = new Value('c', { type: scalarType(DataType.BOOL) });
  const h = new Value('h', { type: floatType(2, 32) });
  for (const v of [i, c, h]) body.addInput(v);
  const w = weight('w_loop', 32, 32, seededRandom(17));
  (home === 'body' ? body : g).addInitializer(w);
  const keep = new Node({ opType: 'Identity', name: '/body/Identity', inputs: [c], outputs: ['c_out'] });
  const mm = new Node({ opType: 'MatMul', name: '/body/MatMul', inputs: [h, w], outputs: ['h_out'] });
  body.append(keep);
  body.append(mm);
  keep.output().type = scalarType(DataType.BOOL);
  mm.output().type = floatType(2, 32);
  body.addOutput(keep.output());
  body.addOutput(mm.output());
  const loop = new Node({ opType: 'Loop', name: '/model/Loop', inputs: [trips, go, h0], outputs: ['h_final'], attributes: [{ name: 'body', type: AttributeType.GRAPH, value: body }] });
  g.append(loop);
  body.ownerNode = loop;
  loop.output().type = floatType(2, 32);
  g.addOutput(loop.output());
  return m;
}
