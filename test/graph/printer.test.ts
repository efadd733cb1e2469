// Printer golden strings. The graphs are synthetic, built by hand (except in the one test
// marked as using a real fixture); the expected texts were written by hand too (no generated
// snapshot files).
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Attribute, AttributeType, attr } from '../../src/graph/ir/attribute.ts';
import { DataType, elementCount } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { type TypeProtoData, Value } from '../../src/graph/ir/value.ts';
import { modelFromProto } from '../../src/graph/serde/from-proto.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { formatFloat, printGraph, printModel } from '../../src/graph/printer.ts';

const text = (...lines: string[]) => lines.join('\n') + '\n';

function tensorType(elem: number, dims: (number | string | undefined)[]): TypeProtoData {
  return {
    tensor_type: {
      elem_type: elem,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : typeof d === 'string' ? { dim_param: d } : {})) },
    },
  };
}

function addInitializer(g: Graph, name: string, dims: number[]): Value {
  const v = new Value(name, { initializer: Tensor.fromFloat32(name, dims, new Float32Array(elementCount(dims))) });
  g.addInitializer(v);
  return v;
}

function node(g: Graph, opType: string, inputs: (Value | null)[], extra: Partial<ConstructorParameters<typeof Node>[0]> = {}): Node {
  const n = new Node({ opType, inputs, ...extra });
  g.append(n);
  return n;
}

function graphAttr(name: string, value: Graph): Attribute {
  return { name, type: AttributeType.GRAPH, value };
}

/** Weights, a Constant, an omitted input, a contrib op, a scalar and an unused initializer. */
function dense(): Model {
  const m = new Model(new Graph({ name: 'main' }), { opset: 14 });
  m.opsetImports.set('com.microsoft', 1);
  const g = m.graph;
  const x = new Value('x', { type: tensorType(DataType.FLOAT, ['batch', 64]) });
  g.addInput(x);
  g.addInput(new Value('ids', { type: tensorType(DataType.INT64, ['batch', 'seq']) }));
  const [w, w2, b, s] = [addInitializer(g, 'w', [64, 96]), addInitializer(g, 'w2', [96, 32]), addInitializer(g, 'b', [32]), addInitializer(g, 's', [])];
  addInitializer(g, 'u', [3]);
  const c = node(g, 'Constant', [], { outputs: ['c'], attributes: [attr.tensor('value', Tensor.fromFloat32('c', [2, 3], new Float32Array(6)))] });
  const y = node(g, 'MatMul', [x, w], { outputs: ['y'] });
  const z = node(g, 'Gemm', [y.output(), w2, b], { outputs: ['z'], attributes: [attr.int('transB', 1), attr.float('alpha', 0.5)] });
  const split = node(g, 'Split', [z.output()], { outputs: ['a', 'b2'], attributes: [attr.int('axis', -1)] });
  const q = node(g, 'MatMulIntegerToFloat', [split.output(0), null, c.output()], { domain: 'com.microsoft', outputs: ['q'] });
  const r = node(g, 'Mul', [q.output(), s], { outputs: ['r'] });
  r.output().type = tensorType(DataType.FLOAT, ['batch', undefined]);
  g.addOutput(r.output());
  g.addOutput(split.output(1));
  return m;
}

/** An If with two branches capturing outer values, a Scan whose body has an input, node metadata. */
function branchy(): Graph {
  const g = new Graph({ name: 'main' });
  const cond = new Value('cond', { type: tensorType(DataType.BOOL, []) });
  const x = new Value('x', { type: tensorType(DataType.FLOAT, [4]) });
  g.addInput(cond);
  g.addInput(x);
  const neg = node(g, 'Neg', [x], { name: 'neg', outputs: ['n'], metadata: { 'qarvd.pass': 'fold', b: 'two words' } });
  const thenG = new Graph({ name: 'then', parent: g });
  thenG.addOutput(node(thenG, 'Relu', [neg.output()], { outputs: ['t'] }).output());
  const elseG = new Graph({ name: 'else', parent: g });
  elseG.addOutput(node(elseG, 'Identity', [x], { outputs: ['e'] }).output());
  const ifNode = node(g, 'If', [cond], { name: 'if', outputs: ['out'], attributes: [graphAttr('then_branch', thenG), graphAttr('else_branch', elseG)], metadata: { 'qarvd.note': 'branch' } });
  thenG.ownerNode = ifNode;
  elseG.ownerNode = ifNode;
  const body = new Graph({ name: 'body', parent: g });
  const sIn = new Value('s_in', { type: tensorType(DataType.FLOAT, []) });
  body.addInput(sIn);
  body.addOutput(node(body, 'Add', [sIn, neg.output()], { outputs: ['s_out'] }).output());
  const scan = node(g, 'Scan', [x], { name: 'scan', outputs: ['sc'], attributes: [graphAttr('body', body), attr.int('num_scan_inputs', 1)] });
  body.ownerNode = scan;
  g.addOutput(ifNode.output());
  g.addOutput(scan.output());
  return g;
}

describe('printGraph', () => {
  it('prints values, initializers, constants, omitted inputs and domains', () => {
    expect(printModel(dense())).toBe(
      text(
        'graph main (x: f32[batch,64], ids: i64[batch,seq]) -> (r: f32[batch,?], b2) opset {"":14,"com.microsoft":1}',
        '  unused @u[3 f32]',
        '  %c = Constant() {value=<f32[2x3]>}',
        '  %y = MatMul(%x, @w[64x96 f32])',
        '  %z = Gemm(%y, @w2[96x32 f32], @b[32 f32]) {alpha=0.5, transB=1}',
        '  %a, %b2 = Split(%z) {axis=-1}',
        '  %q = com.microsoft.MatMulIntegerToFloat(%a, _, %c)',
        '  %r = Mul(%q, @s[f32])',
      ),
    );
  });

  it('prints subgraphs as indented blocks, one attribute per line', () => {
    expect(printGraph(branchy())).toBe(
      text(
        'graph main (cond: bool[], x: f32[4]) -> (out, sc)',
        '  %n = Neg(%x)',
        '  %out = If(%cond) {',
        '    else_branch=graph else () -> (e) {',
        '      %e = Identity(%x)',
        '    }',
        '    then_branch=graph then () -> (t) {',
        '      %t = Relu(%n)',
        '    }',
        '  }',
        '  %sc = Scan(%x) {',
        '    body=graph body (s_in: f32[]) -> (s_out) {',
        '      %s_out = Add(%s_in, %n)',
        '    }',
        '    num_scan_inputs=1',
        '  }',
      ),
    );
  });

  it('shows node names and sorted metadata when asked', () => {
    expect(printGraph(branchy(), { metadata: true, nodeNames: true })).toBe(
      text(
        'graph main (cond: bool[], x: f32[4]) -> (out, sc)',
        '  neg: %n = Neg(%x)  # b="two words" qarvd.pass=fold',
        '  if: %out = If(%cond) {  # qarvd.note=branch',
        '    else_branch=graph else () -> (e) {',
        '      Identity: %e = Identity(%x)',
        '    }',
        '    then_branch=graph then () -> (t) {',
        '      Relu: %t = Relu(%n)',
        '    }',
        '  }',
        '  scan: %sc = Scan(%x) {',
        '    body=graph body (s_in: f32[]) -> (s_out) {',
        '      Add: %s_out = Add(%s_in, %n)',
        '    }',
        '    num_scan_inputs=1',
        '  }',
      ),
    );
  });

  it('prints every attribute type readably, sorted by name', () => {
    const g = new Graph({ name: 'attrs' });
    const x = new Value('x');
    g.addInput(x);
    node(g, 'Custom', [x], { domain: 'test', outputs: ['o'], attributes: allAttributes() });
    expect(printGraph(g)).toBe(
      text(
        'graph attrs (x) -> ()',
        '  %o = test.Custom(%x) {f1=1.0, f2=0.1, f3=1e-7, f4=-inf, f5=123457000.0, f6=0.666667, floats=[0.5, 2.0], i=9007199254740993, ' +
          'ints=[1, -1, 0], raw=<sparse tensor>, s="say \\"hi\\"", strs=["a", ""], t=<i64[]>, ts=[<f32[2]>, <u8[1x2]>]}',
      ),
    );
  });

  it('formats floats with up to 6 significant digits, always as floats', () => {
    expect([1, 0.5, -2.25, Math.fround(0.1), 1e-7, 1234567, 3.14159265, -0, NaN, Infinity].map(formatFloat)).toEqual([
      '1.0', '0.5', '-2.25', '0.1', '1e-7', '1234570.0', '3.14159', '-0.0', 'nan', 'inf',
    ]);
  });

  it('prints a graph input that has an initializer as a value with a default, and model-local functions', () => {
    const f32x2 = tensorType(DataType.FLOAT, [2]);
    const m = modelFromProto(
      {
        opset_import: [{ domain: 'local', version: 1 }, { domain: '', version: 17 }],
        functions: [{ domain: 'local', name: 'MyFn', input: ['a', 'b'], output: ['c'] }],
        graph: {
          name: 'main',
          input: [{ name: 'w', type: f32x2 }, { name: 'x', type: f32x2 }],
          initializer: [{ name: 'w', data_type: DataType.FLOAT, dims: [2], float_data: [1, 2] }],
          node: [{ op_type: 'MyFn', domain: 'local', input: ['w', 'x'], output: ['y'] }],
          output: [{ name: 'y', type: f32x2 }],
        },
      },
      { file: 'synthetic.onnx', baseDir: undefined },
    );
    expect(printModel(m)).toBe(
      text(
        'graph main (w: f32[2] = @w, x: f32[2]) -> (y: f32[2]) opset {"":17,"local":1}',
        '  %y = local.MyFn(%w, %x)',
        'function local.MyFn(%a, %b) -> (%c)',
      ),
    );
  });
});

describe('printModel on a real fixture (not synthetic)', () => {
  it('starts the stories260K printout with its signature and first nodes', () => {
    const lines = printModel(loadModel(fixture('stories260K/stories260K.onnx'))).split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'graph torch_jit (input_ids: i64[batch,seq]) -> (logits: f32[batch,seq,512]) opset {"":14}',
      '  %/emb/Gather_output_0 = Gather(@emb.weight[512x64 f32], %input_ids)',
      '  %/blocks.0/Constant_output_0 = Constant() {value=<i64[]>}',
    ]);
  });
});

describe('printer determinism', () => {
  it('prints the same graph the same way twice', () => {
    const m = dense();
    expect(printModel(m)).toBe(printModel(m));
    const g = branchy();
    expect(printGraph(g, { metadata: true })).toBe(printGraph(g, { metadata: true }));
  });

  it('does not depend on the insertion order of attributes or metadata', () => {
    const build = (reverse: boolean) => {
      const g = new Graph({ name: 'attrs' });
      const x = new Value('x');
      g.addInput(x);
      const attributes = allAttributes();
      const meta: [string, string][] = [['z', '1'], ['a', '2'], ['m', '3']];
      if (reverse) {
        attributes.reverse();
        meta.reverse();
      }
      node(g, 'Custom', [x], { domain: 'test', outputs: ['o'], attributes, metadata: Object.fromEntries(meta) });
      return g;
    };
    const [a, b] = [build(false), build(true)];
    expect([...a.nodes()[0]!.attributes.keys()]).not.toEqual([...b.nodes()[0]!.attributes.keys()]);
    expect(printGraph(a, { metadata: true })).toBe(printGraph(b, { metadata: true }));
    expect(printGraph(a, { metadata: true })).toMatch(/ # a=2 m=3 z=1\n$/);
  });
});

function allAttributes(): Attribute[] {
  return [
    attr.float('f1', 1),
    attr.float('f2', Math.fround(0.1)),
    attr.float('f3', 1e-7),
    attr.float('f4', -Infinity),
    attr.float('f5', 123456789),
    attr.float('f6', 2 / 3),
    { name: 'i', type: AttributeType.INT, value: 9007199254740993n },
    attr.ints('ints', [1, -1, 0]),
    attr.floats('floats', [0.5, 2]),
    attr.string('s', 'say "hi"'),
    { name: 'strs', type: AttributeType.STRINGS, value: [new TextEncoder().encode('a'), new Uint8Array(0)] },
    attr.tensor('t', Tensor.fromBytes('t', DataType.INT64, [], new Uint8Array(8))),
    { name: 'ts', type: AttributeType.TENSORS, value: [Tensor.fromFloat32('t0', [2], new Float32Array(2)), Tensor.fromBytes('t1', DataType.UINT8, [1, 2], new Uint8Array(2))] },
    { name: 'raw', type: AttributeType.SPARSE_TENSOR, value: undefined, raw: {} },
  ];
}

function fixture(path: string): string {
  return fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url));
}
