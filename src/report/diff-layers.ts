/**
 * The layer part of `convert diff` (rule 3 of `diff.ts`): which linear layers a pass
 * rewrote, matched through the `qarvd.layer` / `qarvd.decision` node metadata, and how each
 * one's op counts and constant bytes changed.
 */
import type { Graph } from '../graph/ir/graph.ts';
import type { Model } from '../graph/ir/model.ts';
import type { Node } from '../graph/ir/node.ts';
import type { Tensor } from '../graph/ir/tensor.ts';
import { findLinearLayers } from '../passes/quant/linear-layers.ts';
import type { LayerChange, LayerDecision } from './diff-schema.ts';

/** `MatMul`, `com.microsoft.MatMulIntegerToFloat`: the op key used everywhere in the diff. */
export function opKey(n: Pick<Node, 'opType' | 'domain'>): string {
  return n.domain === '' || n.domain === 'ai.onnx' ? n.opType : `${n.domain}.${n.opType}`;
}

/** Op counts in first-appearance order. */
export function tally(nodes: Iterable<Node>): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of nodes) m.set(opKey(n), (m.get(opKey(n)) ?? 0) + 1);
  return m;
}

export function count(it: Iterable<unknown>): number {
  let n = 0;
  for (const _ of it) n++;
  return n;
}

interface LayerSide {
  nodes: Node[];
  decision?: LayerDecision;
}

export interface LayerDiffResult {
  changes: LayerChange[];
  unchanged: number;
  claimedBefore: Set<Node>;
  claimedAfter: Set<Node>;
  /** Output value name of an original layer → the name of its replacement's output. */
  rename: Map<string, string>;
}

/** The nodes each quantized layer was emitted as, by original layer name, in graph order. */
function groups(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.allNodes()) {
    const l = n.metadata.get('qarvd.layer');
    if (l !== undefined) m.set(l, [...(m.get(l) ?? []), n]);
  }
  return m;
}

/** The float form of each linear layer: weight chain, node, folded bias Add, and the Constants only they read. */
function floatLayers(g: Graph): Map<string, { nodes: Node[]; K: number; N: number; op: string }> {
  const { layers, skipped } = findLinearLayers(g, { minK: 1 });
  const m = new Map<string, { nodes: Node[]; K: number; N: number; op: string }>();
  for (const l of layers) {
    const nodes = [...[...l.chain].reverse(), l.node, ...(l.bias?.addNode ? [l.bias.addNode] : [])];
    m.set(l.name, { nodes: [...privateConstants(nodes), ...nodes], K: l.K, N: l.N, op: l.op });
  }
  // Layers skipped for size or selection are still layers (a pass may have left them alone).
  for (const s of skipped) if (s.K !== undefined && s.N !== undefined) m.set(s.name, { nodes: [s.node], K: s.K, N: s.N, op: s.op });
  return m;
}

/** `Constant` nodes whose outputs only `nodes` read (a weight or bias stored as a Constant). */
function privateConstants(nodes: Node[]): Node[] {
  const inside = new Set(nodes);
  const out: Node[] = [];
  for (const n of nodes) {
    for (const v of n.inputs) {
      const p = v?.producer();
      if (p && p.opType === 'Constant' && p.domain === '' && !out.includes(p) && p.outputs.every((o) => !o.isGraphOutput() && o.uses().every((u) => inside.has(u.node)))) out.push(p);
    }
  }
  return out;
}

export function nodeKey(n: Node): string {
  return n.name !== '' ? n.name : `(unnamed ${opKey(n)} → ${n.outputs[0]?.name ?? ''})`;
}

function keysOf(g: Graph): Set<string> {
  const s = new Set<string>();
  for (const n of g.allNodes()) s.add(nodeKey(n));
  return s;
}

function decisionOf(nodes: Node[]): LayerDecision | undefined {
  for (const n of nodes) {
    const raw = n.metadata.get('qarvd.decision');
    if (raw === undefined) continue;
    try {
      const d = JSON.parse(raw) as Record<string, unknown>;
      if (d && typeof d === 'object') return d as unknown as LayerDecision;
    } catch {
      // A malformed decision is reported as no decision; the node delta still shows the change.
    }
  }
  return undefined;
}

export function diffLayers(before: Model, after: Model): LayerDiffResult {
  const gb = groups(before.graph);
  const ga = groups(after.graph);
  const fb = floatLayers(before.graph);
  const fa = floatLayers(after.graph);
  const keysB = keysOf(before.graph);
  const keysA = keysOf(after.graph);
  const names = [...new Set([...fb.keys(), ...gb.keys(), ...fa.keys(), ...ga.keys()])];
  const out: LayerDiffResult = { changes: [], unchanged: 0, claimedBefore: new Set(), claimedAfter: new Set(), rename: new Map() };
  // The float side of a layer: only the nodes that are gone from the other model.
  const floatSide = (f: typeof fb, name: string, otherKeys: Set<string>): Node[] => (f.get(name)?.nodes ?? []).filter((n) => !otherKeys.has(nodeKey(n)));
  for (const name of names) {
    const b: LayerSide = gb.has(name) ? { nodes: gb.get(name)!, decision: decisionOf(gb.get(name)!) } : { nodes: floatSide(fb, name, keysA) };
    const a: LayerSide = ga.has(name) ? { nodes: ga.get(name)!, decision: decisionOf(ga.get(name)!) } : { nodes: floatSide(fa, name, keysB) };
    if (!gb.has(name) && !ga.has(name)) {
      // Float on both sides: unchanged when the node is still there (node changes show in otherNodes).
      if (fb.has(name) && fa.has(name)) out.unchanged++;
      continue;
    }
    if (gb.has(name) && ga.has(name) && sameGroup(b.nodes, a.nodes)) {
      out.unchanged++;
      continue;
    }
    if (b.nodes.length === 0 || a.nodes.length === 0) continue; // appeared or vanished: node-level diff
    const shape = fb.get(name) ?? fa.get(name);
    const decision = a.decision ?? b.decision;
    const change: LayerChange = {
      name,
      op: decision?.op ?? shape?.op ?? opKey(b.nodes[b.nodes.length - 1]!),
      K: decision?.K ?? shape?.K ?? null,
      N: decision?.N ?? shape?.N ?? null,
      direction: ga.has(name) && !gb.has(name) ? 'quantized' : !ga.has(name) ? 'restored' : 'requantized',
      opsBefore: Object.fromEntries(tally(b.nodes)),
      opsAfter: Object.fromEntries(tally(a.nodes)),
      delta: opDelta(b.nodes, a.nodes),
      weightBytes: { before: constBytes(b.nodes), after: constBytes(a.nodes) },
    };
    if (a.decision) change.decision = a.decision;
    else if (b.decision) change.decisionBefore = b.decision;
    if (a.decision && b.decision) change.decisionBefore = b.decision;
    out.changes.push(change);
    for (const n of b.nodes) out.claimedBefore.add(n);
    for (const n of a.nodes) out.claimedAfter.add(n);
    const ob = groupOutput(b.nodes);
    const oa = groupOutput(a.nodes);
    if (ob && oa) out.rename.set(ob, oa);
  }
  return out;
}

function sameGroup(a: Node[], b: Node[]): boolean {
  const sig = (ns: Node[]) => JSON.stringify(ns.map((n) => [nodeKey(n), opKey(n), n.metadata.get('qarvd.decision') ?? '']));
  return sig(a) === sig(b);
}

/** Op-count changes within a layer: ops in the order they appear in the new form, then vanished ones. */
function opDelta(b: Node[], a: Node[]): { op: string; delta: number }[] {
  const cb = tally(b);
  const ca = tally(a);
  const keys = [...new Set([...ca.keys(), ...cb.keys()])];
  return keys.map((op) => ({ op, delta: (ca.get(op) ?? 0) - (cb.get(op) ?? 0) })).filter((d) => d.delta !== 0);
}

/** Bytes of the constants (initializers, Constant outputs) the nodes read, each counted once. */
function constBytes(nodes: Node[]): number {
  const seen = new Set<Tensor>();
  let total = 0;
  const add = (t: Tensor | undefined) => {
    if (t && !seen.has(t)) {
      seen.add(t);
      total += t.byteLength;
    }
  };
  for (const n of nodes) {
    for (const v of n.inputs) if (v) add(v.initializer ?? v.constTensor());
  }
  return total;
}

/** The name of the value a group hands to the rest of the graph (its last outside-used output). */
function groupOutput(nodes: Node[]): string | undefined {
  const inside = new Set(nodes);
  let found: string | undefined;
  for (const n of nodes) {
    for (const o of n.outputs) {
      if (o.isGraphOutput() || o.uses().some((u) => !inside.has(u.node))) found = o.name;
    }
  }
  return found;
}
