/**
 * `convert diff`: what changed between two models, in terms a reviewer can check.
 *
 * Rules:
 * 1. Op types are counted over every node (subgraphs included) as `domain.OpType`, the
 *    default domain written bare; the rows follow first appearance in `before`, then in `after`.
 * 2. Graph inputs, outputs and initializers are matched by name; a match whose element type
 *    or shape differs is "changed". Tensor contents are compared (SHA-256 of the bytes) only
 *    with `data: true`; otherwise no weight byte is read, so the diff of models with large
 *    external data costs the size of their protobufs.
 * 3. Linear layers are matched through the metadata the quantization passes leave:
 *    every node emitted for a layer carries `qarvd.layer` = the original node name, the final
 *    one `qarvd.decision`. The original side of a rewritten layer is its MatMul/Gemm node
 *    with its folded bias `Add`, its weight chain and a weight `Constant` (those of them that
 *    are gone from the other model). A layer present on both sides with the same node
 *    (or the same emitted group) is unchanged and only counted.
 * 4. All other nodes are matched by name (unnamed ones by op type and first output name);
 *    a matched node is changed when its op, attributes, inputs or outputs differ, with the
 *    outputs of rewritten layers mapped to their replacements' outputs first.
 * 5. Everything is listed in graph order and depends only on the two models and the paths
 *    as given: the same two files always give the same report.
 */
import { createHash } from 'node:crypto';
import { type Attribute, AttributeType } from '../graph/ir/attribute.ts';
import { DataType, dtypeName } from '../graph/ir/dtype.ts';
import { unpackInt4 } from '../kernels/int4.ts';
import type { Graph } from '../graph/ir/graph.ts';
import type { Model } from '../graph/ir/model.ts';
import type { Node } from '../graph/ir/node.ts';
import type { ReadBuffer, Tensor } from '../graph/ir/tensor.ts';
import type { Value } from '../graph/ir/value.ts';
import { count, diffLayers, nodeKey, opKey, tally } from './diff-layers.ts';
import { allInitializers, weightBytes } from '../graph/weight-bytes.ts';
import type { DiffSchema, ListDiff, ModelDiff, NodeChange, NodeRef, OpCount, TensorSig, ValueSig } from './diff-schema.ts';

export type * from './diff-schema.ts';
export { opKey };

/** Options of {@link diffModels}. */
export interface DiffOptions {
  /** Labels for the two models in the report (the paths as the user gave them). */
  beforeLabel?: string;
  afterLabel?: string;
  /** Compare tensor contents (reads every weight byte once). Default false. */
  data?: boolean;
}

/** Compares two loaded models; see the module doc for the rules. */
export function diffModels(before: Model, after: Model, options: DiffOptions = {}): ModelDiff {
  const data = options.data ?? false;
  const hashes = new Map<Tensor, string>();
  // Weights in a file are read one at a time into one buffer (no buffer per tensor to fault in).
  const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  const hash = (t: Tensor): string => {
    let h = hashes.get(t);
    if (h === undefined) {
      h = createHash('sha256').update(t.bytesVia(scratch)).digest('hex');
      hashes.set(t, h);
    }
    return h;
  };
  const layers = diffLayers(before, after);
  const nodes = diffNodes(before, after, layers.claimedBefore, layers.claimedAfter, layers.rename, data ? hash : undefined);
  const initializers = diffInitializers(before, after, data ? hash : undefined);
  const bytesBefore = weightBytes(before.graph);
  const bytesAfter = weightBytes(after.graph);
  const result: ModelDiff = {
    schema: 'qarvd.diff/1' satisfies DiffSchema,
    before: options.beforeLabel ?? 'before',
    after: options.afterLabel ?? 'after',
    differ: false,
    dataCompared: data,
    model: diffModelFields(before, after),
    opsets: diffOpsets(before, after),
    ops: countOps(before, after),
    nodes: { before: count(before.graph.allNodes()), after: count(after.graph.allNodes()) },
    inputs: diffValues(before.graph.inputs, after.graph.inputs),
    outputs: diffValues(before.graph.outputs, after.graph.outputs),
    initializers,
    weights: { before: bytesBefore, after: bytesAfter, ratio: bytesBefore === 0 ? 1 : bytesAfter / bytesBefore },
    layers: { unchanged: layers.unchanged, rewritten: layers.changes },
    otherNodes: nodes,
  };
  result.differ = differs(result);
  return result;
}

function differs(d: ModelDiff): boolean {
  const list = (l: ListDiff<unknown>) => l.added.length + l.removed.length + l.changed.length > 0;
  return (
    d.model.length > 0 ||
    d.opsets.some((o) => o.before !== o.after) ||
    d.ops.some((o) => o.delta !== 0) ||
    list(d.inputs) ||
    list(d.outputs) ||
    list(d.initializers) ||
    d.layers.rewritten.length > 0 ||
    d.otherNodes.added.length + d.otherNodes.removed.length + d.otherNodes.changed.length > 0
  );
}

// ---------------------------------------------------------------- model, opsets, op counts

function diffModelFields(a: Model, b: Model): ModelDiff['model'] {
  const fields: [string, unknown, unknown][] = [
    ['ir_version', a.irVersion, b.irVersion],
    ['producer_name', a.producerName, b.producerName],
    ['producer_version', a.producerVersion, b.producerVersion],
    ['model_version', a.modelVersion, b.modelVersion],
    ['domain', a.domain, b.domain],
    ['graph_name', a.graph.name, b.graph.name],
  ];
  const show = (v: unknown) => (v === undefined ? '' : String(v));
  return fields.filter(([, x, y]) => show(x) !== show(y)).map(([field, x, y]) => ({ field, before: show(x), after: show(y) }));
}

function diffOpsets(a: Model, b: Model): ModelDiff['opsets'] {
  const domains = [...new Set([...a.opsetImports.keys(), ...b.opsetImports.keys()])];
  return domains.map((d) => ({ domain: d === '' ? 'ai.onnx' : d, before: a.opsetImports.get(d) ?? null, after: b.opsetImports.get(d) ?? null }));
}

function countOps(a: Model, b: Model): OpCount[] {
  const ca = tally(a.graph.allNodes());
  const cb = tally(b.graph.allNodes());
  const keys = [...new Set([...ca.keys(), ...cb.keys()])];
  return keys.map((op) => {
    const x = ca.get(op) ?? 0;
    const y = cb.get(op) ?? 0;
    return { op, before: x, after: y, delta: y - x };
  });
}

// ---------------------------------------------------------------- inputs, outputs, initializers

function valueSig(v: Value): ValueSig {
  const et = v.elemType();
  const shape = v.shape();
  return { name: v.name, dtype: et === undefined ? '?' : dtypeName(et), shape: shape === undefined ? null : shape.map((d) => d ?? null) };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function diffValues(a: Value[], b: Value[]): ListDiff<ValueSig> {
  return diffByName(a.map(valueSig), b.map(valueSig), (x, y) => [
    ...(x.dtype !== y.dtype ? ['dtype'] : []),
    ...(!sameJson(x.shape, y.shape) ? ['shape'] : []),
  ]);
}

function tensorSig(v: Value, hash?: (t: Tensor) => string): TensorSig {
  const t = v.initializer!;
  const s: TensorSig = { name: v.name, dtype: dtypeName(t.dataType), shape: [...t.dims], bytes: t.byteLength };
  if (t.external) s.external = true;
  if (hash) s.sha256 = hash(t);
  return s;
}

function diffInitializers(a: Model, b: Model, hash?: (t: Tensor) => string): ListDiff<TensorSig> {
  const tensors = new Map<TensorSig, Tensor>();
  const sigs = (m: Model) =>
    allInitializers(m.graph).map((v) => {
      const sig = tensorSig(v, hash);
      tensors.set(sig, v.initializer!);
      return sig;
    });
  return diffByName(sigs(a), sigs(b), (x, y) => {
    const sameShape = sameJson(x.shape, y.shape);
    // 8- and 4-bit integers stored in another type (int4-storage): compare the numbers. Only
    // here are the values read a second time, one pair of tensors at a time.
    if (hash && x.dtype !== y.dtype && sameShape) {
      const [vx, vy] = [valuesHash(tensors.get(x)!), valuesHash(tensors.get(y)!)];
      if (vx !== undefined && vy !== undefined) [x.valuesSha256, y.valuesSha256] = [vx, vy];
    }
    const byValue = x.valuesSha256 !== undefined && y.valuesSha256 !== undefined;
    return [
      ...(x.dtype !== y.dtype ? [byValue && x.valuesSha256 === y.valuesSha256 ? 'dtype, same values' : 'dtype'] : []),
      ...(!sameShape ? ['shape'] : []),
      ...(byValue && x.valuesSha256 !== y.valuesSha256 ? ['values'] : []),
      ...(x.sha256 !== undefined && x.dtype === y.dtype && sameShape && x.sha256 !== y.sha256 ? ['data'] : []),
    ];
  });
}

const SMALL_INTEGER_TYPES: readonly number[] = [DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4];

/** SHA-256 of an 8- or 4-bit integer tensor's values as little-endian int16; undefined for other types. */
function valuesHash(t: Tensor): string | undefined {
  if (!SMALL_INTEGER_TYPES.includes(t.dataType)) return undefined;
  const n = t.size;
  const bytes = t.bytes();
  const values =
    t.dataType === DataType.INT4 || t.dataType === DataType.UINT4
      ? unpackInt4(bytes, n, t.dataType === DataType.INT4)
      : t.dataType === DataType.INT8
        ? new Int8Array(bytes.buffer, bytes.byteOffset, n)
        : bytes.subarray(0, n);
  // In pieces: the widened copy of a large tensor never exists at once.
  const h = createHash('sha256');
  const piece = new Int16Array(1 << 20);
  for (let i = 0; i < n; i += piece.length) {
    const m = Math.min(piece.length, n - i);
    for (let j = 0; j < m; j++) piece[j] = values[i + j]!;
    h.update(new Uint8Array(piece.buffer, 0, 2 * m));
  }
  return h.digest('hex');
}

function diffByName<T extends { name: string }>(a: T[], b: T[], compare: (x: T, y: T) => string[]): ListDiff<T> {
  const inB = new Map(b.map((x) => [x.name, x]));
  const inA = new Map(a.map((x) => [x.name, x]));
  const out: ListDiff<T> = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const x of a) if (!inB.has(x.name)) out.removed.push(x);
  for (const y of b) {
    const x = inA.get(y.name);
    if (!x) {
      out.added.push(y);
      continue;
    }
    const what = compare(x, y);
    if (what.length) out.changed.push({ name: y.name, before: x, after: y, what });
    else out.unchanged++;
  }
  return out;
}

// ---------------------------------------------------------------- other nodes

function diffNodes(before: Model, after: Model, claimedB: Set<Node>, claimedA: Set<Node>, rename: Map<string, string>, hash?: (t: Tensor) => string): ModelDiff['otherNodes'] {
  const index = (g: Graph, claimed: Set<Node>) => {
    const m = new Map<string, Node>();
    for (const n of g.allNodes()) {
      if (claimed.has(n)) continue;
      let k = nodeKey(n);
      for (let i = 2; m.has(k); i++) k = `${nodeKey(n)}#${i}`;
      m.set(k, n);
    }
    return m;
  };
  const mb = index(before.graph, claimedB);
  const ma = index(after.graph, claimedA);
  const ref = (key: string, n: Node): NodeRef => ({ name: key, op: opKey(n) });
  const out: ModelDiff['otherNodes'] = { added: [], removed: [], changed: [] };
  for (const [k, n] of mb) if (!ma.has(k)) out.removed.push(ref(k, n));
  for (const [k, n] of ma) {
    const o = mb.get(k);
    if (!o) {
      out.added.push(ref(k, n));
      continue;
    }
    const what = compareNodes(o, n, rename, hash);
    if (what.length) out.changed.push({ name: k, op: opKey(n), what } satisfies NodeChange);
  }
  return out;
}

function compareNodes(b: Node, a: Node, rename: Map<string, string>, hash?: (t: Tensor) => string): string[] {
  const what: string[] = [];
  if (opKey(b) !== opKey(a)) what.push(`op ${opKey(b)} → ${opKey(a)}`);
  const ab = attrSigs(b, hash);
  const aa = attrSigs(a, hash);
  for (const name of [...new Set([...ab.keys(), ...aa.keys()])].sort()) {
    const x = ab.get(name);
    const y = aa.get(name);
    if (x !== y) what.push(`attribute ${name} ${x ?? '(none)'} → ${y ?? '(none)'}`);
  }
  const ib = b.inputs.map((v) => (v ? (rename.get(v.name) ?? v.name) : ''));
  const ia = a.inputs.map((v) => (v ? v.name : ''));
  if (!sameJson(ib, ia)) what.push(`inputs ${list(b.inputs.map((v) => v?.name ?? ''))} → ${list(ia)}`);
  const ob = b.outputs.map((v) => v.name);
  const oa = a.outputs.map((v) => v.name);
  if (!sameJson(ob, oa)) what.push(`outputs ${list(ob)} → ${list(oa)}`);
  return what;
}

function list(names: string[]): string {
  return `(${names.map((n) => n || '_').join(', ')})`;
}

const utf8 = new TextDecoder();

function attrSigs(n: Node, hash?: (t: Tensor) => string): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of n.attributes.values()) m.set(a.name, attrSig(a, hash));
  return m;
}

function attrSig(a: Attribute, hash?: (t: Tensor) => string): string {
  const tensor = (t: Tensor) => `${t.describe()}${hash ? ` sha256:${hash(t).slice(0, 12)}` : ''}`;
  switch (a.type) {
    case AttributeType.FLOAT:
    case AttributeType.INT:
      return String(a.value);
    case AttributeType.STRING:
      return JSON.stringify(utf8.decode(a.value as Uint8Array));
    case AttributeType.FLOATS:
    case AttributeType.INTS:
      return `[${(a.value as (number | bigint)[]).map(String).join(', ')}]`;
    case AttributeType.STRINGS:
      return JSON.stringify((a.value as Uint8Array[]).map((s) => utf8.decode(s)));
    case AttributeType.TENSOR:
      return tensor(a.value as Tensor);
    case AttributeType.TENSORS:
      return `[${(a.value as Tensor[]).map(tensor).join(', ')}]`;
    case AttributeType.GRAPH:
      return `graph(${count((a.value as Graph).allNodes())} nodes)`;
    case AttributeType.GRAPHS:
      return `[${(a.value as Graph[]).map((g) => `graph(${count(g.allNodes())} nodes)`).join(', ')}]`;
    default:
      return `(type ${a.type})`;
  }
}
