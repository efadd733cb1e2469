import { type Attribute, AttributeType } from './ir/attribute.ts';
import { dtypeName } from './ir/dtype.ts';
import type { Graph } from './ir/graph.ts';
import type { Model } from './ir/model.ts';
import type { Node } from './ir/node.ts';
import type { Tensor } from './ir/tensor.ts';
import type { TypeProtoData, Value } from './ir/value.ts';

/** What {@link printGraph} shows beyond the default form. */
export interface PrintOptions {
  /** Show node metadata_props (sorted by key) as a trailing `# key=value` comment. Default false. */
  metadata?: boolean;
  /** Prefix each node line with `name: ` (unnamed nodes get no prefix). Default false. */
  nodeNames?: boolean;
  /** Opset imports shown in the header as `opset {"":14}`, sorted by domain ({@link printModel} passes the model's). */
  opsetImports?: ReadonlyMap<string, number>;
}

/**
 * Prints a graph in a compact, deterministic text form for golden tests and reviews:
 *
 * ```text
 * graph main (x: f32[batch,64]) -> (y: f32[batch,32]) opset {"":14}
 *   %h = MatMul(%x, @w[64x32 f32])
 *   %a, _ = com.microsoft.Foo(%h, _) {alpha=0.5, axes=[0, 1], mode="x"}
 * ```
 *
 * `%name` is a value, `@name[dims dtype]` an initializer (a graph input that has an
 * initializer is printed as `%name`, and its header entry ends in `= @name`), `_` an
 * omitted optional input or output. Attributes are sorted by name; tensors print as
 * `<dtype[dims]>` and subgraphs as indented `graph … { … }` blocks. Unused initializers
 * are listed as `unused @name[…]` lines before the nodes. The text ends with a newline and
 * depends only on the graph's contents and order, never on object identities.
 */
export function printGraph(graph: Graph, options: PrintOptions = {}): string {
  const p = new Printer(options);
  p.collectInitializers(graph);
  const lines: string[] = [];
  p.graph(graph, '', true, lines);
  return lines.join('\n') + '\n';
}

/** Prints the model's main graph (with its opset imports in the header), then one line per model-local function. */
export function printModel(model: Model, options: Omit<PrintOptions, 'opsetImports'> = {}): string {
  let text = printGraph(model.graph, { ...options, opsetImports: model.opsetImports });
  for (const f of model.functions) {
    const names = (k: string) => ((f[k] ?? []) as string[]).map((n) => `%${n}`).join(', ');
    text += `function ${qualified(String(f.domain ?? ''), String(f.name ?? ''))}(${names('input')}) -> (${names('output')})\n`;
  }
  return text;
}

class Printer {
  /** Values registered as initializers somewhere in the printed graph tree. */
  private readonly initializers = new Set<Value>();

  constructor(private readonly options: PrintOptions) {}

  collectInitializers(g: Graph): void {
    for (const v of g.initializers.values()) this.initializers.add(v);
    for (const n of g) for (const s of n.subgraphs()) this.collectInitializers(s);
  }

  graph(g: Graph, indent: string, top: boolean, out: string[]): void {
    const inputs = new Set(g.inputs);
    const header = [
      'graph',
      ...(g.name ? [g.name] : []),
      `(${g.inputs.map((v) => this.declaration(v, true)).join(', ')})`,
      '->',
      `(${g.outputs.map((v) => this.declaration(v, false)).join(', ')})`,
    ];
    const opsets = this.options.opsetImports;
    if (top && opsets) {
      const sorted = [...opsets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      header.push(`opset {${sorted.map(([d, v]) => `${JSON.stringify(d)}:${v}`).join(',')}}`);
    }
    out.push(indent + header.join(' ') + (top ? '' : ' {'));
    const body = indent + '  ';
    const outputs = new Set(g.outputs);
    for (const v of g.initializers.values()) {
      if (v.useCount === 0 && !outputs.has(v) && !inputs.has(v)) out.push(`${body}unused ${initializerRef(v)}`);
    }
    for (const n of g) this.node(n, body, out);
    if (!top) out.push(`${indent}}`);
  }

  private node(n: Node, indent: string, out: string[]): void {
    const results = n.outputs.map((o) => (o.name === '' ? '_' : `%${o.name}`));
    const call = `${qualified(n.domain, n.opType)}${n.overload ? `:${n.overload}` : ''}(${n.inputs.map((v) => this.arg(v)).join(', ')})`;
    let line = indent + (this.options.nodeNames && n.name ? `${n.name}: ` : '') + (results.length ? `${results.join(', ')} = ` : '') + call;
    const attrs = [...n.attributes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const comment = this.comment(n);
    if (!attrs.some(hasGraph)) {
      if (attrs.length) line += ` {${attrs.map((a) => `${a.name}=${attrValue(a)}`).join(', ')}}`;
      out.push(line + comment);
      return;
    }
    // With subgraphs, one attribute per line keeps the nesting readable.
    out.push(`${line} {${comment}`);
    const inner = indent + '  ';
    for (const a of attrs) {
      if (a.type === AttributeType.GRAPH) {
        const block: string[] = [];
        this.graph(a.value as Graph, inner, false, block);
        block[0] = `${inner}${a.name}=${block[0]!.slice(inner.length)}`;
        out.push(...block);
      } else if (a.type === AttributeType.GRAPHS) {
        out.push(`${inner}${a.name}=[`);
        for (const g of a.value as Graph[]) this.graph(g, inner + '  ', false, out);
        out.push(`${inner}]`);
      } else {
        out.push(`${inner}${a.name}=${attrValue(a)}`);
      }
    }
    out.push(`${indent}}`);
  }

  private comment(n: Node): string {
    if (!this.options.metadata || n.metadata.size === 0) return '';
    const entries = [...n.metadata].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `  # ${entries.map(([k, v]) => `${word(k)}=${word(v)}`).join(' ')}`;
  }

  private arg(v: Value | null): string {
    if (!v) return '_';
    if (this.initializers.has(v) && !v.isGraphInput()) return initializerRef(v);
    return `%${v.name}`;
  }

  /** `name: type` for the header; an input with an initializer ends in `= @name`. */
  private declaration(v: Value, isInput: boolean): string {
    const ty = v.initializer && this.initializers.has(v) ? tensorType(v.initializer) : v.type ? typeString(v.type) : undefined;
    let s = ty ? `${v.name}: ${ty}` : v.name;
    if (isInput && this.initializers.has(v)) s += ` = @${v.name}`;
    return s;
  }
}

function hasGraph(a: Attribute): boolean {
  return a.type === AttributeType.GRAPH || a.type === AttributeType.GRAPHS;
}

function qualified(domain: string, name: string): string {
  return domain ? `${domain}.${name}` : name;
}

function initializerRef(v: Value): string {
  const t = v.initializer!;
  return `@${v.name}[${t.dims.length ? `${t.dims.join('x')} ` : ''}${dtypeName(t.dataType)}]`;
}

function tensorType(t: Tensor): string {
  return `${dtypeName(t.dataType)}[${t.dims.join(',')}]`;
}

/** A TypeProto as `f32[batch,64]` (tensors), `seq<…>`, `opt<…>`, `map<k,…>`; `?` for what is unknown. */
function typeString(t: TypeProtoData): string {
  const tensor = (t.tensor_type ?? t.sparse_tensor_type) as { elem_type?: number; shape?: { dim?: Record<string, unknown>[] } } | undefined;
  if (tensor) {
    const elem = tensor.elem_type ? dtypeName(Number(tensor.elem_type)) : '?';
    const prefix = t.sparse_tensor_type ? 'sparse ' : '';
    if (!tensor.shape) return prefix + elem;
    const dims = (tensor.shape.dim ?? []).map((d) =>
      d.dim_value !== undefined && d.dim_value !== null ? String(Number(d.dim_value)) : typeof d.dim_param === 'string' && d.dim_param ? d.dim_param : '?',
    );
    return `${prefix}${elem}[${dims.join(',')}]`;
  }
  const nested = (k: string) => {
    const inner = (t[k] as { elem_type?: TypeProtoData } | undefined)?.elem_type;
    return inner ? typeString(inner) : '?';
  };
  if (t.sequence_type) return `seq<${nested('sequence_type')}>`;
  if (t.optional_type) return `opt<${nested('optional_type')}>`;
  if (t.map_type) {
    const m = t.map_type as { key_type?: number; value_type?: TypeProtoData };
    return `map<${m.key_type ? dtypeName(Number(m.key_type)) : '?'},${m.value_type ? typeString(m.value_type) : '?'}>`;
  }
  return '?';
}

const utf8 = new TextDecoder();

function attrValue(a: Attribute): string {
  switch (a.type) {
    case AttributeType.FLOAT:
      return formatFloat(a.value as number);
    case AttributeType.INT:
      return String(a.value);
    case AttributeType.STRING:
      return JSON.stringify(utf8.decode(a.value as Uint8Array));
    case AttributeType.TENSOR:
      return `<${(a.value as Tensor).describe()}>`;
    case AttributeType.FLOATS:
      return `[${(a.value as number[]).map(formatFloat).join(', ')}]`;
    case AttributeType.INTS:
      return `[${(a.value as (number | bigint)[]).map(String).join(', ')}]`;
    case AttributeType.STRINGS:
      return `[${(a.value as Uint8Array[]).map((s) => JSON.stringify(utf8.decode(s))).join(', ')}]`;
    case AttributeType.TENSORS:
      return `[${(a.value as Tensor[]).map((t) => `<${t.describe()}>`).join(', ')}]`;
    case AttributeType.SPARSE_TENSOR:
      return '<sparse tensor>';
    case AttributeType.SPARSE_TENSORS:
      return '[<sparse tensors>]';
    case AttributeType.TYPE_PROTO:
      return '<type>';
    case AttributeType.TYPE_PROTOS:
      return '[<types>]';
    default:
      return `<attribute type ${a.type}>`;
  }
}

/** Up to 6 significant digits, always recognisable as a float (`1.0`, `0.5`, `1e-7`, `inf`, `nan`). */
export function formatFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Object.is(x, -0)) return '-0.0';
  const s = String(Number(x.toPrecision(6)));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** A metadata key or value, quoted when it would not read as one word. */
function word(s: string): string {
  return s !== '' && /^[^\s=#"]+$/.test(s) ? s : JSON.stringify(s);
}
