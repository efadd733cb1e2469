// The verifier against deliberately broken graphs. The graphs are synthetic, built by hand
// (except in the one test marked as using the real fixtures); where the public API refuses to
// build the breakage, the test breaks internals directly.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AttributeType, attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { VerifyError, assertValid, verifyModel } from '../../src/graph/verify.ts';

/**
 * main (x, cond; initializer w):
 *   c = Constant; mm = MatMul(x, w); q = com.microsoft.QuickGelu(mm); s, _ = Split(q)
 *   if = If(cond) { then: Identity(c) ; else: Identity(s) } -> out
 */
function valid() {
  const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
  m.opsetImports.set('com.microsoft', 1);
  const g = m.graph;
  const x = new Value('x', { type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 2 }, { dim_value: 4 }] } } } });
  const cond = new Value('cond');
  g.addInput(x);
  g.addInput(cond);
  const w = new Value('w', { initializer: Tensor.fromFloat32('w', [4, 4], new Float32Array(16)) });
  g.addInitializer(w);
  const c = node(g, 'Constant', [], { name: 'c', attributes: [attr.tensor('value', Tensor.fromFloat32('c', [2, 4], new Float32Array(8)))] });
  const mm = node(g, 'MatMul', [x, w], { name: 'mm' });
  const q = node(g, 'QuickGelu', [mm.output()], { name: 'q', domain: 'com.microsoft' });
  const split = node(g, 'Split', [q.output()], { name: 'split', outputs: ['s', 'unused'] });
  // An omitted optional output, as the loader makes it (insertion names every output).
  split.output(1).name = '';
  const thenG = new Graph({ name: 'then', parent: g });
  const thenId = node(thenG, 'Identity', [c.output()], { name: 'then_id' });
  thenG.addOutput(thenId.output());
  const elseG = new Graph({ name: 'else', parent: g });
  const elseId = node(elseG, 'Identity', [split.output(0)], { name: 'else_id' });
  elseG.addOutput(elseId.output());
  const owner = node(g, 'If', [cond], { name: 'if', attributes: [graphAttr('then_branch', thenG), graphAttr('else_branch', elseG)] });
  thenG.ownerNode = owner;
  elseG.ownerNode = owner;
  g.addOutput(owner.output());
  return { m, g, x, cond, w, c, mm, q, split, thenG, elseG, thenId, elseId, owner };
}

function node(g: Graph, opType: string, inputs: (Value | null)[], extra: Partial<ConstructorParameters<typeof Node>[0]> = {}): Node {
  const n = new Node({ opType, inputs, ...extra });
  g.append(n);
  return n;
}

function graphAttr(name: string, value: Graph) {
  return { name, type: AttributeType.GRAPH, value } as const;
}

const issues = (m: Model) => verifyModel(m).map((i) => `${i.kind}: ${i.message}`);

describe('verifyModel on valid graphs', () => {
  it('finds no issue in a graph with initializers, constants, subgraphs and a contrib op', () => {
    const { m } = valid();
    expect(verifyModel(m)).toEqual([]);
    expect(() => assertValid(m)).not.toThrow();
  });

  it('accepts "ai.onnx" as the default domain and calls of model-local functions', () => {
    const { m, g, x } = valid();
    node(g, 'Relu', [x], { name: 'r', domain: 'ai.onnx' });
    m.functions = [{ domain: 'local', name: 'MyFn', input: ['a'], output: ['b'] }];
    node(g, 'MyFn', [x], { name: 'call', domain: 'local' });
    expect(verifyModel(m)).toEqual([]);
    node(g, 'OtherFn', [x], { name: 'other', domain: 'local' });
    expect(issues(m)).toEqual(['opset: domain "local" is used by 1 node(s) (first: graph main node other (local.OtherFn)) but the model imports no opset for it']);
  });
});

describe('verifyModel on the real fixtures (not synthetic)', () => {
  it('finds no issue in the stories260K exports, and catches a forced removal in one', () => {
    expect(verifyModel(loadModel(fixture('stories260K-hf/onnx/model.onnx')))).toEqual([]);
    const m = loadModel(fixture('stories260K/stories260K.onnx'));
    expect(verifyModel(m)).toEqual([]);
    const gather = m.graph.nodes().find((n) => n.name === '/emb/Gather')!;
    m.graph.remove(gather, { force: true });
    const found = verifyModel(m);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((i) => i.kind === 'order' && i.message.includes('produced by /emb/Gather (Gather), which is not in the model'))).toBe(true);
  });
});

describe('verifyModel catches each kind of breakage', () => {
  it('producer: an output whose producer points elsewhere', () => {
    const { m, mm, q } = valid();
    (q.output() as any)._setProducer(mm, 0);
    expect(issues(m)).toEqual(['producer: graph main node q (com.microsoft.QuickGelu) output 0 %q_output_0 records producer mm (MatMul) at output 0']);
  });

  it('producer: a node output that is also listed as a graph input', () => {
    const { m, g, mm } = valid();
    g._addLoadedInput(mm.output());
    expect(issues(m)).toEqual([
      'producer: graph main input %mm_output_0 has a producer (mm (MatMul))',
      'producer: graph main node mm (MatMul) output 0 %mm_output_0: %mm_output_0 is already defined (graph main input %mm_output_0)',
    ]);
  });

  it('uses: a use list entry that no input matches', () => {
    const { m, x, q } = valid();
    (x as any)._uses.push({ node: q, inputIndex: 3 });
    expect(issues(m)).toEqual(['uses: %x (graph main) lists a use by q (com.microsoft.QuickGelu) input 3, but that input is empty']);
  });

  it('uses: an input missing from its value’s use list', () => {
    const { m, w } = valid();
    (w as any)._uses.length = 0;
    expect(issues(m)).toEqual(['uses: graph main node mm (MatMul) input 1 is %w, whose use list has 0 entries for it (expected 1)']);
  });

  it('uses: a use by a node that was built but never inserted', () => {
    const { m, x } = valid();
    new Node({ opType: 'Neg', name: 'orphan', inputs: [x] });
    expect(issues(m)).toEqual(['uses: %x (graph main) lists a use by orphan (Neg) input 0, which is not a node of the model']);
  });

  it('order: a forced removal leaves a dangling use', () => {
    const { m, g, mm } = valid();
    g.remove(mm, { force: true });
    expect(issues(m)).toEqual([
      'order: graph main node q (com.microsoft.QuickGelu) input 0 uses %mm_output_0 produced by mm (MatMul), which is not in the model',
    ]);
  });

  it('order: a node placed before the producer of its input', () => {
    const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
    const x = new Value('x');
    m.graph.addInput(x);
    const a = new Node({ opType: 'Relu', name: 'a', inputs: [x] });
    const b = new Node({ opType: 'Neg', name: 'b', inputs: [a.output()] });
    m.graph.append(b, a);
    m.graph.addOutput(b.output());
    expect(issues(m)).toEqual(['order: graph main node b (Neg) input 0 uses %a_output_0 before its producer a (Relu) (graph main)']);
    m.graph.sort();
    expect(verifyModel(m)).toEqual([]);
  });

  it('order: a subgraph that captures an outer value defined after its owner', () => {
    const { m, g, thenId, owner, x } = valid();
    const late = new Node({ opType: 'Neg', name: 'late', inputs: [x] });
    g.insertAfter(owner, late);
    thenId.setInput(0, late.output());
    expect(issues(m)).toEqual([
      'order: graph main/if.then_branch node then_id (Identity) input 0 uses %late_output_0 before its producer late (Neg) (graph main)',
    ]);
  });

  it('order: a value of one branch used in another', () => {
    const { m, thenId, elseId } = valid();
    elseId.setInput(0, thenId.output());
    expect(issues(m)).toEqual([
      'order: graph main/if.else_branch node else_id (Identity) input 0 uses %then_id_output_0 outside its scope (defined in graph main/if.then_branch)',
    ]);
  });

  it('name: duplicate value names, across subgraphs too, and duplicate node names', () => {
    const { m, mm, thenId, q } = valid();
    mm.output().name = 'x';
    thenId.output().name = 'w';
    q.name = 'mm';
    expect(issues(m)).toEqual([
      'name: graph main node mm (MatMul) output 0 %x: value name "x" is already taken by graph main input %x',
      'name: graph main node mm (com.microsoft.QuickGelu): node name "mm" is already taken by graph main node mm (MatMul)',
      'name: graph main/if.then_branch node then_id (Identity) output 0 %w: value name "w" is already taken by graph main initializer %w',
    ]);
  });

  it('name: an unnamed output is fine until something uses it', () => {
    const { m, g, split } = valid();
    expect(verifyModel(m)).toEqual([]);
    node(g, 'Relu', [split.output(1)], { name: 'user' });
    expect(issues(m)).toEqual(['name: graph main node split (Split) output 1 %<unnamed> has an empty name but is used']);
  });

  it('output: a graph output that nothing produces', () => {
    const { m, g, elseG, thenId } = valid();
    g.addOutput(new Value('ghost'));
    elseG.addOutput(thenId.output());
    expect(issues(m)).toEqual([
      'output: graph main/if.else_branch output 1 %then_id_output_0 is not produced in the graph\'s scope (it is defined in graph main/if.then_branch)',
      'output: graph main output 1 %ghost is not produced in the graph\'s scope',
    ]);
  });

  it('opset: a com.microsoft node without the opset import, reported once per domain', () => {
    const { m, g, q } = valid();
    m.opsetImports.delete('com.microsoft');
    node(g, 'FusedMatMul', [q.output(), q.output()], { name: 'fm', domain: 'com.microsoft' });
    expect(issues(m)).toEqual([
      'opset: domain "com.microsoft" is used by 2 node(s) (first: graph main node q (com.microsoft.QuickGelu)) but the model imports no opset for it',
    ]);
    m.opsetImports.clear();
    m.opsetImports.set('com.microsoft', 1);
    expect(issues(m)).toEqual([
      'opset: domain "" (default ONNX) is used by 6 node(s) (first: graph main node c (Constant)) but the model imports no opset for it',
    ]);
  });

  it('initializer: a tensor named differently from its value, a renamed value, a stray tensor', () => {
    const { m, w, c } = valid();
    w.initializer!.name = 'weights';
    expect(issues(m)).toEqual(['initializer: graph main initializer %w has a tensor named "weights"']);
    w.initializer!.name = 'w';
    w.name = 'w2';
    w.initializer!.name = 'w2';
    expect(issues(m)).toEqual(['initializer: graph main initializer %w2 is registered under the name "w"']);
    w.name = 'w';
    w.initializer!.name = 'w';
    c.output().initializer = Tensor.fromFloat32('c', [1], new Float32Array(1));
    expect(issues(m)).toEqual(['initializer: graph main node c (Constant) output 0 %c_output_0 carries a tensor but is not an initializer']);
  });
});

describe('assertValid', () => {
  it('throws one error listing every issue, under the given context', () => {
    const { m, g, mm } = valid();
    g.remove(mm, { force: true });
    g.addOutput(new Value('ghost'));
    let error: unknown;
    try {
      assertValid(m, 'pass fold-constants');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VerifyError);
    expect((error as VerifyError).issues.map((i) => i.kind)).toEqual(['order', 'output']);
    expect((error as Error).message).toBe(
      [
        'pass fold-constants: invalid model (2 issues)',
        '  [order] graph main node q (com.microsoft.QuickGelu) input 0 uses %mm_output_0 produced by mm (MatMul), which is not in the model',
        "  [output] graph main output 1 %ghost is not produced in the graph's scope",
      ].join('\n'),
    );
  });
});

function fixture(path: string): string {
  return fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url));
}
