import type { Graph } from './graph.ts';
import type { Tensor } from './tensor.ts';

/** ONNX AttributeProto.AttributeType numbers. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

/**
 * A node attribute. Values the IR interprets are typed; sparse tensors and type protos stay
 * as their decoded protobuf (`raw`), which a round trip writes back unchanged.
 */
export type AttributeValue =
  | { type: typeof AttributeType.FLOAT; value: number }
  | { type: typeof AttributeType.INT; value: number | bigint }
  | { type: typeof AttributeType.STRING; value: Uint8Array }
  | { type: typeof AttributeType.TENSOR; value: Tensor }
  | { type: typeof AttributeType.GRAPH; value: Graph }
  | { type: typeof AttributeType.FLOATS; value: number[] }
  | { type: typeof AttributeType.INTS; value: (number | bigint)[] }
  | { type: typeof AttributeType.STRINGS; value: Uint8Array[] }
  | { type: typeof AttributeType.TENSORS; value: Tensor[] }
  | { type: typeof AttributeType.GRAPHS; value: Graph[] }
  | { type: number; value: undefined; raw: Record<string, unknown> };

/** One attribute: its name, typed value and the proto fields the IR does not interpret. */
export type Attribute = AttributeValue & {
  name: string;
  /** Uninterpreted AttributeProto fields (doc_string, ref_attr_name, unknown fields), written back as they were. */
  extras?: Record<string, unknown>;
};

const utf8 = new TextDecoder();
const utf8enc = new TextEncoder();

/** Helpers to build attributes with the right type tag. */
export const attr = {
  int: (name: string, value: number): Attribute => ({ name, type: AttributeType.INT, value }),
  float: (name: string, value: number): Attribute => ({ name, type: AttributeType.FLOAT, value }),
  string: (name: string, value: string): Attribute => ({ name, type: AttributeType.STRING, value: utf8enc.encode(value) }),
  ints: (name: string, value: number[]): Attribute => ({ name, type: AttributeType.INTS, value }),
  floats: (name: string, value: number[]): Attribute => ({ name, type: AttributeType.FLOATS, value }),
  tensor: (name: string, value: Tensor): Attribute => ({ name, type: AttributeType.TENSOR, value }),
};

/** Decodes a STRING attribute value as UTF-8. */
export function attrString(a: Attribute | undefined): string | undefined {
  return a && a.type === AttributeType.STRING ? utf8.decode(a.value as Uint8Array) : undefined;
}

/** The subgraphs an attribute holds (GRAPH or GRAPHS), else none. */
export function attrGraphs(a: Attribute): Graph[] {
  if (a.type === AttributeType.GRAPH) return [a.value as Graph];
  if (a.type === AttributeType.GRAPHS) return a.value as Graph[];
  return [];
}
