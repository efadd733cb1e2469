import { type Attribute } from '../../graph/ir/attribute.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import { Node } from '../../graph/ir/node.ts';
import { Tensor } from '../../graph/ir/tensor.ts';
import { Value } from '../../graph/ir/value.ts';
import { packInt4, type QuantType } from '../../kernels/quantize.ts';

const QUANT_DTYPE: Record<QuantType, number> = { int8: DataType.INT8, int7: DataType.INT8, uint8: DataType.UINT8, int4: DataType.INT4, uint4: DataType.UINT4 };

/**
 * Builds the replacement of one layer: nodes are collected in order (inserted together by
 * the caller) and every name comes from the graph's name authority, under the layer's name
 * so that a reader of the graph sees which layer each node belongs to.
 */
export class LayerBuilder {
  readonly nodes: Node[] = [];
  /** The initializers this builder created, in order. */
  readonly created: Value[] = [];
  /** The model's default-domain opset, for choosing between equivalent ops. */
  opset: number | undefined;

  constructor(private readonly graph: Graph, private readonly base: string, private readonly layerName: string) {}

  /** Adds a node with one output; names are given when the caller inserts the nodes. */
  node(opType: string, inputs: (Value | null)[], options: { domain?: string; attributes?: Attribute[]; tag: string }): Value {
    return this.nodeOutputs(opType, inputs, 1, options)[0]!;
  }

  /** Adds a node with `outputs` outputs (DynamicQuantizeLinear's three); returns them in order. */
  nodeOutputs(opType: string, inputs: (Value | null)[], outputs: number, options: { domain?: string; attributes?: Attribute[]; tag: string }): Value[] {
    const n = new Node({ opType, domain: options.domain ?? '', nameHint: `${this.base}/${options.tag}`, inputs, outputs, attributes: options.attributes, metadata: { 'qarvd.layer': this.layerName } });
    this.nodes.push(n);
    return Array.from({ length: outputs }, (_, i) => n.output(i));
  }

  /** A new initializer holding `t` (named after the layer). */
  constant(tag: string, make: (name: string) => Tensor): Value {
    const v = this.graph.createInitializer(`${this.base}/${tag}`, make);
    this.created.push(v);
    return v;
  }

  scalarF32(tag: string, x: number): Value {
    return this.constant(tag, (n) => Tensor.fromFloat32(n, [], Float32Array.of(x)));
  }

  vectorF32(tag: string, x: Float32Array): Value {
    return this.constant(tag, (n) => Tensor.fromFloat32(n, [x.length], x));
  }

  indices(tag: string, idx: Int32Array): Value {
    const data = BigInt64Array.from(idx, (k) => BigInt(k));
    return this.constant(tag, (n) => Tensor.fromBytes(n, DataType.INT64, [idx.length], new Uint8Array(data.buffer)));
  }

  /**
   * Integer tensor of a quantized type; int4/uint4 are packed two per byte as ONNX stores them.
   * 8-bit values given as an Int8Array/Uint8Array become the tensor's bytes without a copy:
   * the caller hands them over and must not change them afterwards.
   */
  quantized(tag: string, type: QuantType, dims: number[], values: ArrayLike<number>): Value {
    return this.constant(tag, (n) => Tensor.fromBytes(n, QUANT_DTYPE[type], dims, quantBytes(type, values)));
  }
}

/** Raw bytes of quantized values in `type`'s ONNX storage. */
export function quantBytes(type: QuantType, values: ArrayLike<number>): Uint8Array {
  if (type === 'int4' || type === 'uint4') return packInt4(values, type === 'int4');
  // A weight's quantized values are handed over as they are (a W8 model's worth of bytes not copied).
  if ((type === 'int8' || type === 'int7') && values instanceof Int8Array) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (values instanceof Uint8Array && type === 'uint8') return values;
  if (type === 'int8' || type === 'int7') return new Uint8Array(Int8Array.from(values).buffer);
  return Uint8Array.from(values);
}
