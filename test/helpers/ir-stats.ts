// IR-level facts about a model that a lossless round trip must not change.
import type { Model } from '../../src/graph/ir/model.ts';
import { modelTensors } from '../../src/graph/serde/io.ts';

export interface IrStats {
  irVersion: number;
  opsets: string[];
  inputs: string[];
  outputs: string[];
  initializers: number;
  /** Nodes of the main graph and of every subgraph. */
  nodes: number;
  /** Node count per `domain::op`, sorted by key. */
  ops: Record<string, number>;
  subgraphs: number;
  functions: number;
  /** Tensors (initializers and tensor attributes) and their total raw bytes. */
  tensors: number;
  tensorBytes: number;
  metadata: string[];
}

export function irStats(model: Model): IrStats {
  const g = model.graph;
  const ops = new Map<string, number>();
  let nodes = 0;
  let subgraphs = 0;
  for (const n of g.allNodes()) {
    nodes++;
    subgraphs += n.subgraphs().length;
    const key = `${n.domain}::${n.opType}`;
    ops.set(key, (ops.get(key) ?? 0) + 1);
  }
  let tensors = 0;
  let tensorBytes = 0;
  for (const t of modelTensors(model)) {
    tensors++;
    tensorBytes += t.byteLength;
  }
  return {
    irVersion: model.irVersion,
    opsets: [...model.opsetImports].map(([d, v]) => `${d || 'ai.onnx'}:${v}`),
    inputs: g.inputs.map((v) => v.name),
    outputs: g.outputs.map((v) => v.name),
    initializers: g.initializers.size,
    nodes,
    ops: Object.fromEntries([...ops].sort(([a], [b]) => (a < b ? -1 : 1))),
    subgraphs,
    functions: model.functions.length,
    tensors,
    tensorBytes,
    metadata: [...model.metadata].map(([k, v]) => `${k}=${v}`),
  };
}
