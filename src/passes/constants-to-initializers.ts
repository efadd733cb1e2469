/**
 * `constants-to-initializers`: lifts the tensors of `Constant` nodes into initializers.
 *
 * Rules:
 * 1. Applies to `Constant` nodes of the default domain (`''` or `ai.onnx`), in the main graph
 *    and in every subgraph (a subgraph's Constant becomes an initializer of that subgraph).
 * 2. The initializer is named after the Constant's output value and keeps its type and doc
 *    string; every use of the output (captures by nested subgraphs included) is rewired to
 *    it and the Constant node is removed. The tensor is moved, not copied.
 * 3. Lifts the `value` (tensor) attribute, and the simple forms: `value_float` (f32 scalar),
 *    `value_floats` (f32 1-D), `value_int` (i64 scalar), `value_ints` (i64 1-D).
 * 4. Must not fire (counted in `skipped`) for:
 *    a. `sparse_value`, `value_string`, `value_strings`, or a Constant without a usable
 *       attribute (or with more than one, which ONNX forbids);
 *    b. an attribute that refers to a function attribute (`ref_attr_name`);
 *    c. a Constant whose output is a graph output (an initializer would then have to be a
 *       graph output, which some runtimes refuse);
 *    d. a Constant whose output name would collide with another value visible in its graph
 *       (an input or initializer of its graph or an enclosing graph, or another node output
 *       of the same name), as happens when a subgraph shadows an outer name.
 */
import { AttributeType } from '../graph/ir/attribute.ts';
import { DataType } from '../graph/ir/dtype.ts';
import type { Graph } from '../graph/ir/graph.ts';
import type { Node } from '../graph/ir/node.ts';
import { Tensor } from '../graph/ir/tensor.ts';
import { Value } from '../graph/ir/value.ts';
import { definePass } from './pass.ts';

export default definePass({
  name: 'constants-to-initializers',
  summary: 'Lift Constant-node tensors into initializers named after their output',
  description: 'Weights exported as Constant nodes become initializers, so that passes and tools that look at initializers see them.',
  options: {},
  statistics: {
    lifted: 'Constant nodes replaced by an initializer',
    skipped: 'Constant nodes left in place (sparse or string values, graph outputs, name collisions)',
  },
  run(model) {
    let lifted = 0;
    let skipped = 0;
    const names = new NameCounts();
    const graphs: Graph[] = [model.graph];
    while (graphs.length) {
      const g = graphs.pop()!;
      for (const node of g.nodes()) {
        graphs.push(...node.subgraphs());
        if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
        const tensor = liftableTensor(node);
        if (tensor && canLift(g, node, names)) {
          lift(g, node, tensor);
          lifted++;
        } else skipped++;
      }
    }
    return { modified: lifted > 0, stats: { lifted, skipped } };
  },
});

/** The tensor a Constant node stands for, when it is one of the forms this pass lifts (rule 3, 4a, 4b). */
function liftableTensor(node: Node): Tensor | undefined {
  if (node.attributes.size !== 1 || node.outputs.length !== 1) return undefined;
  const a = [...node.attributes.values()][0]!;
  if ((a.extras as { ref_attr_name?: string } | undefined)?.ref_attr_name) return undefined;
  const name = node.output().name;
  switch (a.name) {
    case 'value':
      return a.type === AttributeType.TENSOR ? (a.value as Tensor) : undefined;
    case 'value_float':
      return a.type === AttributeType.FLOAT ? floats(name, [], [a.value as number]) : undefined;
    case 'value_floats':
      return a.type === AttributeType.FLOATS ? floats(name, [(a.value as number[]).length], a.value as number[]) : undefined;
    case 'value_int':
      return a.type === AttributeType.INT ? ints(name, [], [a.value as number | bigint]) : undefined;
    case 'value_ints':
      return a.type === AttributeType.INTS ? ints(name, [(a.value as (number | bigint)[]).length], a.value as (number | bigint)[]) : undefined;
    default:
      return undefined;
  }
}

function floats(name: string, dims: number[], values: number[]): Tensor {
  return Tensor.fromFloat32(name, dims, Float32Array.from(values));
}

function ints(name: string, dims: number[], values: (number | bigint)[]): Tensor {
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return Tensor.fromBytes(name, DataType.INT64, dims, new Uint8Array(data.buffer));
}

/** Rules 4c and 4d. */
function canLift(g: Graph, node: Node, names: NameCounts): boolean {
  const out = node.output();
  if (out.name === '' || g.outputs.includes(out)) return false;
  let definitions = 0;
  for (let scope: Graph | undefined = g; scope; scope = scope.parent) definitions += names.count(scope, out.name);
  return definitions === 1;
}

/**
 * How many distinct values of a graph (inputs, initializers, node outputs) carry each name.
 * Computed once per graph: lifting moves a name from a node output to an initializer, which
 * leaves the counts as they were.
 */
class NameCounts {
  private readonly perGraph = new Map<Graph, Map<string, number>>();

  count(g: Graph, name: string): number {
    let m = this.perGraph.get(g);
    if (!m) {
      const values = new Set<Value>([...g.inputs, ...g.initializers.values()]);
      for (const n of g) for (const o of n.outputs) values.add(o);
      m = new Map();
      for (const v of values) m.set(v.name, (m.get(v.name) ?? 0) + 1);
      this.perGraph.set(g, m);
    }
    return m.get(name) ?? 0;
  }
}

function lift(g: Graph, node: Node, tensor: Tensor): void {
  const out = node.output();
  const init = new Value(out.name, { type: out.type, initializer: tensor });
  init.docString = out.docString;
  init.infoExtras = out.infoExtras;
  init.hasValueInfo = out.hasValueInfo;
  out.replaceAllUsesWith(init);
  g.remove(node);
  // The name moves from the Constant's output to the initializer.
  g.names.release(out.name);
  g.addInitializer(init);
}
