import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { attr, AttributeType, DataType, Graph, Model, Node, Tensor, Value } from '../../src/graph/ir/index.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import dce from '../../src/passes/dce.ts';
import { PassManager } from '../../src/passes/manager.ts';

const STORIES = 'test/fixtures/stories260K/stories260K.onnx';
const dir = mkdtempSync(join(tmpdir(), 'qarvd-dce-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs dce through the manager, which verifies the graph before and after. */
const runDce = (m: Model) => new PassManager([{ pass: dce, plugin: 'builtin' }]).run(m).then((r) => r.passes[0]!);

const names = (g: Graph) => g.nodes().map((n) => n.name);

async function logits(path: string): Promise<Float32Array> {
  const rng = seededRandom(7);
  const ids = BigInt64Array.from({ length: 12 }, () => BigInt(rng.int(512)));
  const session = await ort.InferenceSession.create(path);
  try {
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [1, 12]) });
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('dce on stories260K', () => {
  it('removes nothing from the unmodified fixture', async () => {
    const m = loadModel(STORIES);
    const before = names(m.graph);
    expect(await runDce(m)).toMatchObject({ modified: false, stats: { nodesRemoved: 0, initializersRemoved: 0 } });
    expect(names(m.graph)).toEqual(before);
  });

  it('removes added dead nodes and initializers, and the outputs stay bit-identical', async () => {
    const m = loadModel(STORIES);
    const g = m.graph;
    const liveNames = names(g);
    const liveInits = [...g.initializers.keys()];
    const [w1, w2] = [...g.initializers.values()];
    const [uses1, uses2] = [w1!.useCount, w2!.useCount];
    const input = g.inputs[0]!;

    const deadInit = new Value('dead_init', { initializer: Tensor.fromFloat32('dead_init', [4], new Float32Array(4)) });
    const deadUsed = new Value('dead_used', { initializer: Tensor.fromFloat32('dead_used', [1], Float32Array.of(2)) });
    g.addInitializer(deadInit);
    g.addInitializer(deadUsed);
    const shape = new Node({ opType: 'Shape', name: 'dead_shape', inputs: [input], outputs: ['dead_s'] });
    const cast = new Node({ opType: 'Cast', name: 'dead_cast', inputs: [shape.output()], outputs: ['dead_sf'], attributes: [attr.int('to', DataType.FLOAT)] });
    const mul = new Node({ opType: 'Mul', name: 'dead_mul', inputs: [cast.output(), deadUsed], outputs: ['dead_out'] });
    const ident = new Node({ opType: 'Identity', name: 'dead_identity', inputs: [w1], outputs: ['dead_w1'] });
    const eq = new Node({ opType: 'Equal', name: 'dead_eq', inputs: [shape.output(), shape.output()], outputs: ['dead_cond'] });
    // A dead If whose branches capture a live initializer: removing it must drop those uses too.
    const branch = (name: string) => {
      const b = new Graph({ name, parent: g });
      const n = new Node({ opType: 'Identity', name: `${name}_id`, inputs: [w2], outputs: [`${name}_out`] });
      b.append(n);
      b.addOutput(n.output());
      return b;
    };
    const ifNode = new Node({
      opType: 'If',
      name: 'dead_if',
      inputs: [eq.output()],
      outputs: ['dead_if_out'],
      attributes: [{ name: 'then_branch', type: AttributeType.GRAPH, value: branch('dead_then') }, { name: 'else_branch', type: AttributeType.GRAPH, value: branch('dead_else') }],
    });
    // Interleave with the live nodes so that removal order matters.
    const nodes = g.nodes();
    g.insertAfter(nodes[0]!, shape, cast, ident);
    g.insertAfter(nodes[10]!, mul, eq, ifNode);
    expect(w1!.useCount).toBe(uses1 + 1);
    expect(w2!.useCount).toBe(uses2 + 2);

    const r = await runDce(m);
    expect(r).toMatchObject({ modified: true, stats: { nodesRemoved: 6, initializersRemoved: 2 } });
    expect(names(g)).toEqual(liveNames);
    expect([...g.initializers.keys()]).toEqual(liveInits);
    expect([w1!.useCount, w2!.useCount]).toEqual([uses1, uses2]);

    const out = join(dir, 'stories-dce.onnx');
    saveModel(m, out);
    const [a, b] = [await logits(STORIES), await logits(out)];
    expect(b.length).toBe(a.length);
    expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
  });
});

describe('dce rules', () => {
  const f32 = { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 2 }] } } };

  it('keeps graph inputs, initializers that are graph inputs, and whole live nodes', async () => {
    const g = new Graph({ name: 'g' });
    const x = new Value('x', { type: f32 });
    const unusedInput = new Value('unused_input', { type: f32 });
    g.addInput(x);
    g.addInput(unusedInput);
    const overridable = new Value('bias', { type: f32, initializer: Tensor.fromFloat32('bias', [2], Float32Array.of(1, 2)) });
    g.addInput(overridable);
    // The IR has no public call for an initializer that is also an input (only loaded models have them).
    g._addLoadedInitializer(overridable);
    // Split is live through its first output only; its unused second output stays.
    const split = new Node({ opType: 'Split', name: 'split', inputs: [x], outputs: ['a', 'b'], attributes: [attr.int('axis', 0)] });
    g.append(split);
    g.addOutput(split.output(0));
    const m = new Model(g, { opset: 17 });
    expect((await runDce(m)).stats).toEqual({ nodesRemoved: 0, initializersRemoved: 0 });
    expect(g.inputs.map((v) => v.name)).toEqual(['x', 'unused_input', 'bias']);
    expect(split.outputs.map((v) => v.name)).toEqual(['a', 'b']);
  });

  it('keeps what a live subgraph returns directly or captures, and cleans inside live subgraphs', async () => {
    const g = new Graph({ name: 'main' });
    const cond = new Value('cond', { type: { tensor_type: { elem_type: DataType.BOOL, shape: { dim: [] } } } });
    const x = new Value('x', { type: f32 });
    g.addInput(cond);
    g.addInput(x);
    const relu = new Node({ opType: 'Relu', name: 'relu', inputs: [x], outputs: ['r'] });
    const neg = new Node({ opType: 'Neg', name: 'neg', inputs: [x], outputs: ['n'] });
    g.append(relu, neg);
    // then returns the outer `r` itself (no inner node reads it); else captures `n` and holds a dead Abs.
    const thenG = new Graph({ name: 'then', parent: g });
    thenG.addOutput(relu.output());
    const elseG = new Graph({ name: 'else', parent: g });
    const id = new Node({ opType: 'Identity', name: 'else_id', inputs: [neg.output()], outputs: ['e'] });
    const abs = new Node({ opType: 'Abs', name: 'else_dead', inputs: [neg.output()], outputs: ['dead'] });
    elseG.append(id, abs);
    elseG.addOutput(id.output());
    const ifNode = new Node({
      opType: 'If',
      name: 'if',
      inputs: [cond],
      outputs: ['y'],
      attributes: [{ name: 'then_branch', type: AttributeType.GRAPH, value: thenG }, { name: 'else_branch', type: AttributeType.GRAPH, value: elseG }],
    });
    g.append(ifNode);
    g.addOutput(ifNode.output());
    const m = new Model(g, { opset: 17 });

    expect((await runDce(m)).stats).toEqual({ nodesRemoved: 1, initializersRemoved: 0 });
    expect(names(g)).toEqual(['relu', 'neg', 'if']);
    expect(names(elseG)).toEqual(['else_id']);
    expect(neg.output().uses().map((u) => u.node.name)).toEqual(['else_id']);
  });
});
