import type { Graph } from '../../graph/ir/graph.ts';
import type { Node } from '../../graph/ir/node.ts';
import type { Value } from '../../graph/ir/value.ts';

/**
 * The one place where a layer is swapped for its replacement: the new nodes go in before
 * `anchor`, every user of `oldOutput` moves to `newOutput` (a graph output keeps its name
 * and type, so the model's interface does not change), then the old nodes and whatever
 * constants only they used are removed — safely, so a node still in use is never dropped.
 */
export function replaceLayer(graph: Graph, anchor: Node, newNodes: Node[], oldOutput: Value, newOutput: Value, oldNodes: Node[]): void {
  graph.insertBefore(anchor, ...newNodes);
  const wasGraphOutput = oldOutput.isGraphOutput();
  oldOutput.replaceAllUsesWith(newOutput, { outputsToo: true });
  const orphans = new Set<Value>();
  for (const n of oldNodes) {
    for (const v of n.inputs) if (v) orphans.add(v);
    graph.remove(n);
  }
  if (wasGraphOutput) {
    const name = oldOutput.name;
    graph.names.release(newOutput.name);
    oldOutput.name = `${name}__replaced`;
    newOutput.name = name;
    newOutput.type = oldOutput.type;
  } else if (oldOutput.hasValueInfo) {
    newOutput.type = oldOutput.type;
    newOutput.hasValueInfo = true;
  }
  removeUnused(graph, orphans);
}

/** Removes constants and constant-producing chains left without users. */
export function removeUnused(graph: Graph, candidates: Set<Value>): void {
  const work = [...candidates];
  while (work.length) {
    const v = work.pop()!;
    if (v.useCount > 0 || v.isGraphOutput() || v.isGraphInput()) continue;
    if (v.initializer && v.graph === graph && graph.initializers.get(v.name) === v) {
      graph.removeInitializer(v);
      continue;
    }
    const p = v.producer();
    if (p && p.graph === graph && p.outputs.every((o) => o.useCount === 0 && !o.isGraphOutput())) {
      const inputs = p.inputs.filter((x): x is Value => x !== null);
      graph.remove(p);
      work.push(...inputs);
    }
  }
}
