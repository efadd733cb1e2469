/**
 * `dce`: dead code elimination. Removes the nodes and initializers that no graph output
 * depends on.
 *
 * Rules:
 * 1. The graph outputs are live. A node is live when one of its outputs is live; then all
 *    its inputs are live, and so is every outer value its subgraphs read (captures count as
 *    uses). Everything else in the graph is dead and is removed.
 * 2. Subgraphs are cleaned first, with all their outputs live (a Loop body or If branch
 *    must keep producing every output it declares); what they stop capturing may then die
 *    in the enclosing graph. Nodes inside a removed node's subgraphs go with it and are not
 *    counted separately.
 * 3. An initializer is removed when no node uses it (captures included) once dead nodes are
 *    gone, unless it is a graph output or also a graph input (an overridable default).
 * 4. Must not remove: anything a graph output depends on; graph inputs (the model's
 *    signature stays as it is); unused outputs of live nodes (nodes are kept whole).
 */
import { consumedValues, type Graph } from '../graph/ir/graph.ts';
import type { Node } from '../graph/ir/node.ts';
import type { Value } from '../graph/ir/value.ts';
import { definePass } from './pass.ts';

export default definePass({
  name: 'dce',
  summary: 'Remove nodes and initializers that no graph output depends on',
  options: {},
  statistics: {
    nodesRemoved: 'nodes removed (nodes inside removed subgraphs not counted)',
    initializersRemoved: 'initializers removed',
  },
  run(model) {
    const stats = { nodesRemoved: 0, initializersRemoved: 0 };
    sweep(model.graph, stats);
    return { modified: stats.nodesRemoved + stats.initializersRemoved > 0, stats };
  },
});

function sweep(g: Graph, stats: { nodesRemoved: number; initializersRemoved: number }): void {
  for (const n of g) for (const sub of n.subgraphs()) sweep(sub, stats);

  const live = new Set<Node>();
  const work: Value[] = g.outputs;
  while (work.length) {
    const p = work.pop()!.producer();
    // Values of enclosing graphs are the enclosing graph's business.
    if (!p || p.graph !== g || live.has(p)) continue;
    live.add(p);
    work.push(...reads(p));
  }

  const dead = g.nodes().filter((n) => !live.has(n));
  // Dead nodes use only values of live or dead nodes, and live nodes use no dead value: once
  // every dead node (and its subgraphs) lets go of its inputs, each one can be removed safely.
  for (const n of dead) detachAll(n);
  for (const n of dead) g.remove(n);
  stats.nodesRemoved += dead.length;

  for (const v of g.initializers.values()) {
    if (v.useCount === 0 && !v.isGraphOutput() && !v.isGraphInput()) {
      g.removeInitializer(v);
      stats.initializersRemoved++;
    }
  }
}

/**
 * Values a node reads: {@link consumedValues} (inputs and captures by subgraph nodes) plus
 * outer values a subgraph returns directly as one of its outputs, which no inner node reads.
 */
function reads(n: Node): Value[] {
  const out = consumedValues(n);
  const graphs = n.subgraphs();
  while (graphs.length) {
    const sub = graphs.pop()!;
    for (const o of sub.outputs) if (!definedWithin(o, sub)) out.push(o);
    for (const inner of sub) graphs.push(...inner.subgraphs());
  }
  return out;
}

function definedWithin(v: Value, g: Graph): boolean {
  for (let s = v.graph; s; s = s.parent) if (s === g) return true;
  return false;
}

/** Clears the inputs of a node and of every node in its subgraphs, so outer values forget those uses. */
function detachAll(n: Node): void {
  n.clearInputs();
  for (const sub of n.subgraphs()) for (const inner of sub.allNodes()) inner.clearInputs();
}
