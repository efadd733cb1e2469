import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { type Attribute, AttributeType } from '../ir/attribute.ts';
import { DataType, dtypeName, elementCount, rawByteLength } from '../ir/dtype.ts';
import { Graph } from '../ir/graph.ts';
import { Model } from '../ir/model.ts';
import { Node } from '../ir/node.ts';
import { Tensor, type TensorSource } from '../ir/tensor.ts';
import { Value } from '../ir/value.ts';
import { ModelFileError } from './errors.ts';
import { checkedDataFile } from './data-file.ts';

type Proto = Record<string, any>;

/** Where the model came from: for messages, and to resolve external data locations. */
export interface ProtoSource {
  /** File name used in error messages. */
  file: string;
  /** Folder against which external data locations resolve; undefined forbids external data. */
  baseDir: string | undefined;
}

const TYPED_FIELDS = ['float_data', 'int32_data', 'string_data', 'int64_data', 'double_data', 'uint64_data'] as const;

/** Builds the IR from a decoded ModelProto. Every field the IR does not interpret is kept. */
export function modelFromProto(p: Proto, src: ProtoSource): Model {
  const { ir_version, opset_import, producer_name, producer_version, domain, model_version, doc_string, graph, metadata_props, functions, ...extras } = p;
  if (!graph) throw new ModelFileError(src.file, 'not an ONNX model (no graph in the protobuf)');
  const g = new Graph();
  const model = new Model(g);
  model.irVersion = Number(ir_version ?? 0);
  for (const o of (opset_import ?? []) as Proto[]) {
    model.opsetImports.set(o.domain ?? '', Number(o.version ?? 0));
    model.opsetImportProtos.set(o.domain ?? '', o);
  }
  model.producerName = producer_name;
  model.producerVersion = producer_version;
  model.domain = domain;
  model.modelVersion = model_version === undefined ? undefined : Number(model_version);
  model.docString = doc_string;
  for (const e of (metadata_props ?? []) as Proto[]) model.metadata.set(e.key ?? '', e.value ?? '');
  model.functions = functions ?? [];
  model.extras = extras;
  model.baseDir = src.baseDir;
  new GraphLoader(src).load(graph, g, new Map());
  return model;
}

/** Builds a Tensor from a decoded TensorProto; external data is checked now and read later. */
export function tensorFromProto(p: Proto, src: ProtoSource): Tensor {
  const { name, dims, data_type, raw_data, external_data, data_location, doc_string, ...rest } = p;
  const extras: Proto = {};
  let typed: { field: string; values: any } | undefined;
  for (const [k, v] of Object.entries(rest)) {
    if ((TYPED_FIELDS as readonly string[]).includes(k)) {
      if (!typed || (v as ArrayLike<unknown>).length > 0) typed = { field: k, values: v };
    } else extras[k] = v;
  }
  const shape = ((dims ?? []) as (number | bigint)[]).map(Number);
  const dt = Number(data_type ?? 0);
  const label = name || '(unnamed)';
  const bad = shape.find((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad !== undefined) throw new ModelFileError(src.file, `tensor ${label}: dims [${shape.join(', ')}] hold ${bad}; a tensor's dims must be non-negative integers`);
  if (!Number.isSafeInteger(elementCount(shape))) throw new ModelFileError(src.file, `tensor ${label}: dims [${shape.join(', ')}] give more elements than can be stored`);
  let source: TensorSource;
  if (Number(data_location ?? 0) === 1) {
    source = { kind: 'external', location: externalLocation(label, dt, shape, external_data ?? [], src) };
  } else if (raw_data !== undefined) {
    const need = rawByteLength(dt, elementCount(shape));
    if (dt !== DataType.STRING && raw_data.byteLength !== need) {
      throw new ModelFileError(src.file, `tensor ${label}: raw_data has ${raw_data.byteLength} bytes, its type and shape need ${need}`);
    }
    source = { kind: 'raw', bytes: raw_data };
  } else {
    // As the raw_data length above: a short typed field round-trips into a model onnxruntime
    // refuses (found by a user trial: 3 values for a 384-element weight, exit 0).
    const have = typed?.values.length ?? 0;
    const need = typedValueCount(dt, elementCount(shape));
    if (have !== need) {
      const what = typed ? `${typed.field} has ${have} value${have === 1 ? '' : 's'}` : 'has no data (no raw_data, no typed values, not external)';
      throw new ModelFileError(src.file, `tensor ${label}: ${what}, its type and shape (${dtypeName(dt)}[${shape.join('x')}]) need ${need}`);
    }
    source = { kind: 'typed', field: typed?.field ?? 'float_data', values: typed?.values ?? [] };
  }
  const t = new Tensor(name ?? '', dt, shape, source, extras);
  t.docString = doc_string;
  return t;
}

/**
 * How many entries a TensorProto's typed field holds for `n` elements (onnx.proto): complex
 * numbers take two (real, imaginary), 4-bit types are packed two to an int32_data entry,
 * every other type one.
 */
function typedValueCount(dt: number, n: number): number {
  switch (dt) {
    case DataType.COMPLEX64:
    case DataType.COMPLEX128:
      return 2 * n;
    case DataType.INT4:
    case DataType.UINT4:
    case DataType.FLOAT4E2M1:
      return Math.ceil(n / 2);
    default:
      return n;
  }
}

function externalLocation(label: string, dt: number, shape: number[], entries: Proto[], src: ProtoSource) {
  const kv = new Map(entries.map((e) => [e.key as string, e.value as string]));
  const location = kv.get('location');
  if (!location) throw new ModelFileError(src.file, `tensor ${label}: external data without a location`);
  if (src.baseDir === undefined) throw new ModelFileError(src.file, `tensor ${label}: external data (${location}) needs the model's folder; load from a path`);
  if (isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
    throw new ModelFileError(src.file, `tensor ${label}: external data location ${location} must stay inside the model's folder`);
  }
  const path = checkedDataFile({ file: src.file, baseDir: src.baseDir }, label, location);
  const offset = Number(kv.get('offset') ?? 0);
  // A length of 0 on a non-empty tensor is read as "not given", as onnxruntime reads it (some
  // published exports write "0").
  const expected = rawByteLength(dt, elementCount(shape));
  const given = kv.has('length') ? Number(kv.get('length')) : undefined;
  const length = given === undefined || (given === 0 && expected > 0) ? expected : given;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new ModelFileError(src.file, `tensor ${label}: external data offset ${kv.get('offset') ?? 0} and length ${kv.get('length') ?? length} must be non-negative integers`);
  }
  // A reader takes the tensor's bytes as its type and shape say: a length that disagrees would
  // leave part of a reused read buffer stale, or read a neighbour's bytes.
  if (dt !== DataType.STRING && length !== expected) {
    throw new ModelFileError(src.file, `tensor ${label}: external data length ${length} does not match its type and shape (${dtypeName(dt)}[${shape.join('x')}] is ${expected} bytes)`);
  }
  const size = statSync(path).size;
  if (offset + length > size) {
    throw new ModelFileError(src.file, `tensor ${label}: external data file ${location} is too short (${size} bytes, the tensor needs ${offset}+${length})`);
  }
  return { path, location, offset, length };
}

/** Name scope: a graph's own names, falling back to the enclosing graphs'. */
type Scope = Map<string, Value>;

class GraphLoader {
  constructor(private readonly src: ProtoSource) {}

  load(p: Proto, g: Graph, outer: Scope): void {
    const { node, name, initializer, doc_string, input, output, value_info, metadata_props, ...extras } = p;
    g.name = name ?? '';
    g.docString = doc_string;
    g.extras = extras;
    for (const e of (metadata_props ?? []) as Proto[]) g.metadata.set(e.key ?? '', e.value ?? '');
    const scope: Scope = new Map(outer);
    const reserve = (n: string) => n && g.names.reserve(n);

    for (const vi of (input ?? []) as Proto[]) {
      const v = valueFromInfo(vi);
      g._addLoadedInput(v);
      scope.set(v.name, v);
      reserve(v.name);
    }
    for (const tp of (initializer ?? []) as Proto[]) {
      const t = tensorFromProto(tp, this.src);
      const existing = g.inputs.find((v) => v.name === t.name);
      const v = existing ?? new Value(t.name);
      v.initializer = t;
      g._addLoadedInitializer(v);
      scope.set(v.name, v);
      reserve(v.name);
    }
    // Two passes: create every node and its outputs, then connect inputs, so that a
    // (non-conforming) unsorted graph still loads and the verifier can report it.
    const protos = (node ?? []) as Proto[];
    const nodes = protos.map((np) => {
      const n = this.nodeShell(np, g);
      for (const o of n.outputs) {
        if (o.name) scope.set(o.name, o);
        reserve(o.name);
      }
      reserve(n.name);
      g._appendLoaded(n);
      return n;
    });
    protos.forEach((np, i) => {
      const n = nodes[i]!;
      for (const inName of (np.input ?? []) as string[]) {
        if (inName === '') {
          n.appendInput(null);
          continue;
        }
        const v = scope.get(inName);
        if (!v) throw new ModelFileError(this.src.file, `node ${n.label()} in graph ${g.name || '(main)'}: input ${inName} is not defined`);
        n.appendInput(v);
      }
      this.loadSubgraphs(np, n, g, scope);
    });
    for (const vi of (output ?? []) as Proto[]) {
      const v = scope.get(vi.name ?? '');
      if (!v) throw new ModelFileError(this.src.file, `graph ${g.name || '(main)'}: output ${vi.name} is not produced`);
      applyInfo(v, vi);
      g.addOutput(v);
    }
    for (const vi of (value_info ?? []) as Proto[]) {
      const v = scope.get(vi.name ?? '');
      if (v && v.graph === g) {
        applyInfo(v, vi);
        v.hasValueInfo = true;
      } else g.orphanValueInfo.push(vi);
    }
  }

  private nodeShell(np: Proto, g: Graph): Node {
    const { input, output, name, op_type, domain, attribute, doc_string, overload, metadata_props, ...extras } = np;
    const n = new Node({ opType: op_type ?? '', domain: domain ?? '', name: name ?? '', outputs: (output ?? []) as string[], overload, docString: doc_string });
    for (const e of (metadata_props ?? []) as Proto[]) n.metadata.set(e.key ?? '', e.value ?? '');
    n.extras = Object.keys(extras).length ? extras : undefined;
    for (const ap of (attribute ?? []) as Proto[]) {
      try {
        n.attributes.set(ap.name ?? '', this.attribute(ap));
      } catch (e) {
        // Name the node: a file-level message alone would leave the user searching.
        if (e instanceof ModelFileError) throw new ModelFileError(this.src.file, `node ${n.label()} in graph ${g.name || '(main)'}: ${e.message.slice(this.src.file.length + 2)}`);
        throw e;
      }
    }
    return n;
  }

  private attribute(ap: Proto): Attribute {
    const { name, type, f, i, s, t, g, floats, ints, strings, tensors, graphs, ...extras } = ap;
    const base = { name: name ?? '', extras };
    const ty = Number(type ?? 0);
    switch (ty) {
      case AttributeType.FLOAT: return { ...base, type: ty, value: f ?? 0 };
      case AttributeType.INT: return { ...base, type: ty, value: i ?? 0 };
      case AttributeType.STRING: return { ...base, type: ty, value: s ?? new Uint8Array(0) };
      case AttributeType.TENSOR: return { ...base, type: ty, value: tensorFromProto(t ?? {}, this.src) };
      case AttributeType.FLOATS: return { ...base, type: ty, value: Array.from(floats ?? []) };
      case AttributeType.INTS: return { ...base, type: ty, value: Array.from(ints ?? []) };
      case AttributeType.STRINGS: return { ...base, type: ty, value: strings ?? [] };
      case AttributeType.TENSORS: return { ...base, type: ty, value: ((tensors ?? []) as Proto[]).map((x) => tensorFromProto(x, this.src)) };
      // Subgraphs are filled in once the enclosing scope is complete.
      case AttributeType.GRAPH:
        if (!g) throw new ModelFileError(this.src.file, `attribute ${name || '(unnamed)'} has type GRAPH but holds no graph`);
        return { ...base, type: ty, value: undefined as never, pending: [g] } as unknown as Attribute;
      case AttributeType.GRAPHS: return { ...base, type: ty, value: [] as never, pending: graphs ?? [] } as unknown as Attribute;
      default: return { name: name ?? '', type: ty, value: undefined, raw: ap };
    }
  }

  private loadSubgraphs(np: Proto, n: Node, g: Graph, scope: Scope): void {
    for (const a of n.attributes.values()) {
      const pending = (a as unknown as { pending?: Proto[] }).pending;
      if (!pending) continue;
      const graphs = pending.map((gp) => {
        const sub = new Graph({ parent: g });
        sub.ownerNode = n;
        this.load(gp, sub, scope);
        return sub;
      });
      delete (a as unknown as { pending?: Proto[] }).pending;
      (a as { value: unknown }).value = a.type === AttributeType.GRAPH ? graphs[0] : graphs;
    }
  }
}

function valueFromInfo(vi: Proto): Value {
  const v = new Value(vi.name ?? '');
  applyInfo(v, vi);
  return v;
}

function applyInfo(v: Value, vi: Proto): void {
  const { name: _name, type, doc_string, ...extras } = vi;
  if (type !== undefined) v.type = type;
  if (doc_string !== undefined) v.docString = doc_string;
  if (Object.keys(extras).length) v.infoExtras = extras;
}
