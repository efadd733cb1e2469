/**
 * `fold-split`: folding a split layer's channel selection into the layer that produces its
 * input (docs/dual-scale-speed.md, "Folding the split into the producer").
 *
 * A dual-scale layer reads its outlier input channels with a Gather, which onnxruntime's CPU
 * kernel copies element by element (5 ms of a 1560-row call on Wan's ffn.2). When the layer's
 * input is a linear layer's output through elementwise ops — ffn.0 → Gelu → ffn.2 — the
 * producer's output columns (weight columns and bias) and the consumer's weight rows can be
 * permuted alike so that the outlier channels come last: the same function (each output
 * column is computed on its own, the elementwise ops act channel by channel), and the emitter
 * reads one contiguous range with a Slice (emit.ts `readChannels`).
 *
 * Rules (anything else is left as it is, with the reason in the report):
 * 1. The consumer is a candidate layer whose S2 outlier channels, found from its weight
 *    exactly as planning finds them (plan.ts `weightOutliers`), are not already last.
 * 2. Walking back from its input, every node is an elementwise op of the default domain whose
 *    constant operands are scalars (every dimension 1), until linear layers
 *    (MatMul/Gemm with a constant weight, findLinearLayers' rules at any K) are reached;
 *    several producers (SwiGLU's gate and up) are permuted alike.
 * 3. Every value on the way (the producers' outputs included) is read only by those nodes
 *    and the consumer, is not a graph output and is not captured by a subgraph.
 * 4. Every permuted tensor (producer weights and biases, the consumer's weight) is an
 *    initializer of the main graph with no other reader.
 * 5. S2 on the permuted row norms must pick exactly the last channels (a tie in the norms
 *    goes to the lower index, so it could pick others); if not, nothing is permuted.
 *
 * It runs before calibration, on the float model: everything after it (calibration
 * statistics, smoothing, reconstruction, bias correction, the calibration table) sees the
 * permuted model, which computes the same function up to float summation order.
 * A permuted tensor that is not in memory (external data) is permuted when it is read, so the
 * fold holds no weight in memory.
 */
import { dtypeName } from '../../graph/ir/dtype.ts';
import { consumedValues, type Graph } from '../../graph/ir/graph.ts';
import type { Model } from '../../graph/ir/model.ts';
import type { Node } from '../../graph/ir/node.ts';
import { alignedView, type ExternalLocation, type ReadBuffer, Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import type { Logger } from '../log.ts';
import type { QuantConfig } from './config.ts';
import { weightMatrixReadInto } from './layer-weights.ts';
import { readWeightInto } from './plan-pool.ts';
import { findLinearLayers, type LinearLayer } from './linear-layers.ts';
import { outlierOptions, weightOutliers } from './plan.ts';
import { weightLabel } from './finite-weights.ts';
import { detectOutliers } from '../../kernels/outliers.ts';
import type { ChannelPermutation } from '../../kernels/permute.ts';

/** One fold: the consumer's outlier channels moved last through its producers. */
export interface SplitFold {
  /** The split layer whose weight rows were permuted. */
  consumer: string;
  /** The layers whose output columns were permuted alike. */
  producers: string[];
  /** The elementwise ops between them, in graph order. */
  through: string[];
  /** Outlier channels, now the last ones. */
  outliers: number;
  K: number;
}

/** What {@link foldSplits} did. */
export interface FoldResult {
  folds: SplitFold[];
  skipped: FoldSkip[];
  /** Puts every permuted tensor back (the model as it was given): for a pass that fails before rewriting. */
  restore(): void;
}

/** A split candidate left as it was, and why. */
export interface FoldSkip {
  consumer: string;
  reason: string;
}

/** Ops that act on each element alone (their constant operands must also be scalars). */
const ELEMENTWISE = new Set([
  'Abs', 'Add', 'Cast', 'Ceil', 'Clip', 'Cos', 'Div', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Identity',
  'LeakyRelu', 'Log', 'Max', 'Min', 'Mish', 'Mul', 'Neg', 'Pow', 'Reciprocal', 'Relu', 'Round', 'Selu', 'Sigmoid', 'Sign', 'Sin',
  'Softplus', 'Softsign', 'Sqrt', 'Sub', 'Tanh', 'ThresholdedRelu',
]);

/**
 * Applies every fold the rules allow to `model` (in place) for the candidate `layers`.
 * @returns the folds made and, per candidate whose input cannot be folded, the reason (for
 *   every candidate, split or not: the caller keeps those of the layers it splits)
 */
export function foldSplits(model: Model, layers: readonly LinearLayer[], config: QuantConfig): FoldResult {
  const g = model.graph;
  const folds: SplitFold[] = [];
  const skipped: FoldSkip[] = [];
  // The tensors each fold replaced, to put back if the pass fails before rewriting (restore).
  const replaced: [Value, Tensor][] = [];
  const restore = () => {
    for (const [v, t] of replaced.reverse()) v.initializer = t;
    replaced.length = 0;
  };
  if (!config.dualScale) return { folds, skipped, restore };
  // Weights in a data file are read one after another into one buffer (no weight is kept).
  const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  for (const layer of layers) {
    // Each fold replaces tensors: read the graph afresh so every layer sees the current ones.
    const current = linearByNode(g).get(layer.node);
    if (!current) continue;
    // The graph first: only a layer that could be folded has its weight read here (a model in
    // external data is read once more for those layers only).
    const found = findProducers(g, current);
    if (typeof found === 'string') {
      skipped.push({ consumer: current.name, reason: found });
      continue;
    }
    const { outliers: detected, norms } = weightOutliers(weightMatrixReadInto(current, scratch), current.K, current.N, config, weightLabel(current));
    const outliers = detected.indices;
    if (outliers.length === 0 || isTail(outliers, current.K)) continue;
    const order = outliersLast(outliers, current.K);
    // The permuted rows have the same norms, reordered: S2 on them is S2 on the permuted weight.
    if (!isTail(detectOutliers(Float64Array.from(order, (k) => norms[k]!), outlierOptions(config)).indices, current.K)) {
      skipped.push({ consumer: current.name, reason: 'after permuting, S2 picks other channels (tied row norms); left as it was' });
      continue;
    }
    replaced.push(...permute(current, found.producers, order));
    folds.push({ consumer: current.name, producers: found.producers.map((p) => p.name), through: found.through.map((n) => n.opType), outliers: outliers.length, K: current.K });
  }
  return { folds, skipped, restore };
}

/** Every linear layer of the main graph (any K, no include/exclude), by node. */
function linearByNode(g: Graph): Map<Node, LinearLayer> {
  return new Map(findLinearLayers(g, { minK: 0 }).layers.map((l) => [l.node, l]));
}

function isTail(indices: Int32Array, K: number): boolean {
  const first = K - indices.length;
  return indices.every((k, i) => k === first + i);
}

/** New channel i is old channel order[i]: the normal channels in their order, then the outliers in theirs. */
function outliersLast(outliers: Int32Array, K: number): Int32Array {
  const moved = new Uint8Array(K);
  for (const k of outliers) moved[k] = 1;
  const order = new Int32Array(K);
  let i = 0;
  for (let k = 0; k < K; k++) if (!moved[k]) order[i++] = k;
  order.set(outliers, i);
  return order;
}

/** The producers of `consumer`'s input through elementwise ops (rules 2–4), or why there are none. */
function findProducers(g: Graph, consumer: LinearLayer): { producers: LinearLayer[]; through: Node[] } | string {
  const byOutput = new Map<Value, LinearLayer>();
  for (const l of linearByNode(g).values()) byOutput.set(l.output, l);
  const through = new Set<Node>();
  const producers = new Set<LinearLayer>();
  const values = new Set<Value>();
  const stack = [consumer.input];
  while (stack.length) {
    const v = stack.pop()!;
    if (values.has(v)) continue;
    values.add(v);
    const producer = byOutput.get(v);
    if (producer) {
      producers.add(producer);
      continue;
    }
    const p = v.producer();
    if (!p || p.graph !== g) return `its input reaches ${v.name}, which no linear layer with a constant weight produces`;
    if (p.domain !== '' || !ELEMENTWISE.has(p.opType) || p.subgraphs().length) return `its input passes through ${p.label()}, not an elementwise op`;
    if (p.outputs.length !== 1) return `${p.label()} has ${p.outputs.length} outputs`;
    through.add(p);
    for (const x of p.inputs) {
      if (!x) continue;
      const t = x.constTensor();
      if (!t) stack.push(x);
      else if (t.dims.some((d) => d !== 1)) return `${p.label()} has a constant ${x.name} of shape [${t.dims.join('x')}], not a scalar`;
    }
  }
  if (producers.size === 0) return 'no producing linear layer';
  const readers = new Set<Node>([...through, consumer.node]);
  const captured = capturedBySubgraphs(g);
  for (const v of values) {
    if (v.isGraphOutput()) return `${v.name} is a graph output`;
    if (captured.has(v)) return `${v.name} is read inside a subgraph`;
    const other = v.uses().find((u) => !readers.has(u.node));
    if (other) return `${v.name} is also read by ${other.node.label()}`;
  }
  for (const p of producers) {
    if (p.N !== consumer.K) return `${p.name} has ${p.N} output channels, ${consumer.name} reads ${consumer.K}`;
    const why = unshared(g, p.weightValue, p.chain, `${p.name}'s weight`) ?? (p.bias ? unshared(g, p.bias.value, p.bias.chain, `${p.name}'s bias`) : undefined);
    if (why) return why;
  }
  const why = unshared(g, consumer.weightValue, consumer.chain, `${consumer.name}'s weight`);
  if (why) return why;
  const order = new Map(g.nodes().map((n, i) => [n, i]));
  const byOrder = (a: Node, b: Node) => order.get(a)! - order.get(b)!;
  return { producers: [...producers].sort((a, b) => byOrder(a.node, b.node)), through: [...through].sort(byOrder) };
}

/** Why `root` cannot be permuted in place (not an initializer of `g`, or read by more than the layer through `chain`), or undefined. */
function unshared(g: Graph, root: Value, chain: Node[], what: string): string | undefined {
  if (root.producer()?.opType === 'Constant') return `${what} ${root.name} is a Constant node's output, not an initializer (--pass constants-to-initializers before this pass lifts it, and the fold can then be made)`;
  if (!root.initializer || root.isGraphInput() || g.initializers.get(root.name) !== root) return `${what} ${root.name} is not an initializer of the main graph`;
  // `chain` runs from the layer back to the constant: every value from the constant to the layer has one reader.
  for (const v of [root, ...[...chain].reverse().map((n) => n.output(0))]) {
    if (v.useCount !== 1 || v.isGraphOutput()) return `${what} ${root.name} is shared`;
  }
  return undefined;
}

/** Values read by nodes inside subgraphs of the main graph (captured from outside). */
function capturedBySubgraphs(g: Graph): Set<Value> {
  const out = new Set<Value>();
  for (const n of g) {
    if (!n.subgraphs().length) continue;
    const direct = new Set(n.inputs);
    for (const v of consumedValues(n)) if (!direct.has(v)) out.add(v);
  }
  return out;
}

/** Permutes the producers' output channels and the consumer's input channels by `order` (new channel i = old channel order[i]). */
function permute(consumer: LinearLayer, producers: LinearLayer[], order: Int32Array): [Value, Tensor][] {
  // The stored weight is [K, N], or [N, K] when transposed: the axis holding the channels.
  const edits: [Value, number][] = [[consumer.weightValue, consumer.transposed ? 1 : 0]];
  for (const p of producers) {
    edits.push([p.weightValue, p.transposed ? 0 : 1]);
    if (p.bias) edits.push([p.bias.value, -1]);
  }
  const before: [Value, Tensor][] = edits.map(([v]) => [v, v.initializer!]);
  for (const [v, axis] of edits) v.initializer = permuted(v.initializer!, axis, order);
  return before;
}

/** `t` with its slices along `axis` (−1: the last) reordered by `order`; read when needed if `t` is not in memory. */
function permuted(t: Tensor, axis: number, order: Int32Array): Tensor {
  const dims = t.dims;
  const a = axis < 0 ? dims.length - 1 : axis;
  if (dims[a] !== order.length) throw new Error(`internal: fold-split permutes ${order.length} channels of ${t.name} ${t.describe()} on axis ${a}`);
  const element = t.byteLength / t.size;
  if (!Number.isInteger(element)) throw new Error(`internal: fold-split cannot permute ${dtypeName(t.dataType)} tensor ${t.name}`);
  // Bytes per slice along the axis, and how many such runs precede it.
  const inner = dims.slice(a + 1).reduce((p, d) => p * d, 1) * element;
  const outer = dims.slice(0, a).reduce((p, d) => p * d, 1);
  const K = order.length;
  const apply = (src: Uint8Array): Uint8Array => {
    const out = new Uint8Array(src.byteLength);
    if (inner === 4 || inner === 2) {
      // One element per slice (a weight's columns, a bias): copy elements, not 4-byte subarrays
      // (a 1536×8960 weight is 14 M slices).
      const n = src.byteLength / inner;
      const [from, to] = inner === 4 ? [alignedView(src, Uint32Array, n), new Uint32Array(out.buffer)] : [alignedView(src, Uint16Array, n), new Uint16Array(out.buffer)];
      for (let o = 0; o < outer; o++) {
        const base = o * K;
        for (let i = 0; i < K; i++) to[base + i] = from[base + order[i]!]!;
      }
      return out;
    }
    for (let o = 0; o < outer; o++) {
      const base = o * K * inner;
      for (let i = 0; i < K; i++) out.set(src.subarray(base + order[i]! * inner, base + (order[i]! + 1) * inner), base + i * inner);
    }
    return out;
  };
  // A 32-bit matrix in a data file is read into a buffer of its own and reordered there, as a
  // worker does (plan-worker.ts): a second weight-sized buffer per read cost the main thread
  // (one thread, or the save) 7.3 of 20 s on an 8-block Wan-shaped model, most of it in
  // first-touch page faults of the new buffers.
  const location = t.external;
  const source = location && dims.length === 2 && element === 4 ? { location, permutation: { axis: a as 0 | 1, order } } : undefined;
  const produce = source ? () => readPermuted(t.name, source, dims[0]!, dims[1]!) : () => apply(t.bytes());
  // The same tensor otherwise (name, type, shape, doc string, extra fields); only the bytes move.
  const out = new Tensor(t.name, t.dataType, dims, t.isInMemory ? { kind: 'raw', bytes: apply(t.bytes()) } : { kind: 'lazy', produce }, t.extras);
  out.docString = t.docString;
  if (source) externalSources.set(out, source);
  return out;
}

/** A `[rows, cols]` 32-bit matrix read from its data file into a new buffer and reordered in it (as a worker reads it). */
function readPermuted(name: string, source: { location: ExternalLocation; permutation: ChannelPermutation }, rows: number, cols: number): Uint8Array {
  const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  readWeightInto({ name, ...source }, rows, cols, scratch);
  return scratch.bytes;
}

/** A permuted 32-bit matrix whose source is in a data file: where to read it and how to reorder it. */
const externalSources = new WeakMap<Tensor, { location: ExternalLocation; permutation: ChannelPermutation }>();

/**
 * Where a weight fold-split permuted, and that is still in its data file, can be read from,
 * with the permutation to apply: a worker thread then reads and reorders it itself (the
 * conversion's main thread never holds it), as it reads an unpermuted weight.
 */
export function foldedExternalSource(t: Tensor): { location: ExternalLocation; permutation: ChannelPermutation } | undefined {
  return externalSources.get(t);
}

/** One line for the log: how many split layers were folded, and the first reason a split layer was not (`everyReason`: where the others are). */
export function logFolds(log: Logger, { folds, skipped }: { folds: SplitFold[]; skipped: FoldSkip[] }, everyReason: string): void {
  if (!folds.length && !skipped.length) return;
  const made = folds.length ? `${folds.length} layer(s) with outlier channels have them moved last, through their producers (a layer dual-scale auto then leaves single keeps the order: the same function) (first: ${folds[0]!.producers.join(' + ')} → ${[...new Set(folds[0]!.through)].join('/') || 'directly'} → ${folds[0]!.consumer}, ${folds[0]!.outliers} of ${folds[0]!.K} channels)` : 'no split layer folded';
  const left = skipped.length ? `; ${skipped.length} left as they were (first: ${skipped[0]!.consumer}: ${skipped[0]!.reason}${skipped.length > 1 ? `; ${everyReason}` : ''})` : '';
  log.info(`fold-split: ${made}${left}`);
}
