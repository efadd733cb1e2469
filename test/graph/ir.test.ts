// IR behaviour under editing. Every graph here is synthetic, built by hand for the case at hand.
import { describe, expect, it } from 'vitest';
import { AttributeType, attr } from '../../src/graph/ir/attribute.ts';
import { DataType, elementCount } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { NameAuthority } from '../../src/graph/ir/names.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { modelFromProto } from '../../src/graph/serde/from-proto.ts';
import { verifyModel } from '../../src/graph/verify.ts';

function input(g: Graph, name: string): Value {
  const v = new Value(name, { type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 4 }] } } } });
  g.addInput(v);
  return v;
}

function initializer(g: Graph, name: string, dims: number[]): Value {
  const v = new Value(name, { initializer: Tensor.fromFloat32(name, dims, new Float32Array(elementCount(dims))) });
  g.addInitializer(v);
  return v;
}

function op(g: Graph, opType: string, inputs: (Value | null)[], extra: { name?: string; outputs?: number | string[] } = {}): Node {
  const n = new Node({ opType, inputs, ...extra });
  g.append(n);
  return n;
}

const useList = (v: Value) => v.uses().map((u) => `${u.node.name}#${u.inputIndex}`);
const names = (g: Graph) => g.nodes().map((n) => n.name);

describe('use lists under editing', () => {
  it('setInput moves the use from the old value to the new one', () => {
    const g = new Graph({ name: 'main' });
    const [x, y, z] = [input(g, 'x'), input(g, 'y'), input(g, 'z')];
    const add = op(g, 'Add', [x, y], { name: 'add' });
    add.setInput(1, z);
    expect(useList(x)).toEqual(['add#0']);
    expect(useList(y)).toEqual([]);
    expect(useList(z)).toEqual(['add#1']);
    add.setInput(0, null);
    expect(x.useCount).toBe(0);
    expect(add.inputs).toEqual([null, z]);
    add.setInput(2, x); // index === length appends
    expect(useList(x)).toEqual(['add#2']);
    expect(() => add.setInput(4, y)).toThrow(/input index 4 out of range/);
  });

  it('hands out copies of the use list', () => {
    const g = new Graph();
    const x = input(g, 'x');
    op(g, 'Relu', [x], { name: 'r' });
    const uses = x.uses();
    uses.length = 0;
    expect(x.useCount).toBe(1);
    expect(useList(x)).toEqual(['r#0']);
  });

  it('keeps one use per input slot when a node reads a value twice', () => {
    const g = new Graph();
    const [x, y] = [input(g, 'x'), input(g, 'y')];
    const mul = op(g, 'Mul', [x, x], { name: 'sq' });
    expect(useList(x)).toEqual(['sq#0', 'sq#1']);
    mul.setInput(0, y);
    expect(useList(x)).toEqual(['sq#1']);
    expect(useList(y)).toEqual(['sq#0']);
    mul.setInput(0, x);
    x.replaceAllUsesWith(y);
    expect(x.useCount).toBe(0);
    expect(useList(y).sort()).toEqual(['sq#0', 'sq#1']);
    expect(mul.inputs).toEqual([y, y]);
  });

  it('replaceAllUsesWith rewires every user, including subgraph users, and graph outputs only when asked', () => {
    const g = new Graph({ name: 'main' });
    const [x, y, c] = [input(g, 'x'), input(g, 'y'), input(g, 'c')];
    const a = op(g, 'Neg', [x], { name: 'a' });
    const b = op(g, 'Add', [y, x], { name: 'b' });
    const body = new Graph({ name: 'body', parent: g });
    const inner = op(body, 'Identity', [x], { name: 'inner' });
    body.addOutput(inner.output());
    const owner = new Node({ opType: 'If', name: 'if', inputs: [c], attributes: [graphAttr('then_branch', body)] });
    body.ownerNode = owner;
    g.append(owner);
    g.addOutput(x);

    x.replaceAllUsesWith(y);
    expect(x.useCount).toBe(0);
    expect([a.input(0), b.input(1), inner.input(0)]).toEqual([y, y, y]);
    expect(useList(y)).toEqual(['b#0', 'a#0', 'b#1', 'inner#0']);
    expect(g.outputs).toEqual([x]);

    const z = op(g, 'Relu', [y], { name: 'z' }).output();
    x.replaceAllUsesWith(z, { outputsToo: true });
    expect(g.outputs).toEqual([z]);
    expect(z.name).toBe('z_output_0');
  });

  it('clearInputs forgets every use, duplicated and omitted slots included', () => {
    const g = new Graph();
    const [x, y] = [input(g, 'x'), input(g, 'y')];
    const n = op(g, 'Foo', [x, null, y, x], { name: 'foo' });
    op(g, 'Bar', [x], { name: 'bar' });
    n.clearInputs();
    expect(n.inputs).toEqual([]);
    expect(useList(x)).toEqual(['bar#0']);
    expect(y.useCount).toBe(0);
  });
});

describe('iteration while editing', () => {
  function fourIndependent(): { g: Graph; nodes: Node[] } {
    const g = new Graph();
    const x = input(g, 'x');
    const nodes = ['A', 'B', 'C', 'D'].map((name) => op(g, 'Identity', [x], { name }));
    return { g, nodes };
  }

  it('continues past the current node after removing it', () => {
    const { g } = fourIndependent();
    const seen: string[] = [];
    for (const n of g) {
      seen.push(n.name);
      if (n.name === 'B') g.remove(n);
    }
    expect(seen).toEqual(['A', 'B', 'C', 'D']);
    expect(names(g)).toEqual(['A', 'C', 'D']);
  });

  it('skips a not yet visited node that was removed', () => {
    const { g, nodes } = fourIndependent();
    const seen: string[] = [];
    for (const n of g) {
      seen.push(n.name);
      if (n.name === 'A') g.remove(nodes[1]!);
    }
    expect(seen).toEqual(['A', 'C', 'D']);
  });

  it('survives removing the current node and the next one together', () => {
    const { g, nodes } = fourIndependent();
    const seen: string[] = [];
    for (const n of g) {
      seen.push(n.name);
      if (n.name === 'B') {
        g.remove(n);
        g.remove(nodes[2]!);
      }
    }
    expect(seen).toEqual(['A', 'B', 'D']);
    expect(g.nodeCount).toBe(2);
  });

  it('visits a node inserted after the current one', () => {
    const { g } = fourIndependent();
    const seen: string[] = [];
    for (const n of g) {
      seen.push(n.name);
      if (n.name === 'A') g.insertAfter(n, new Node({ opType: 'Identity', name: 'A2', inputs: [n.output()] }));
    }
    expect(seen).toEqual(['A', 'A2', 'B', 'C', 'D']);
  });

  it('gives a snapshot from nodes() that edits do not disturb', () => {
    const { g } = fourIndependent();
    const snapshot = g.nodes();
    g.remove(snapshot[0]!);
    expect(snapshot.map((n) => n.name)).toEqual(['A', 'B', 'C', 'D']);
    expect(names(g)).toEqual(['B', 'C', 'D']);
  });
});

describe('stable topological sort', () => {
  it('leaves an already sorted graph exactly as it is', () => {
    const g = new Graph();
    const x = input(g, 'x');
    const p = op(g, 'Relu', [x], { name: 'p' });
    op(g, 'Neg', [x], { name: 'q' });
    op(g, 'Add', [p.output(), x], { name: 'r' });
    op(g, 'Exp', [x], { name: 's' });
    const before = g.nodes();
    g.sort();
    expect(g.nodes()).toEqual(before);
    expect(names(g)).toEqual(['p', 'q', 'r', 's']);
  });

  it('sorts a shuffled graph, keeping ties in their original order', () => {
    const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
    const g = m.graph;
    const x = input(g, 'x');
    const p1 = new Node({ opType: 'Relu', name: 'p1', inputs: [x] });
    const p2 = new Node({ opType: 'Neg', name: 'p2', inputs: [x] });
    const c1 = new Node({ opType: 'Add', name: 'c1', inputs: [p1.output(), p2.output()] });
    const c2 = new Node({ opType: 'Mul', name: 'c2', inputs: [p1.output(), x] });
    const d = new Node({ opType: 'Sub', name: 'd', inputs: [c1.output(), c2.output()] });
    const i = new Node({ opType: 'Identity', name: 'i', inputs: [x] });
    g.append(d, c2, i, c1, p2, p1);
    g.addOutput(d.output());
    expect(verifyModel(m).map((e) => e.kind)).toContain('order');
    g.sort();
    // Ready nodes leave in their original order: i (2), p2 (4), p1 (5); then c2 (1) before c1 (3).
    expect(names(g)).toEqual(['i', 'p2', 'p1', 'c2', 'c1', 'd']);
    expect(verifyModel(m)).toEqual([]);
  });

  it('reports a cycle naming its nodes and leaves the order untouched', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const a = op(g, 'Add', [x, x], { name: 'a' });
    const b = op(g, 'Neg', [a.output()], { name: 'b' });
    op(g, 'Relu', [x], { name: 'free' });
    a.setInput(1, b.output());
    expect(() => g.sort()).toThrow(/graph main: cycle among a \(Add\), b \(Neg\)$/);
    expect(names(g)).toEqual(['a', 'b', 'free']);
  });

  it('reports a node that reads its own output as a cycle', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const a = op(g, 'Add', [x, x], { name: 'self' });
    a.setInput(1, a.output());
    expect(() => g.sort()).toThrow(/cycle among self \(Add\)/);
  });

  it('moves a node whose subgraph captures an outer value after that value’s producer', () => {
    const g = new Graph({ name: 'main' });
    const [x, cond] = [input(g, 'x'), input(g, 'cond')];
    const late = new Node({ opType: 'Neg', name: 'late', inputs: [x] });
    const thenG = new Graph({ name: 'then', parent: g });
    thenG.addOutput(op(thenG, 'Identity', [late.output()], { name: 'then_id' }).output());
    const elseG = new Graph({ name: 'else', parent: g });
    elseG.addOutput(op(elseG, 'Identity', [x], { name: 'else_id' }).output());
    const owner = new Node({ opType: 'If', name: 'if', inputs: [cond], attributes: [graphAttr('then_branch', thenG), graphAttr('else_branch', elseG)] });
    thenG.ownerNode = owner;
    elseG.ownerNode = owner;
    g.append(owner, late);
    g.sort();
    expect(names(g)).toEqual(['late', 'if']);
  });
});

describe('naming', () => {
  it('NameAuthority hands out unique suffixed names', () => {
    const a = new NameAuthority();
    expect([a.unique('mm'), a.unique('mm'), a.unique('mm')]).toEqual(['mm', 'mm_1', 'mm_2']);
    a.reserve('w_1');
    expect([a.unique('w'), a.unique('w')]).toEqual(['w', 'w_2']);
    expect(a.unique('')).toBe('v');
    a.reserve('');
    expect(a.has('')).toBe(false);
    a.release('mm_1');
    expect(a.has('mm_1')).toBe(false);
    expect(a.has('mm_2')).toBe(true);
  });

  it('names inserted nodes and their outputs uniquely across the model, subgraphs included', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const taken = input(g, 'Relu_output_0');
    const r1 = op(g, 'Relu', [x]);
    const r2 = new Node({ opType: 'Relu', inputs: [taken] });
    g.insertBefore(r1, r2);
    const split = new Node({ opType: 'Split', inputs: [x], outputs: 2 });
    g.insertAfter(r1, split);
    const sub = new Graph({ name: 'sub', parent: g });
    const r3 = op(sub, 'Relu', [x]);
    expect([r1.name, r2.name, r3.name, split.name]).toEqual(['Relu', 'Relu_1', 'Relu_2', 'Split']);
    expect(r1.output().name).toBe('Relu_output_0_1');
    expect(r2.output().name).toBe('Relu_1_output_0');
    expect(r3.output().name).toBe('Relu_2_output_0');
    expect(split.outputs.map((o) => o.name)).toEqual(['Split_output_0', 'Split_output_1']);
    expect(names(g)).toEqual(['Relu_1', 'Relu', 'Split']);
  });

  it('refuses to insert a node whose name or output name is taken, and changes nothing', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    op(g, 'Relu', [x], { name: 'mm' });
    expect(() => op(g, 'Neg', [x], { name: 'mm' })).toThrow(/a node named mm exists/);
    const clash = new Node({ opType: 'Neg', name: 'fresh', inputs: [x], outputs: ['x'] });
    expect(() => g.append(clash)).toThrow(/a value named x exists/);
    const unnamed = new Node({ opType: 'Neg', inputs: [x], outputs: ['x'] });
    expect(() => g.append(unnamed)).toThrow(/a value named x exists/);
    expect(g.nodeCount).toBe(1);
    // A refused insertion reserves nothing: the node can go in once its output is renamed.
    expect(g.names.has('fresh')).toBe(false);
    expect(unnamed.name).toBe('');
    clash.output().name = 'y';
    g.append(clash);
    expect(names(g)).toEqual(['mm', 'fresh']);
  });
});

describe('safe removal', () => {
  it('refuses to remove a node whose output is used, and works after rewiring', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const a = op(g, 'Relu', [x], { name: 'a' });
    const b = op(g, 'Neg', [a.output()], { name: 'b' });
    expect(() => g.remove(a)).toThrow(/cannot remove a \(Relu\): its output a_output_0 is used by b \(Neg\)/);
    expect(g.nodeCount).toBe(2);
    b.setInput(0, x);
    g.remove(a);
    expect(names(g)).toEqual(['b']);
    expect(useList(x)).toEqual(['b#0']);
    expect(a.graph).toBeUndefined();
  });

  it('refuses to remove the producer of a graph output until the output is moved', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const a = op(g, 'Relu', [x], { name: 'a' });
    g.addOutput(a.output());
    expect(() => g.remove(a)).toThrow(/a_output_0 is a graph output/);
    g.setOutput(0, x);
    g.remove(a);
    expect(g.nodeCount).toBe(0);
    expect(x.useCount).toBe(0);
  });

  it('refuses to remove an initializer while it is used', () => {
    const g = new Graph({ name: 'main' });
    const x = input(g, 'x');
    const w = initializer(g, 'w', [4, 4]);
    const mm = op(g, 'MatMul', [x, w], { name: 'mm' });
    expect(() => g.removeInitializer(w)).toThrow(/cannot remove initializer w: still used by 1 node/);
    expect(g.initializers.has('w')).toBe(true);
    g.remove(mm);
    g.removeInitializer(w);
    expect(g.initializers.has('w')).toBe(false);
    expect(g.names.has('w')).toBe(false);
  });
});

describe('constTensor', () => {
  it('returns an initializer’s tensor', () => {
    const g = new Graph();
    const w = initializer(g, 'w', [2, 3]);
    expect(w.constTensor()).toBe(w.initializer);
    expect(w.constTensor()!.describe()).toBe('f32[2x3]');
  });

  it('returns a Constant node’s value tensor, and nothing for other producers', () => {
    const g = new Graph();
    const t = Tensor.fromFloat32('c', [2], Float32Array.of(1, 2));
    const c = op(g, 'Constant', [], { name: 'c' });
    c.attributes.set('value', attr.tensor('value', t));
    expect(c.output().constTensor()).toBe(t);
    const relu = op(g, 'Relu', [c.output()], { name: 'r' });
    expect(relu.output().constTensor()).toBeUndefined();
    const custom = new Node({ opType: 'Constant', domain: 'custom', attributes: [attr.tensor('value', t)] });
    g.append(custom);
    expect(custom.output().constTensor()).toBeUndefined();
  });

  it('returns nothing for an initializer that is also a graph input (it may be overridden)', () => {
    const m = modelFromProto(
      {
        opset_import: [{ domain: '', version: 17 }],
        graph: {
          name: 'main',
          input: [{ name: 'w' }],
          initializer: [{ name: 'w', data_type: DataType.FLOAT, dims: [2], float_data: [1, 2] }, { name: 'k', data_type: DataType.FLOAT, dims: [2], float_data: [3, 4] }],
          node: [{ op_type: 'Add', name: 'add', input: ['w', 'k'], output: ['y'] }],
          output: [{ name: 'y' }],
        },
      },
      { file: 'synthetic.onnx', baseDir: undefined },
    );
    const w = m.graph.lookup('w')!;
    const k = m.graph.lookup('k')!;
    expect(w.initializer?.toFloat32()).toEqual(Float32Array.of(1, 2));
    expect(w.isGraphInput()).toBe(true);
    expect(w.constTensor()).toBeUndefined();
    expect(k.constTensor()?.toFloat32()).toEqual(Float32Array.of(3, 4));
    expect(verifyModel(m)).toEqual([]);
  });
});

function graphAttr(name: string, value: Graph) {
  return { name, type: AttributeType.GRAPH, value } as const;
}
