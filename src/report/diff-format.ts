/**
 * Prints a {@link ModelDiff} as text (terminal, golden files), GitHub Markdown (a pull
 * request comment) or JSON (the schema in `diff-schema.ts`). Sections come in a fixed order:
 * summary, opset imports, op types, graph inputs and outputs, linear layers, initializers,
 * other nodes; rows in graph order.
 */
import type { LayerChange, LayerDecision, ListDiff, ModelDiff, TensorSig, ValueSig } from './diff-schema.ts';
import { type Align, code, dims, formatBytes, mdTable, type ReportFormat, signed, textTable } from './text.ts';

/**
 * Rows a Markdown list shows before it says how many more there are: a pull-request comment
 * must stay under GitHub's 65,536 characters (found by a user trial: tiny-arvd-l's W4 diff was
 * 58 K characters, 81% of it the initializer list). The linear layers get more room — they
 * are what a reviewer reads; a Wan2.1-1.3B-shaped model has about 300 — the initializers and
 * other nodes, whose counts say most of it, less. Text and JSON list every row.
 */
export const MD_LAYER_ROWS = 320;
/** See {@link MD_LAYER_ROWS}. */
export const MD_LIST_ROWS = 40;
/**
 * Characters after which a Markdown list adds no more rows (only its "… N more" row): row
 * caps alone let a 400-layer model with long names reach 67 K characters (found by review).
 * The 5.5 K below GitHub's 65,536 hold the headings and "more" rows of the sections after it.
 */
export const MD_CHARS = 60_000;
/** Characters a name or a change's text keeps in a Markdown cell before it ends in "…". */
export const MD_CELL_CHARS = 300;

/** The report in the requested format; always ends with a newline. */
export function formatDiff(d: ModelDiff, format: ReportFormat): string {
  if (format === 'json') return JSON.stringify(d, null, 2) + '\n';
  return (format === 'md' ? markdown(d) : text(d)).join('\n') + '\n';
}

/** `dual-scale W4A8 · 32 outlier rows · +Gather×2 +MatMul×1`: the per-layer line after the name and dims. */
export function describeLayer(l: LayerChange): string {
  const parts: string[] = [];
  const d = l.decision;
  if (d) {
    const was = l.decisionBefore;
    const changed = was && (was.mode !== d.mode || was.bits !== d.bits || was.format !== d.format || was.outliers !== d.outliers);
    parts.push(`${modeLabel(d)} ${d.bits}${d.compute === 'float' ? ' kept fp32' : ''}${changed ? ` (was ${modeLabel(was)} ${was.bits} ${was.format})` : ''}`);
    if (d.mode === 'dual') parts.push(`${d.outliers} outlier rows`);
  } else parts.push(l.direction === 'restored' ? 'restored to float' : 'rewritten');
  if (l.delta.length) parts.push(deltaText(l));
  return parts.join(' · ');
}

function modeLabel(d: LayerDecision): string {
  return d.mode === 'dual' ? 'dual-scale' : 'single-scale';
}

function deltaText(l: LayerChange): string {
  return l.delta.map((x) => `${x.delta > 0 ? '+' : '-'}${x.op}×${Math.abs(x.delta)}`).join(' ');
}

function summary(d: ModelDiff): string {
  const n = d.layers.rewritten.length;
  const dual = d.layers.rewritten.filter((l) => l.decision?.mode === 'dual').length;
  const single = d.layers.rewritten.filter((l) => l.decision?.mode === 'single').length;
  const counts = new Map<string, number>();
  for (const { decision: x } of d.layers.rewritten) {
    if (!x) continue;
    const key = `${x.method} ${x.bits} ${x.format}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  // Mixed bit-widths (scope outer-w8: the layers around the blocks at 8 bits): each with its count, most first.
  const how = counts.size > 1 ? [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, c]) => `${k} ×${c}`) : [...counts.keys()];
  const modes = dual + single > 0 ? ` (${dual} dual-scale, ${single} single-scale${how.length ? `; ${how.join(', ')}` : ''})` : '';
  const parts = [`${n} linear layer${n === 1 ? '' : 's'} rewritten${modes}, ${d.layers.unchanged} unchanged`];
  const short = (l: ListDiff<unknown>) => [`${l.added.length} added`, `${l.removed.length} removed`, `${l.changed.length} changed`].filter((x) => !x.startsWith('0 ')).join(', ');
  if (short(d.inputs)) parts.push(`inputs ${short(d.inputs)}`);
  if (short(d.outputs)) parts.push(`outputs ${short(d.outputs)}`);
  const o = d.otherNodes;
  const other = [`${o.added.length} added`, `${o.removed.length} removed`, `${o.changed.length} changed`].filter((x) => !x.startsWith('0 ')).join(', ');
  parts.push(`nodes ${d.nodes.before} → ${d.nodes.after}${other ? ` (other nodes: ${other})` : ''}`);
  const w = d.weights;
  parts.push(`weights ${formatBytes(w.before)} → ${formatBytes(w.after)} (×${w.ratio.toFixed(3)})`);
  return parts.join(' · ');
}

function dataNote(d: ModelDiff): string {
  return d.dataCompared ? 'tensor contents compared by sha256' : 'tensor contents not compared; --data compares them';
}

function shapeText(v: ValueSig): string {
  return `${v.dtype}[${v.shape === null ? '?' : v.shape.map((x) => (x === null ? '?' : String(x))).join(',')}]`;
}

function tensorText(t: TensorSig): string[] {
  return [t.dtype, t.shape.length ? t.shape.join('×') : 'scalar', formatBytes(t.bytes), ...(t.sha256 ? [t.sha256.slice(0, 12)] : [])];
}

/** The tensor columns of a changed initializer: `before → after` where they differ. */
function changedTensor(c: { before: TensorSig; after: TensorSig }): string[] {
  const b = tensorText(c.before);
  const a = tensorText(c.after);
  return b.map((x, i) => (x === a[i] ? x : `${x} → ${a[i]}`));
}

function counts(l: ListDiff<unknown>): string {
  return `${l.added.length} added, ${l.removed.length} removed, ${l.changed.length} changed, ${l.unchanged} unchanged`;
}

function changedWhat(l: { what: string[] }): string {
  return `(${l.what.join(', ')})`;
}

// ---------------------------------------------------------------- text

function text(d: ModelDiff): string[] {
  const out = [`convert diff ${d.before} → ${d.after}`];
  if (!d.differ) {
    out.push(`no differences: ${d.nodes.before} nodes, ${d.layers.unchanged} linear layers, weights ${formatBytes(d.weights.before)} (${dataNote(d)})`);
    return out;
  }
  out.push(`graphs differ: ${summary(d)}`, '');
  const opsetChanged = d.opsets.some((o) => o.before !== o.after);
  const show = (v: number | null) => (v === null ? '—' : String(v));
  out.push(`opset imports${opsetChanged ? '' : ': unchanged'}`);
  out.push(...textTable(['domain', 'before', 'after'], d.opsets.map((o) => [o.domain, show(o.before), show(o.after)]), ['left', 'right', 'right'], '  '));
  for (const m of d.model) out.push(`model ${m.field}: ${m.before || '(none)'} → ${m.after || '(none)'}`);
  out.push('', 'op types');
  out.push(...textTable(['op', 'before', 'after', 'delta'], d.ops.map((o) => [o.op, String(o.before), String(o.after), signed(o.delta)]), ['left', 'right', 'right', 'right'], '  '));
  for (const [title, l] of [['graph inputs', d.inputs], ['graph outputs', d.outputs]] as const) {
    out.push('', `${title}: ${counts(l)}`);
    const rows = [
      ...l.removed.map((v) => ['-', v.name, shapeText(v)]),
      ...l.added.map((v) => ['+', v.name, shapeText(v)]),
      ...l.changed.map((c) => ['~', c.name, `${shapeText(c.before)} → ${shapeText(c.after)}`]),
    ];
    if (rows.length) out.push(...textTable(['', '', ''], rows, ['left', 'left', 'left'], '  ').slice(1));
  }
  out.push('', `linear layers: ${d.layers.rewritten.length} rewritten, ${d.layers.unchanged} unchanged`);
  if (d.layers.rewritten.length) {
    const rows = d.layers.rewritten.map((l) => [l.name, `[${dims(l.K ?? undefined, l.N ?? undefined)}]`, `${describeLayer(l)} · constants ${formatBytes(l.weightBytes.before)} → ${formatBytes(l.weightBytes.after)}`]);
    out.push(...textTable(['', '', ''], rows, ['left', 'left', 'left'], '  ').slice(1));
  }
  const inits = d.initializers;
  out.push('', `initializers: ${counts(inits)} (${dataNote(d)})`);
  const rows = [
    ...inits.removed.map((t) => ['-', t.name, ...tensorText(t)]),
    ...inits.added.map((t) => ['+', t.name, ...tensorText(t)]),
    ...inits.changed.map((c) => ['~', c.name, ...changedTensor(c), changedWhat(c)]),
  ];
  if (rows.length) out.push(...textTable([], rows, ['left', 'left', 'left', 'left', 'right', 'left', 'left'], '  ').slice(1));
  const o = d.otherNodes;
  out.push('', `other nodes: ${o.added.length} added, ${o.removed.length} removed, ${o.changed.length} changed`);
  for (const n of o.removed) out.push(`  - ${n.name} (${n.op})`);
  for (const n of o.added) out.push(`  + ${n.name} (${n.op})`);
  for (const n of o.changed) out.push(`  ~ ${n.name} (${n.op}): ${n.what.join('; ')}`);
  return out;
}

// ---------------------------------------------------------------- markdown

function markdown(d: ModelDiff): string[] {
  const out = [`### \`convert diff\` ${code(d.before)} → ${code(d.after)}`, ''];
  if (!d.differ) {
    out.push(`**No differences:** ${d.nodes.before} nodes, ${d.layers.unchanged} linear layers, weights ${formatBytes(d.weights.before)} (${dataNote(d)}).`);
    return out;
  }
  out.push(`**Graphs differ:** ${summary(d)}`, '');
  const show = (v: number | null) => (v === null ? '—' : String(v));
  out.push('#### Opset imports', '', ...mdTable(['domain', 'before', 'after'], d.opsets.map((o) => [o.domain, show(o.before), show(o.after)]), ['left', 'right', 'right']), '');
  if (d.model.length) out.push(...mdTable(['model field', 'before', 'after'], d.model.map((m) => [m.field, m.before, m.after]), ['left', 'left', 'left']), '');
  out.push('#### Op types', '', ...mdTable(['op', 'before', 'after', 'Δ'], d.ops.map((o) => [code(o.op), String(o.before), String(o.after), signed(o.delta)]), ['left', 'right', 'right', 'right']), '');
  for (const [title, l] of [['Graph inputs', d.inputs], ['Graph outputs', d.outputs]] as const) {
    out.push(`#### ${title}`, '', `${counts(l)}.`, '');
    const rows = [
      ...l.removed.map((v) => ['removed', name(v.name), code(shapeText(v))]),
      ...l.added.map((v) => ['added', name(v.name), code(shapeText(v))]),
      ...l.changed.map((c) => ['changed', name(c.name), `${code(shapeText(c.before))} → ${code(shapeText(c.after))}`]),
    ];
    if (rows.length) out.push(...cappedTable(['', 'name', 'type'], rows, ['left', 'left', 'left'], Infinity, out), '');
  }
  out.push(`#### Linear layers`, '', `${d.layers.rewritten.length} rewritten, ${d.layers.unchanged} unchanged.`, '');
  if (d.layers.rewritten.length) {
    const rows = d.layers.rewritten.map((l) => {
      const dec = describeLayer({ ...l, delta: [] }).split(' · ')[0]!;
      const rowsOut = l.decision?.mode === 'dual' ? String(l.decision.outliers) : '';
      return [name(l.name), dims(l.K ?? undefined, l.N ?? undefined), dec, rowsOut, deltaText(l), `${formatBytes(l.weightBytes.before)} → ${formatBytes(l.weightBytes.after)}`];
    });
    out.push(...cappedTable(['layer', 'K×N', 'decision', 'outlier rows', 'nodes', 'constants'], rows, ['left', 'right', 'left', 'right', 'left', 'right'], MD_LAYER_ROWS, out), '');
  }
  const inits = d.initializers;
  out.push('#### Initializers', '', `${counts(inits)} (${dataNote(d)}).`, '');
  const rows = [
    ...inits.removed.map((t) => ['removed', name(t.name), ...tensorText(t)]),
    ...inits.added.map((t) => ['added', name(t.name), ...tensorText(t)]),
    ...inits.changed.map((c) => [`changed ${changedWhat(c)}`, name(c.name), ...changedTensor(c)]),
  ];
  if (rows.length) {
    const header = ['', 'name', 'dtype', 'shape', 'bytes', ...(d.dataCompared ? ['sha256'] : [])];
    out.push('<details><summary>initializer list</summary>', '');
    out.push(...cappedTable(header, rows, ['left', 'left', 'left', 'left', 'right', 'left'], MD_LIST_ROWS, out), '', '</details>', '');
  }
  const o = d.otherNodes;
  out.push('#### Other nodes', '', `${o.added.length} added, ${o.removed.length} removed, ${o.changed.length} changed.`);
  const nodeRows = [
    ...o.removed.map((n) => ['removed', name(n.name), code(n.op), '']),
    ...o.added.map((n) => ['added', name(n.name), code(n.op), '']),
    ...o.changed.map((n) => ['changed', name(n.name), code(n.op), clip(n.what.join('; '))]),
  ];
  if (nodeRows.length) {
    out.push('');
    out.push(...cappedTable(['', 'node', 'op', 'change'], nodeRows, ['left', 'left', 'left', 'left'], MD_LIST_ROWS, out));
  }
  return out;
}

/**
 * A Markdown table of at most `limit` of `rows`, stopping sooner where a row would take the
 * document (`before`, the lines written so far) past {@link MD_CHARS}; when rows are left out,
 * a last row says how many and where they are.
 */
function cappedTable(header: readonly string[], rows: readonly string[][], align: readonly Align[], limit: number, before: readonly string[]): string[] {
  const lines = mdTable(header, rows, align);
  let used = before.reduce((n, l) => n + l.length + 1, 0) + lines[0]!.length + lines[1]!.length + 2;
  let shown = 0;
  while (shown < rows.length && shown < limit && used + lines[2 + shown]!.length + 1 <= MD_CHARS) used += lines[2 + shown++]!.length + 1;
  if (shown === rows.length) return lines;
  const note = `… ${rows.length - shown} more (\`--format text\` or \`json\` lists every one)`;
  return [...lines.slice(0, 2 + shown), mdTable(header, [[note, ...header.slice(1).map(() => '')]], align)[2]!];
}

/** A name as a code span, clipped to {@link MD_CELL_CHARS}. */
function name(s: string): string {
  return code(clip(s));
}

/** `s`, or its first {@link MD_CELL_CHARS} characters and "…": one cell must not fill a comment. */
function clip(s: string): string {
  const chars = [...s];
  return chars.length <= MD_CELL_CHARS ? s : `${chars.slice(0, MD_CELL_CHARS - 1).join('')}…`;
}
