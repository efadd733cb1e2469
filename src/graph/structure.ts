/**
 * The cheap structural checks that run on every conversion, before the first pass and after
 * the last, whether or not `--verify` asks for the full {@link verifyModel}: a graph that
 * onnxruntime would reject for its structure (a cycle, a node without op_type, an input
 * defined nowhere, an op from a domain the model does not import, two values or two nodes of
 * one graph with the same name) is refused with the node named, instead of being written
 * out. Nodes merely out of topological order are not refused here: onnxruntime sorts them
 * itself and loads such a model (`--verify` reports them). One walk over the nodes with a set
 * of visible values: linear in the model's size, with no per-use bookkeeping (that is what
 * `--verify` adds).
 */
import { attrGraphs } from './ir/attribute.ts';
import type { Graph } from './ir/graph.ts';
import type { Model } from './ir/model.ts';
import type { Node } from './ir/node.ts';
import type { Value } from './ir/value.ts';
import type { VerifyIssue } from './verify.ts';

/**
 * Returns the structural problems of `model` (at most `max`), in graph order; empty when
 * none. Subgraphs see the values of enclosing graphs defined before their owning node.
 */
export function structuralIssues(model: Model, max = 5): VerifyIssue[] {
  const issues: VerifyIssue[] = [];
  const imported = new Set([...model.opsetImports.keys()].map(normalDomain));
  const functions = new Set(model.functions.map((f) => `${normalDomain(String(f.domain ?? ''))}\u0000${String(f.name ?? '')}`));
  const defaultOpset = model.opsetImports.get('') ?? model.opsetImports.get('ai.onnx');
  if (defaultOpset !== undefined && !(Number.isInteger(defaultOpset) && defaultOpset >= 1)) {
    issues.push({ kind: 'opset', message: `the model imports the default ONNX opset at version ${defaultOpset}; expected a positive integer` });
  }
  const walk = (g: Graph, path: string, outer: ReadonlySet<Value>): void => {
    const visible = new Set(outer);
    // onnxruntime refuses a graph where two values or two nodes share a name ("Duplicate
    // definition of name", "two nodes with same node name"): a pass renaming one by hand does it.
    const valueNames = new Map<string, Value>();
    const nodeNames = new Set<string>();
    const define = (v: Value, where: string): void => {
      visible.add(v);
      if (v.name === '') return;
      const prior = valueNames.get(v.name);
      if (prior === undefined) valueNames.set(v.name, v);
      else if (prior !== v && issues.length < max) issues.push({ kind: 'name', message: `${where}: value name "${v.name}" is defined twice in graph ${path}` });
    };
    for (const v of g.inputs) define(v, `graph ${path} input %${v.name}`);
    for (const v of g.initializers.values()) define(v, `graph ${path} initializer %${v.name}`);
    let disorder = false;
    for (const n of g) {
      if (issues.length >= max) return;
      const where = `graph ${path} node ${n.label()}`;
      if (n.name !== '') {
        if (nodeNames.has(n.name)) issues.push({ kind: 'name', message: `${where}: node name "${n.name}" is used by another node of graph ${path}` });
        nodeNames.add(n.name);
      }
      if (n.opType === '') issues.push({ kind: 'producer', message: `${where} has no op_type` });
      else if (!imported.has(normalDomain(n.domain)) && !functions.has(`${normalDomain(n.domain)}\u0000${n.opType}`)) {
        issues.push({ kind: 'opset', message: `${where} is from domain "${n.domain}", which the model does not import` });
      }
      n.inputs.forEach((v, i) => {
        if (!v || visible.has(v)) return;
        const p = v.producer();
        if (p && p.graph === g) disorder = true;
        else issues.push({ kind: 'order', message: `${where} input ${i} %${v.name} is not defined in its scope` });
      });
      for (const [name, sub] of n.attributes) for (const s of attrGraphs(sub)) walk(s, `${path}/${n.name || n.opType}.${name}`, visible);
      for (const o of n.outputs) define(o, `${where} output %${o.name}`);
    }
    const cycle = disorder && issues.length < max ? cycleIssue(g, path) : undefined;
    if (cycle) issues.push(cycle);
    g.outputs.forEach((o, k) => {
      if (!visible.has(o) && issues.length < max) issues.push({ kind: 'output', message: `graph ${path} output ${k} %${o.name} is not produced in the graph` });
    });
  };
  walk(model.graph, model.graph.name || '(main)', new Set());
  return issues.slice(0, max);
}

/** A node reads a value produced later in its graph: the cycle, if that is one (else nodes are merely out of order). */
function cycleIssue(g: Graph, path: string): VerifyIssue | undefined {
  const nodes = g.nodes();
  const inGraph = new Set(nodes);
  // Kahn's algorithm over same-graph edges: what it cannot place lies on or behind a cycle.
  const pending = new Map<Node, number>();
  const users = new Map<Node, Node[]>();
  for (const n of nodes) {
    const producers = new Set(n.inputs.map((v) => v?.producer()).filter((p): p is Node => p !== undefined && p !== null && inGraph.has(p)));
    pending.set(n, producers.size);
    for (const p of producers) users.set(p, [...(users.get(p) ?? []), n]);
  }
  const ready = nodes.filter((n) => pending.get(n) === 0);
  let placed = 0;
  while (ready.length) {
    const n = ready.pop()!;
    placed++;
    for (const u of users.get(n) ?? []) {
      const left = pending.get(u)! - 1;
      pending.set(u, left);
      if (left === 0) ready.push(u);
    }
  }
  if (placed < nodes.length) {
    const stuck = nodes.find((n) => pending.get(n)! > 0)!;
    return { kind: 'order', message: `graph ${path} has a cycle: ${nodes.length - placed} node(s) depend, directly or not, on their own outputs (first: node ${stuck.label()})` };
  }
  return undefined;
}

function normalDomain(d: string): string {
  return d === 'ai.onnx' ? '' : d;
}
