import type { Graph } from './graph.ts';
import type { Node } from './node.ts';
import type { Tensor } from './tensor.ts';
import { AttributeType } from './attribute.ts';

/** One use of a value: `node.inputs[inputIndex]` is the value. */
export interface Use {
  readonly node: Node;
  readonly inputIndex: number;
}

/** A decoded ONNX TypeProto (kept as data: the IR reads element type and shape from it). */
export type TypeProtoData = Record<string, unknown>;

/**
 * An SSA value: a graph input, an initializer, or a node output. It knows its producer and
 * its uses; the uses change only through {@link Node} methods and are handed out as copies,
 * so a pass may edit the graph while it walks a value's uses.
 */
export class Value {
  name: string;
  /** The ONNX type (from the graph's inputs/outputs or value_info); undefined when unknown. */
  type: TypeProtoData | undefined;
  docString: string | undefined;
  /** ValueInfoProto fields the IR does not interpret (metadata_props, unknown fields). */
  infoExtras: Record<string, unknown> | undefined;
  /** True when the loaded model listed this value in value_info (kept on save). */
  hasValueInfo = false;
  /** The initializer tensor when this value is an initializer. */
  initializer: Tensor | undefined;
  /** The graph whose scope defines this value (set when it is added to one). */
  graph: Graph | undefined;

  private _producer: Node | undefined;
  private _outputIndex = -1;
  private readonly _uses: Use[] = [];

  constructor(name: string, options: { type?: TypeProtoData; initializer?: Tensor } = {}) {
    this.name = name;
    this.type = options.type;
    this.initializer = options.initializer;
    this.docString = undefined;
    this.infoExtras = undefined;
  }

  /** The node that produces this value, or undefined for graph inputs and initializers. */
  producer(): Node | undefined {
    return this._producer;
  }

  /** Index of this value among its producer's outputs (-1 when it has no producer). */
  get outputIndex(): number {
    return this._outputIndex;
  }

  /** A copy of the use list, in the order the uses were made. */
  uses(): Use[] {
    return [...this._uses];
  }

  /** Number of uses (cheaper than `uses().length`). */
  get useCount(): number {
    return this._uses.length;
  }

  /** True when the owning graph lists this value among its outputs. */
  isGraphOutput(): boolean {
    return this.graph?.outputs.includes(this) ?? false;
  }

  /** True when the owning graph lists this value among its inputs. */
  isGraphInput(): boolean {
    return this.graph?.inputs.includes(this) ?? false;
  }

  /**
   * The constant tensor behind this value: an initializer that is not also a graph input
   * (a graph input may be overridden at run time), or the value of a `Constant` node.
   * Passes treat both forms alike: exporters emit weights either way.
   */
  constTensor(): Tensor | undefined {
    if (this.initializer) return this.isGraphInput() ? undefined : this.initializer;
    const p = this._producer;
    if (p && p.opType === 'Constant' && p.domain === '') {
      const a = p.attributes.get('value');
      if (a && a.type === AttributeType.TENSOR) return a.value as Tensor;
    }
    return undefined;
  }

  /** Element type number from the TypeProto, if known. */
  elemType(): number | undefined {
    if (this.initializer) return this.initializer.dataType;
    const t = (this.type?.tensor_type as { elem_type?: number } | undefined)?.elem_type;
    return t;
  }

  /** Shape from the TypeProto: numbers for fixed dims, strings for symbolic ones, undefined when unknown. */
  shape(): (number | string | undefined)[] | undefined {
    if (this.initializer) return [...this.initializer.dims];
    const shape = (this.type?.tensor_type as { shape?: { dim?: Record<string, unknown>[] } } | undefined)?.shape;
    if (!shape) return undefined;
    return (shape.dim ?? []).map((d) =>
      d.dim_value !== undefined ? Number(d.dim_value) : (d.dim_param as string | undefined),
    );
  }

  /**
   * Makes every user of this value use `other` instead (graph outputs included when
   * `outputsToo`, which keeps the output's name on `other`'s side untouched).
   */
  replaceAllUsesWith(other: Value, options: { outputsToo?: boolean } = {}): void {
    if (other === this) return;
    for (const use of this.uses()) use.node.setInput(use.inputIndex, other);
    if (options.outputsToo && this.graph) {
      const outs = this.graph.outputs;
      for (let i = 0; i < outs.length; i++) if (outs[i] === this) this.graph.setOutput(i, other);
    }
  }

  /** @internal Called only by Node when it starts using this value. */
  _addUse(node: Node, inputIndex: number): void {
    this._uses.push({ node, inputIndex });
  }

  /** @internal Called only by Node when it stops using this value. */
  _removeUse(node: Node, inputIndex: number): void {
    const i = this._uses.findIndex((u) => u.node === node && u.inputIndex === inputIndex);
    if (i < 0) throw new Error(`internal: ${this.name} has no use by ${node.name || node.opType}#${inputIndex}`);
    this._uses.splice(i, 1);
  }

  /** @internal Called only by Node when it adopts this value as an output. */
  _setProducer(node: Node | undefined, index: number): void {
    this._producer = node;
    this._outputIndex = index;
  }
}
