import { NameAuthority } from './names.ts';
import { Node } from './node.ts';
import type { Tensor } from './tensor.ts';
import { Value } from './value.ts';

/**
 * A graph: inputs, initializers, nodes in order, outputs. Nodes form a linked list so that
 * insertion and removal are O(1) and iteration survives edits: a node removed during a walk
 * is skipped, a node inserted after the current one is visited.
 */
export class Graph {
  name: string;
  docString: string | undefined;
  /** The model-wide authority that names inserted values and nodes. */
  readonly names: NameAuthority;
  /** The enclosing graph for subgraphs (If branches, Loop bodies), else undefined. */
  readonly parent: Graph | undefined;
  /** The node whose attribute holds this subgraph, else undefined. */
  ownerNode: Node | undefined;
  /** GraphProto fields the IR does not interpret (sparse initializers, annotations, unknown fields). */
  extras: Record<string, unknown>;
  /** metadata_props, in order. */
  readonly metadata = new Map<string, string>();
  /** value_info entries whose name matches no value here, kept as loaded. */
  orphanValueInfo: Record<string, unknown>[] = [];

  private readonly _inputs: Value[] = [];
  private readonly _outputs: Value[] = [];
  private readonly _initializers = new Map<string, Value>();
  private _first: Node | undefined;
  private _last: Node | undefined;
  private _count = 0;

  constructor(options: { name?: string; names?: NameAuthority; parent?: Graph } = {}) {
    this.name = options.name ?? '';
    this.parent = options.parent;
    this.names = options.names ?? options.parent?.names ?? new NameAuthority();
    this.docString = undefined;
    this.ownerNode = undefined;
    this.extras = {};
  }

  /** A copy of the graph inputs. */
  get inputs(): Value[] {
    return [...this._inputs];
  }

  /** A copy of the graph outputs. */
  get outputs(): Value[] {
    return [...this._outputs];
  }

  /** Initializer values by name (a copy of the map). */
  get initializers(): Map<string, Value> {
    return new Map(this._initializers);
  }

  /** Number of nodes. */
  get nodeCount(): number {
    return this._count;
  }

  /** A snapshot of the nodes in order: edits made while walking it do not disturb it. */
  nodes(): Node[] {
    return [...this];
  }

  /** Walks the nodes in order, tolerating removal of visited or unvisited nodes. */
  *[Symbol.iterator](): IterableIterator<Node> {
    let cur = this._first;
    while (cur) {
      if (!cur._erased) yield cur;
      // An erased node keeps its forward link, so a walk that sits on it can continue.
      let next = cur._next;
      while (next && next._erased) next = next._next;
      cur = next;
    }
  }

  /** Every node of this graph and of its subgraphs, depth first, in order. */
  *allNodes(): IterableIterator<Node> {
    for (const n of this) {
      yield n;
      for (const g of n.subgraphs()) yield* g.allNodes();
    }
  }

  /** Adds a graph input (the value is named by the authority if unnamed). */
  addInput(value: Value): void {
    this.adopt(value);
    this._inputs.push(value);
  }

  /** Adds a graph output. */
  addOutput(value: Value): void {
    this._outputs.push(value);
  }

  /** Replaces graph output `i`. */
  setOutput(i: number, value: Value): void {
    if (i < 0 || i >= this._outputs.length) throw new Error(`graph ${this.name}: output index ${i} out of range`);
    this._outputs[i] = value;
  }

  /** Removes graph output `i` (calibration adds and removes outputs on a copy). */
  removeOutput(i: number): void {
    this._outputs.splice(i, 1);
  }

  /** Adds an initializer value; its tensor must be set. Names must be unused. */
  addInitializer(value: Value): void {
    if (!value.initializer) throw new Error(`initializer ${value.name} has no tensor`);
    if (this._initializers.has(value.name)) throw new Error(`graph ${this.name}: initializer ${value.name} exists`);
    this.adopt(value);
    value.initializer.name = value.name;
    this._initializers.set(value.name, value);
  }

  /**
   * Creates and adds an initializer under a fresh name derived from `stem`.
   * @param make builds the tensor once the name is known
   */
  createInitializer(stem: string, make: (name: string) => Tensor): Value {
    const name = this.names.unique(stem);
    const value = new Value(name, { initializer: make(name) });
    value.graph = this;
    this._initializers.set(name, value);
    return value;
  }

  /**
   * Moves `values` to the front of the initializer order, in the order given; the others keep
   * theirs. A value that is no longer an initializer here is skipped. The order is where a save
   * writes each tensor in a data file.
   */
  moveInitializersFirst(values: Iterable<Value>): void {
    const first = new Set([...values].filter((v) => this._initializers.get(v.name) === v));
    const rest = [...this._initializers.values()].filter((v) => !first.has(v));
    this._initializers.clear();
    for (const v of [...first, ...rest]) this._initializers.set(v.name, v);
  }

  /** Removes an initializer; refuses when it is still used or is a graph input/output. */
  removeInitializer(value: Value): void {
    if (this._initializers.get(value.name) !== value) throw new Error(`graph ${this.name}: ${value.name} is not an initializer here`);
    if (value.useCount > 0 || value.isGraphOutput()) {
      throw new Error(`cannot remove initializer ${value.name}: still used by ${value.useCount} node(s)`);
    }
    this._initializers.delete(value.name);
    this.names.release(value.name);
  }

  /** Appends a node (or nodes) at the end. */
  append(...nodes: Node[]): void {
    for (const n of nodes) this.link(n, this._last, undefined);
  }

  /** Inserts nodes before `ref`, in the order given. */
  insertBefore(ref: Node, ...nodes: Node[]): void {
    this.checkOwned(ref);
    for (const n of nodes) this.link(n, ref._prev, ref);
  }

  /** Inserts nodes after `ref`, in the order given. */
  insertAfter(ref: Node, ...nodes: Node[]): void {
    this.checkOwned(ref);
    let at = ref;
    for (const n of nodes) {
      this.link(n, at, at._next);
      at = n;
    }
  }

  /**
   * Removes a node. Refuses (throws) when any of its outputs is still used or is a graph
   * output, unless `force` — then the caller takes responsibility for the dangling uses.
   * The node's inputs are detached so their use lists forget it.
   */
  remove(node: Node, options: { force?: boolean } = {}): void {
    this.checkOwned(node);
    if (!options.force) {
      for (const out of node.outputs) {
        if (out.useCount > 0) {
          const users = out.uses().map((u) => u.node.label());
          throw new Error(`cannot remove ${node.label()}: its output ${out.name} is used by ${users.join(', ')}`);
        }
        if (this._outputs.includes(out)) throw new Error(`cannot remove ${node.label()}: ${out.name} is a graph output`);
      }
    }
    node.clearInputs();
    // Nodes inside the removed node's subgraphs stop using outer values too, so that those
    // values' use lists do not keep pointing at nodes that are gone.
    for (const g of node.subgraphs()) for (const inner of g.allNodes()) inner.clearInputs();
    if (node._prev) node._prev._next = node._next;
    else this._first = node._next;
    if (node._next) node._next._prev = node._prev;
    else this._last = node._prev;
    node._erased = true;
    node.graph = undefined;
    this._count--;
  }

  /** Looks up a value by name in this graph's scope (inputs, initializers, node outputs), then the parents'. */
  lookup(name: string): Value | undefined {
    for (const v of this._inputs) if (v.name === name) return v;
    const init = this._initializers.get(name);
    if (init) return init;
    for (const n of this) for (const o of n.outputs) if (o.name === name) return o;
    return this.parent?.lookup(name);
  }

  /**
   * Sorts the nodes topologically, keeping the current order wherever dependencies allow
   * (stable: an already sorted graph is left exactly as it is). Values captured by
   * subgraphs count as inputs of the node that owns the subgraph. Throws on a cycle.
   */
  sort(): void {
    const nodes = this.nodes();
    const position = new Map(nodes.map((n, i) => [n, i]));
    const deps = nodes.map((n) => new Set<number>());
    const dependents: number[][] = nodes.map(() => []);
    nodes.forEach((n, i) => {
      for (const v of consumedValues(n)) {
        const p = v.producer();
        const j = p ? position.get(p) : undefined;
        // j === i (a node reading its own output) is a cycle too: it never becomes ready.
        if (j !== undefined && !deps[i]!.has(j)) {
          deps[i]!.add(j);
          dependents[j]!.push(i);
        }
      }
    });
    const pending = deps.map((d) => d.size);
    const ready = new MinHeap();
    pending.forEach((c, i) => c === 0 && ready.push(i));
    const order: Node[] = [];
    while (ready.size > 0) {
      const i = ready.pop();
      order.push(nodes[i]!);
      for (const j of dependents[i]!) if (--pending[j]! === 0) ready.push(j);
    }
    if (order.length !== nodes.length) {
      const stuck = nodes.filter((_, i) => pending[i]! > 0).map((n) => n.label());
      throw new Error(`graph ${this.name}: cycle among ${stuck.slice(0, 5).join(', ')}${stuck.length > 5 ? ', …' : ''}`);
    }
    this._first = undefined;
    this._last = undefined;
    for (const n of order) {
      n._prev = this._last;
      n._next = undefined;
      if (this._last) this._last._next = n;
      else this._first = n;
      this._last = n;
    }
  }

  /** @internal Links a loaded node without renaming anything (the loader reserved the names). */
  _appendLoaded(node: Node): void {
    this.link(node, this._last, undefined, false);
  }

  /** @internal Registers a loaded initializer without renaming. */
  _addLoadedInitializer(value: Value): void {
    value.graph = this;
    this._initializers.set(value.name, value);
  }

  /** @internal Registers a loaded graph input without renaming. */
  _addLoadedInput(value: Value): void {
    value.graph = this;
    this._inputs.push(value);
  }

  private link(node: Node, prev: Node | undefined, next: Node | undefined, name = true): void {
    if (node.graph) throw new Error(`node ${node.label()} is already in a graph`);
    if (name) {
      // Check every name before reserving any, so that a refused insertion changes nothing.
      const wanted = [node.name, ...node.outputs.map((o) => o.name)].filter((n) => n !== '');
      const clash = wanted.find((n, i) => this.names.has(n) || wanted.indexOf(n) !== i);
      if (clash !== undefined) {
        throw new Error(`graph ${this.name}: a ${clash === node.name ? 'node' : 'value'} named ${clash} exists; ask graph.names.unique() for a fresh name`);
      }
      node.name = node.name === '' ? this.names.unique(node.nameHint ?? node.opType) : this.claim(node.name, 'node');
      node.outputs.forEach((o, i) => this.adopt(o, `${node.name}_output_${i}`));
    } else {
      for (const o of node.outputs) o.graph = this;
    }
    node.graph = this;
    node._erased = false;
    node._prev = prev;
    node._next = next;
    if (prev) prev._next = node;
    else this._first = node;
    if (next) next._prev = node;
    else this._last = node;
    this._count++;
  }

  private adopt(value: Value, fallbackName = 'v'): void {
    value.graph = this;
    value.name = value.name === '' ? this.names.unique(fallbackName) : this.claim(value.name, 'value');
  }

  private claim(name: string, what: string): string {
    if (this.names.has(name)) throw new Error(`graph ${this.name}: a ${what} named ${name} exists; ask graph.names.unique() for a fresh name`);
    this.names.reserve(name);
    return name;
  }

  private checkOwned(node: Node): void {
    if (node.graph !== this) throw new Error(`node ${node.label()} is not in graph ${this.name}`);
  }
}

/** Values a node reads: its inputs and, for nodes with subgraphs, the outer values those capture. */
export function consumedValues(node: Node): Value[] {
  const out: Value[] = [];
  for (const v of node.inputs) if (v) out.push(v);
  for (const g of node.subgraphs()) {
    for (const inner of g.allNodes()) {
      for (const v of inner.inputs) if (v && !isDefinedWithin(v, g)) out.push(v);
    }
    // A subgraph may also return an outer value directly as one of its outputs.
    for (const v of capturedOutputs(g)) out.push(v);
  }
  return out;
}

function capturedOutputs(g: Graph): Value[] {
  const out = g.outputs.filter((v) => !isDefinedWithin(v, g));
  for (const n of g.allNodes()) for (const s of n.subgraphs()) out.push(...s.outputs.filter((v) => !isDefinedWithin(v, g)));
  return out;
}

function isDefinedWithin(v: Value, g: Graph): boolean {
  for (let s = v.graph; s; s = s.parent) if (s === g) return true;
  return false;
}

/** A binary min-heap of integers (node positions), for the stable topological sort. */
class MinHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
