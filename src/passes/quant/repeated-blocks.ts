/**
 * The repeated blocks of a model, from its linear layers' node names: what `scope blocks`
 * quantizes (docs/error-propagation.md).
 *
 * Exporters name a transformer's layers by their module path, with the block's index as a
 * numbered segment: `/blocks.3/ffn/ffn.2/MatMul` (torch.onnx), `/model/layers.3/self_attn/
 * q_proj/MatMul` (optimum), `layers.3.attention.wq` (llama2.c). The layers around the stack —
 * embeddings, time and text projections, the head — carry no such segment, or one that does
 * not repeat a block's layout (`time_embedding.0` and `time_embedding.2` hold one layer each).
 *
 * Rule: a numbered segment `<word>.<n>` or `<word>_<n>` (followed by `/`, `.` or `_`) names a
 * block of a stack when the stack (everything before the number) has at least two indices, at
 * least two of which hold at least two linear layers with the same names after the index.
 * A layer belongs to the first (outermost) such segment of its name.
 *
 * The name read is the layer's module path ({@link modulePath}): the node name, or — for
 * torch.onnx's dynamo exporter, which names nodes `linear_8` — the module scope it records in
 * the node's `pkg.torch.onnx.name_scopes` metadata (`blocks.2.mlp.fc1`).
 */

/** A numbered path segment: the stack's name before it, its index, the rest of the name. */
interface Segment {
  stack: string;
  index: string;
  rest: string;
}

const NUMBERED = /[A-Za-z_][A-Za-z0-9_]*?[._](\d+)(?=[/._])/g;

function segments(name: string): Segment[] {
  const out: Segment[] = [];
  for (const m of name.matchAll(NUMBERED)) {
    const end = m.index! + m[0].length;
    out.push({ stack: name.slice(0, end - m[1]!.length), index: m[1]!, rest: name.slice(end) });
  }
  return out;
}

/**
 * The stacks of repeated blocks among `names` (linear layers' node names): a stack name
 * (e.g. `/blocks.`) for every stack found; empty when the names show none.
 */
export function repeatedStacks(names: readonly string[]): Set<string> {
  // stack → index → the layer names after the index
  const byStack = new Map<string, Map<string, Set<string>>>();
  for (const name of names) {
    for (const s of segments(name)) {
      const indices = byStack.get(s.stack) ?? new Map<string, Set<string>>();
      byStack.set(s.stack, indices);
      const rests = indices.get(s.index) ?? new Set<string>();
      indices.set(s.index, rests);
      rests.add(s.rest);
    }
  }
  const stacks = new Set<string>();
  for (const [stack, indices] of byStack) {
    if (indices.size < 2) continue;
    // Two indices with the same layout of at least two layers: the same block, repeated.
    const layouts = new Map<string, number>();
    for (const rests of indices.values()) {
      if (rests.size < 2) continue;
      const key = [...rests].sort().join('\n');
      layouts.set(key, (layouts.get(key) ?? 0) + 1);
    }
    if ([...layouts.values()].some((count) => count >= 2)) stacks.add(stack);
  }
  return stacks;
}

/** The outermost numbered segment of `name` that is in one of `stacks`, if any. */
function blockSegment(name: string, stacks: ReadonlySet<string>): Segment | undefined {
  return segments(name).find((s) => stacks.has(s.stack));
}

/** The stack `name` belongs to, or undefined. */
export function stackOf(name: string, stacks: ReadonlySet<string>): string | undefined {
  return blockSegment(name, stacks)?.stack;
}

/** The block `name` belongs to, as the stack's name and the index (`/blocks.3`), or undefined for a layer outside every stack. */
export function blockOf(name: string, stacks: ReadonlySet<string>): string | undefined {
  const s = blockSegment(name, stacks);
  return s && `${s.stack}${s.index}`;
}

/** The node metadata key under which torch.onnx's dynamo exporter records a node's module scopes. */
const NAME_SCOPES = 'pkg.torch.onnx.name_scopes';

/**
 * The module path block detection reads for a layer: the innermost module scope recorded in
 * the node's `pkg.torch.onnx.name_scopes` metadata (the repr of a Python list of cumulative
 * module paths, root `''` first, the node's own name last: `['', 'blocks.2', 'blocks.2.mlp',
 * 'blocks.2.mlp.fc1', 'linear_8']` gives `blocks.2.mlp.fc1/`), or else the node name.
 */
export function modulePath(node: { metadata: ReadonlyMap<string, string> } | undefined, name: string): string {
  const scopes = node?.metadata.get(NAME_SCOPES);
  if (!scopes) return name;
  const entries = [...scopes.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => m[1]!);
  // The trailing `/` lets a layer called directly in a block's forward (`blocks.2`) show its segment.
  return entries.length >= 2 ? `${entries[entries.length - 2]}/` : name;
}
