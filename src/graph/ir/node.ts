import { type Attribute, AttributeType, attrGraphs, attrString } from './attribute.ts';
import type { Graph } from './graph.ts';
import type { Tensor } from './tensor.ts';
import { Value } from './value.ts';

/** What a new node is made of. Outputs are created by the node (named by the caller). */
export interface NodeInit {
  opType: string;
  domain?: string;
  name?: string;
  /** Stem for the name the graph gives an unnamed node on insertion (default: the op type). */
  nameHint?: string;
  inputs?: (Value | null | undefined)[];
  /** Output names, or a count for outputs the graph will name on insertion. */
  outputs?: string[] | number;
  attributes?: Attribute[];
  overload?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

/**
 * An operator application. Inputs are values held by reference (`null` for an omitted
 * optional input); every change to them goes through {@link Node.setInput} and friends so
 * that each value's use list stays exact.
 */
export class Node {
  opType: string;
  domain: string;
  name: string;
  /** Stem for the name given on insertion when `name` is empty. */
  nameHint: string | undefined;
  overload: string | undefined;
  docString: string | undefined;
  /** metadata_props, in order. Passes record their decisions here (read by `convert diff`). */
  readonly metadata: Map<string, string>;
  readonly attributes: Map<string, Attribute>;
  /** NodeProto fields the IR does not interpret (device configurations, unknown fields). */
  extras: Record<string, unknown> | undefined;
  /** The graph the node is in, or undefined when detached. */
  graph: Graph | undefined;
  /** @internal Linked-list neighbours inside the graph. */
  _prev: Node | undefined;
  /** @internal */
  _next: Node | undefined;
  /** @internal True once removed from a graph; iteration skips it. */
  _erased = false;

  private readonly _inputs: (Value | null)[] = [];
  private readonly _outputs: Value[] = [];

  constructor(init: NodeInit) {
    this.opType = init.opType;
    this.domain = init.domain ?? '';
    this.name = init.name ?? '';
    this.nameHint = init.nameHint;
    this.overload = init.overload;
    this.docString = init.docString;
    this.metadata = new Map(Object.entries(init.metadata ?? {}));
    this.attributes = new Map((init.attributes ?? []).map((a) => [a.name, a]));
    this.extras = undefined;
    for (const v of init.inputs ?? []) this.appendInput(v ?? null);
    const outs = init.outputs ?? 1;
    const names = typeof outs === 'number' ? Array.from({ length: outs }, () => '') : outs;
    for (const n of names) this.appendOutput(new Value(n));
  }

  /** A copy of the inputs (`null` where an optional input is omitted). */
  get inputs(): (Value | null)[] {
    return [...this._inputs];
  }

  /** A copy of the outputs. */
  get outputs(): Value[] {
    return [...this._outputs];
  }

  /** The input at `i`, or null when omitted or past the end. */
  input(i: number): Value | null {
    return this._inputs[i] ?? null;
  }

  /** The output at `i` (throws when there is none: a pass asking for it has a bug). */
  output(i = 0): Value {
    const v = this._outputs[i];
    if (!v) throw new Error(`node ${this.label()} has no output ${i}`);
    return v;
  }

  /** Points input `i` at `value`, updating both values' use lists. */
  setInput(i: number, value: Value | null): void {
    if (i < 0 || i > this._inputs.length) throw new Error(`node ${this.label()}: input index ${i} out of range`);
    if (i === this._inputs.length) {
      this.appendInput(value);
      return;
    }
    const old = this._inputs[i];
    if (old === value) return;
    old?._removeUse(this, i);
    this._inputs[i] = value;
    value?._addUse(this, i);
  }

  /** Adds an input at the end. */
  appendInput(value: Value | null): void {
    this._inputs.push(value);
    value?._addUse(this, this._inputs.length - 1);
  }

  /** Detaches every input (their use lists forget this node). Used before removal. */
  clearInputs(): void {
    for (let i = this._inputs.length - 1; i >= 0; i--) this._inputs[i]?._removeUse(this, i);
    this._inputs.length = 0;
  }

  /** Adds an output value produced by this node. */
  appendOutput(value: Value): void {
    if (value.producer()) throw new Error(`value ${value.name} already has a producer`);
    value._setProducer(this, this._outputs.length);
    this._outputs.push(value);
  }

  /** Integer attribute, or `fallback` when absent. */
  intAttr(name: string, fallback: number): number {
    const a = this.attributes.get(name);
    return a && a.type === AttributeType.INT ? Number(a.value) : fallback;
  }

  /** Float attribute, or `fallback` when absent. */
  floatAttr(name: string, fallback: number): number {
    const a = this.attributes.get(name);
    return a && a.type === AttributeType.FLOAT ? (a.value as number) : fallback;
  }

  /** Integer-list attribute, or undefined when absent. */
  intsAttr(name: string): number[] | undefined {
    const a = this.attributes.get(name);
    return a && a.type === AttributeType.INTS ? (a.value as (number | bigint)[]).map(Number) : undefined;
  }

  /** String attribute (UTF-8), or undefined when absent. */
  stringAttr(name: string): string | undefined {
    return attrString(this.attributes.get(name));
  }

  /** Tensor attribute, or undefined when absent. */
  tensorAttr(name: string): Tensor | undefined {
    const a = this.attributes.get(name);
    return a && a.type === AttributeType.TENSOR ? (a.value as Tensor) : undefined;
  }

  /** Every subgraph held by this node's attributes (If branches, Loop/Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes.values()) out.push(...attrGraphs(a));
    return out;
  }

  /** `name (OpType)` or `OpType` for messages. */
  label(): string {
    const op = this.domain ? `${this.domain}.${this.opType}` : this.opType;
    return this.name ? `${this.name} (${op})` : op;
  }
}
