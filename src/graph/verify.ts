import { AttributeType, attrGraphs } from './ir/attribute.ts';
import type { Graph } from './ir/graph.ts';
import type { Model } from './ir/model.ts';
import type { Node } from './ir/node.ts';
import type { Value } from './ir/value.ts';

/** What a {@link VerifyIssue} is about. */
export type VerifyIssueKind = 'producer' | 'uses' | 'order' | 'name' | 'output' | 'opset' | 'initializer';

/** One way in which a model breaks the IR's invariants; the message names the graph, node and value. */
export interface VerifyIssue {
  readonly kind: VerifyIssueKind;
  readonly message: string;
}

/** Thrown by {@link assertValid}; carries every issue found. */
export class VerifyError extends Error {
  readonly issues: readonly VerifyIssue[];

  constructor(issues: readonly VerifyIssue[], context?: string) {
    const head = `${context ? `${context}: ` : ''}invalid model (${issues.length} issue${issues.length === 1 ? '' : 's'})`;
    super([head, ...issues.map((i) => `  [${i.kind}] ${i.message}`)].join('\n'));
    this.name = 'VerifyError';
    this.issues = issues;
  }
}

/**
 * Checks the invariants every pass must keep, in the main graph and recursively in
 * subgraphs (which see the values of enclosing graphs defined before their owning node):
 *
 * 1. `producer`: a node's outputs name it as producer at their index; graph inputs and
 *    initializers have no producer; no value is defined twice; a value records the graph
 *    that defines it.
 * 2. `uses`: each `node.input(i) === v` has exactly one matching entry in `v.uses()`, and every
 *    use points back at a node of the model whose input is `v`.
 * 3. `order`: every input is defined before it is used (graph inputs, initializers, earlier
 *    node outputs, or values of enclosing scopes defined before the owning node).
 * 4. `name`: value names are unique across the model ('' marks an omitted optional output and
 *    is exempt unless the value is used); non-empty node names are unique.
 * 5. `output`: each graph output is defined in the graph's scope.
 * 6. `opset`: every domain a node uses is imported ('' and 'ai.onnx' are one domain), unless
 *    the node calls a model-local function.
 * 7. `initializer`: an initializer has a tensor named like its value, is registered under
 *    that name, and only registered initializers carry a tensor.
 *
 * Issues come in graph order, so the result is deterministic.
 */
export function verifyModel(model: Model): VerifyIssue[] {
  return new Verifier(model).run();
}

/**
 * Throws a {@link VerifyError} listing every issue when the model is invalid.
 * @param context who is asking (a pass name), put in front of the message.
 */
export function assertValid(model: Model, context?: string): void {
  const issues = verifyModel(model);
  if (issues.length > 0) throw new VerifyError(issues, context);
}

interface Definition {
  graph: Graph;
  where: string;
}

class Verifier {
  private readonly issues: VerifyIssue[] = [];
  private readonly liveNodes = new Set<Node>();
  private readonly graphPath = new Map<Graph, string>();
  private readonly definitions = new Map<Value, Definition>();
  private readonly valueNames = new Map<string, string>();
  private readonly nodeNames = new Map<string, string>();
  /** Graphs whose walk is in progress: their values defined so far are visible. */
  private readonly active = new Set<Graph>();
  private readonly walked = new Set<Graph>();
  private readonly imported = new Set<string>();
  private readonly functions = new Set<string>();
  private readonly missingDomains = new Map<string, { first: string; count: number }>();

  constructor(private readonly model: Model) {
    for (const d of model.opsetImports.keys()) this.imported.add(normalDomain(d));
    for (const f of model.functions) this.functions.add(functionKey(String(f.domain ?? ''), String(f.name ?? '')));
  }

  run(): VerifyIssue[] {
    const root = this.model.graph;
    this.index(root, root.name || '(main)');
    this.graph(root);
    for (const [domain, { first, count }] of this.missingDomains) {
      this.issue('opset', `domain "${domain}"${domain === '' ? ' (default ONNX)' : ''} is used by ${count} node(s) (first: ${first}) but the model imports no opset for it`);
    }
    return this.issues;
  }

  private index(g: Graph, path: string): void {
    if (this.graphPath.has(g)) return;
    this.graphPath.set(g, path);
    for (const n of g) {
      this.liveNodes.add(n);
      for (const [attrName, a] of n.attributes) {
        const subs = attrGraphs(a);
        subs.forEach((s, k) => this.index(s, `${path}/${n.name || n.opType}.${attrName}${a.type === AttributeType.GRAPHS ? `[${k}]` : ''}`));
      }
    }
  }

  private graph(g: Graph): void {
    const path = this.graphPath.get(g)!;
    const at = `graph ${path}`;
    this.walked.add(g);
    this.active.add(g);
    const own: Value[] = [];
    const define = (v: Value, where: string, exemptEmptyName: boolean): void => {
      const prior = this.definitions.get(v);
      if (prior) {
        this.issue('producer', `${where}: ${ref(v)} is already defined (${prior.where})`);
        return;
      }
      this.definitions.set(v, { graph: g, where });
      own.push(v);
      if (v.graph !== g) {
        const recorded = v.graph ? `graph ${this.graphPath.get(v.graph) ?? v.graph.name}` : 'no graph';
        this.issue('producer', `${where}: ${ref(v)} is defined in ${at} but records ${recorded}`);
      }
      this.valueName(v, where, exemptEmptyName);
    };

    const inits = g.initializers;
    const inputs = new Set(g.inputs);
    for (const v of g.inputs) {
      const where = `${at} input ${ref(v)}`;
      if (v.producer()) this.issue('producer', `${where} has a producer (${v.producer()!.label()})`);
      if (v.initializer && inits.get(v.name) !== v) this.issue('initializer', `${where} carries a tensor but is not an initializer of the graph`);
      define(v, where, false);
    }
    for (const [key, v] of inits) {
      const where = `${at} initializer ${ref(v)}`;
      if (key !== v.name) this.issue('initializer', `${where} is registered under the name "${key}"`);
      if (!v.initializer) this.issue('initializer', `${where} has no tensor`);
      else if (v.initializer.name !== v.name) this.issue('initializer', `${where} has a tensor named "${v.initializer.name}"`);
      if (v.producer()) this.issue('producer', `${where} has a producer (${v.producer()!.label()})`);
      if (!inputs.has(v)) define(v, where, false);
    }

    for (const n of g) {
      const where = `${at} node ${n.label()}`;
      if (n.name !== '') {
        const prior = this.nodeNames.get(n.name);
        if (prior) this.issue('name', `${where}: node name "${n.name}" is already taken by ${prior}`);
        else this.nodeNames.set(n.name, where);
      }
      this.opset(n, where);
      n.inputs.forEach((v, i) => {
        if (!v) return;
        const matching = v.uses().filter((u) => u.node === n && u.inputIndex === i).length;
        if (matching !== 1) {
          this.issue('uses', `${where} input ${i} is ${ref(v)}, whose use list has ${matching} entries for it (expected 1)`);
        }
        if (!this.visible(v)) this.issue('order', `${where} input ${i} uses ${ref(v)} ${this.whyInvisible(v)}`);
      });
      for (const [attrName, a] of n.attributes) for (const s of attrGraphs(a)) {
        if (this.walked.has(s)) this.issue('producer', `${where} attribute ${attrName}: the subgraph is also held elsewhere in the model`);
        else this.graph(s);
      }
      n.outputs.forEach((o, k) => {
        const owhere = `${where} output ${k} ${ref(o)}`;
        if (o.producer() !== n || o.outputIndex !== k) {
          const p = o.producer();
          this.issue('producer', `${owhere} records producer ${p ? `${p.label()} at output ${o.outputIndex}` : 'none'}`);
        }
        if (o.initializer) this.issue('initializer', `${owhere} carries a tensor but is not an initializer`);
        define(o, owhere, true);
      });
    }

    g.outputs.forEach((o, k) => {
      if (this.visible(o)) return;
      const d = this.definitions.get(o);
      const p = o.producer();
      const why = d ? ` (it is defined in graph ${this.graphPath.get(d.graph)})` : p && !this.liveNodes.has(p) ? ` (its producer ${p.label()} is not in the model)` : '';
      this.issue('output', `${at} output ${k} ${ref(o)} is not produced in the graph's scope${why}`);
    });

    for (const v of own) {
      for (const u of v.uses()) {
        if (!this.liveNodes.has(u.node)) {
          this.issue('uses', `${ref(v)} (${at}) lists a use by ${u.node.label()} input ${u.inputIndex}, which is not a node of the model`);
        } else if (u.node.input(u.inputIndex) !== v) {
          const actual = u.node.input(u.inputIndex);
          this.issue('uses', `${ref(v)} (${at}) lists a use by ${u.node.label()} input ${u.inputIndex}, but that input is ${actual ? ref(actual) : 'empty'}`);
        }
      }
    }
    this.active.delete(g);
  }

  /** True when `v` is defined earlier in a graph whose walk is in progress (this one or an enclosing one). */
  private visible(v: Value): boolean {
    const d = this.definitions.get(v);
    return d !== undefined && this.active.has(d.graph);
  }

  private whyInvisible(v: Value): string {
    const d = this.definitions.get(v);
    if (d) return `outside its scope (defined in graph ${this.graphPath.get(d.graph)})`;
    const p = v.producer();
    if (p && !this.liveNodes.has(p)) return `produced by ${p.label()}, which is not in the model`;
    if (p) return `before its producer ${p.label()} (graph ${p.graph ? this.graphPath.get(p.graph) : '?'})`;
    if (v.graph && this.graphPath.has(v.graph)) return `not yet defined (it belongs to graph ${this.graphPath.get(v.graph)})`;
    return 'that is not defined anywhere in the model';
  }

  private valueName(v: Value, where: string, exemptEmptyName: boolean): void {
    if (v.name === '') {
      if (!exemptEmptyName) this.issue('name', `${where} has an empty name`);
      else if (v.useCount > 0 || v.isGraphOutput()) this.issue('name', `${where} has an empty name but is used`);
      return;
    }
    const prior = this.valueNames.get(v.name);
    if (prior) this.issue('name', `${where}: value name "${v.name}" is already taken by ${prior}`);
    else this.valueNames.set(v.name, where);
  }

  private opset(n: Node, where: string): void {
    const d = normalDomain(n.domain);
    if (this.imported.has(d) || this.functions.has(functionKey(n.domain, n.opType))) return;
    const entry = this.missingDomains.get(d);
    if (entry) entry.count++;
    else this.missingDomains.set(d, { first: where, count: 1 });
  }

  private issue(kind: VerifyIssueKind, message: string): void {
    this.issues.push({ kind, message });
  }
}

function normalDomain(d: string): string {
  return d === 'ai.onnx' ? '' : d;
}

function functionKey(domain: string, name: string): string {
  return `${normalDomain(domain)}\u0000${name}`;
}

function ref(v: Value): string {
  return v.name === '' ? '%<unnamed>' : `%${v.name}`;
}
