import { LazyBytes } from '../proto/codec.ts';
import { DataType } from '../ir/dtype.ts';
import { type Attribute, AttributeType } from '../ir/attribute.ts';
import type { Graph } from '../ir/graph.ts';
import type { Model } from '../ir/model.ts';
import type { Tensor } from '../ir/tensor.ts';
import type { Value } from '../ir/value.ts';

type Proto = Record<string, any>;

/**
 * Decides, per tensor, whether its bytes go inline (`raw_data`) or to the external data
 * file; returns the external_data entries when it writes them out.
 */
export interface TensorSink {
  place(t: Tensor): Proto[] | undefined;
}

/** Turns the IR back into a ModelProto. Field order is fixed by the encoder; this only fills fields. */
export function modelToProto(model: Model, sink: TensorSink): Proto {
  const p: Proto = { ...model.extras };
  p.ir_version = model.irVersion;
  p.opset_import = [...model.opsetImports].map(([domain, version]) => ({ ...(model.opsetImportProtos.get(domain) ?? { domain }), version }));
  setIf(p, 'producer_name', model.producerName);
  setIf(p, 'producer_version', model.producerVersion);
  setIf(p, 'domain', model.domain);
  setIf(p, 'model_version', model.modelVersion);
  setIf(p, 'doc_string', model.docString);
  p.graph = graphToProto(model.graph, sink);
  if (model.metadata.size) p.metadata_props = entries(model.metadata);
  if (model.functions.length) p.functions = model.functions;
  return p;
}

/** Turns one graph (and its subgraphs) into a GraphProto. */
export function graphToProto(g: Graph, sink: TensorSink): Proto {
  const p: Proto = { ...g.extras };
  p.node = g.nodes().map((n) => {
    const np: Proto = { ...(n.extras ?? {}) };
    np.input = n.inputs.map((v) => (v ? v.name : ''));
    np.output = n.outputs.map((v) => v.name);
    if (n.name) np.name = n.name;
    np.op_type = n.opType;
    if (n.domain) np.domain = n.domain;
    if (n.attributes.size) np.attribute = [...n.attributes.values()].map((a) => attributeToProto(a, sink));
    setIf(np, 'doc_string', n.docString);
    setIf(np, 'overload', n.overload);
    if (n.metadata.size) np.metadata_props = entries(n.metadata);
    return np;
  });
  p.name = g.name;
  const inits = [...g.initializers.values()];
  if (inits.length) p.initializer = inits.map((v) => tensorToProto(v.initializer!, sink));
  setIf(p, 'doc_string', g.docString);
  p.input = g.inputs.map(valueInfo);
  p.output = g.outputs.map(valueInfo);
  const infos = valueInfoValues(g).map(valueInfo).concat(g.orphanValueInfo);
  if (infos.length) p.value_info = infos;
  if (g.metadata.size) p.metadata_props = entries(g.metadata);
  return p;
}

/** Turns a tensor into a TensorProto, inline or external as the sink decides. */
export function tensorToProto(t: Tensor, sink: TensorSink): Proto {
  const p: Proto = { ...t.extras };
  p.dims = [...t.dims];
  p.data_type = t.dataType;
  if (t.name) p.name = t.name;
  setIf(p, 'doc_string', t.docString);
  const typed = t.typedValues;
  if (typed) {
    p[typed.field] = typed.values;
    return p;
  }
  const external = sink.place(t);
  if (external) {
    p.external_data = external;
    p.data_location = 1;
  } else {
    // Read when the encoder reaches it: a streamed save holds one tensor's bytes at a time.
    // (A STRING tensor's byte length is not known without its bytes; such raw_data is rare and small.)
    p.raw_data = t.dataType === DataType.STRING ? t.bytes() : new LazyBytes(t.byteLength, () => t.bytes());
  }
  return p;
}

function attributeToProto(a: Attribute, sink: TensorSink): Proto {
  if ('raw' in a) return a.raw;
  const p: Proto = { ...(a.extras ?? {}), name: a.name, type: a.type };
  switch (a.type) {
    case AttributeType.FLOAT: p.f = a.value; break;
    case AttributeType.INT: p.i = a.value; break;
    case AttributeType.STRING: p.s = a.value; break;
    case AttributeType.TENSOR: p.t = tensorToProto(a.value as Tensor, sink); break;
    case AttributeType.GRAPH: p.g = graphToProto(a.value as Graph, sink); break;
    case AttributeType.FLOATS: p.floats = a.value; break;
    case AttributeType.INTS: p.ints = a.value; break;
    case AttributeType.STRINGS: p.strings = a.value; break;
    case AttributeType.TENSORS: p.tensors = (a.value as Tensor[]).map((t) => tensorToProto(t, sink)); break;
    case AttributeType.GRAPHS: p.graphs = (a.value as Graph[]).map((g) => graphToProto(g, sink)); break;
  }
  return p;
}

/** Values that carry a value_info entry: loaded ones, plus typed intermediates a pass added. */
function valueInfoValues(g: Graph): Value[] {
  const out: Value[] = [];
  const seen = new Set<Value>([...g.inputs, ...g.outputs]);
  const consider = (v: Value) => {
    if (!seen.has(v) && v.hasValueInfo && v.name) out.push(v);
    seen.add(v);
  };
  for (const v of g.initializers.values()) consider(v);
  for (const n of g) for (const o of n.outputs) consider(o);
  return out;
}

function valueInfo(v: Value): Proto {
  const p: Proto = { ...(v.infoExtras ?? {}), name: v.name };
  if (v.type !== undefined) p.type = v.type;
  setIf(p, 'doc_string', v.docString);
  return p;
}

function entries(m: Map<string, string>): Proto[] {
  return [...m].map(([key, value]) => ({ key, value }));
}

function setIf(p: Proto, key: string, v: unknown): void {
  if (v !== undefined) p[key] = v;
}
