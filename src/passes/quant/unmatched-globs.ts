/**
 * `include` / `exclude` patterns that select nothing. A pattern that matches no layer is not an
 * error (a config is often shared by models whose layers differ: an `lm_head` one of them has),
 * but silence hid a mistyped exclude while the layer it meant was quantized anyway; so each such
 * pattern is named in a warning with the layer names nearest to it.
 */
import { globToRegExp } from './glob.ts';

/** How many of the nearest layer names a warning lists. */
const SUGGESTIONS = 3;

/**
 * Edit distance from glob `pattern` to `name`, where `*` takes any run of characters and `?` any
 * one at no cost: how far the pattern is from matching the name.
 */
export function globDistance(pattern: string, name: string): number {
  let prev = Array.from({ length: name.length + 1 }, (_, j) => j);
  for (let i = 1; i <= pattern.length; i++) {
    const p = pattern[i - 1]!;
    const row = [p === '*' ? prev[0]! : prev[0]! + 1];
    for (let j = 1; j <= name.length; j++) {
      row[j] = p === '*' ? Math.min(prev[j]!, row[j - 1]!) : Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (p === '?' || p === name[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[name.length]!;
}

/**
 * The {@link SUGGESTIONS} names nearest to `pattern`, one per name shape (block indices aside,
 * `blocks.0` as `blocks.4`: the blocks' `q` layers are one suggestion, not one per block).
 * Among equally near shapes the rarest come first: a pattern far from every name
 * (`/lm_head/*` on a model whose head is `/MatMul`) most often meant a one-off layer outside
 * the repeated blocks, a head or an embedding.
 */
function nearestLayers(pattern: string, names: readonly string[]): string[] {
  const shapes = new Map<string, { name: string; index: number; count: number }>();
  names.forEach((name, index) => {
    const shape = name.replace(/\.\d+/g, '.#');
    const known = shapes.get(shape);
    if (known) known.count++;
    else shapes.set(shape, { name, index, count: 1 });
  });
  return [...shapes.values()]
    .map((s) => ({ ...s, d: globDistance(pattern, s.name) }))
    .sort((a, b) => a.d - b.d || a.count - b.count || a.index - b.index)
    .slice(0, SUGGESTIONS)
    .map((s) => s.name);
}

/**
 * One warning line per pattern of `include` / `exclude` that matches none of `names` (the node
 * names of the model's linear layers), listing the {@link SUGGESTIONS} names nearest to it and,
 * when it matches some of `others` (the graph's other named nodes, e.g. a Conv), the first of those.
 */
export function unmatchedPatternWarnings(names: readonly string[], include: readonly string[], exclude: readonly string[], others: readonly { name: string; opType: string }[] = []): string[] {
  const lines: string[] = [];
  for (const [option, patterns] of [['include', include], ['exclude', exclude]] as const) {
    for (const pattern of new Set(patterns)) {
      const re = globToRegExp(pattern);
      if (names.some((n) => re.test(n))) continue;
      const near = nearestLayers(pattern, names).map((n) => `'${n}'`);
      const effect = option === 'include' ? 'it selects nothing' : 'it excludes nothing';
      // A pattern naming a Conv (or any other node) matched something: say what, not only what is near.
      const hit = others.filter((o) => re.test(o.name));
      const what = hit.length ? ` (it matches ${hit.length} node(s) that are not MatMul/Gemm layers, first '${hit[0]!.name}' (${hit[0]!.opType}): only MatMul and Gemm layers are quantized)` : '';
      lines.push(`${option} pattern '${pattern}' matches no linear layer of this model, so ${effect}${what}${near.length ? ` (nearest layer names: ${near.join(', ')})` : ''}; patterns match whole node names, '*' any run of characters`);
    }
  }
  return lines;
}
