/**
 * Prints an {@link InspectReport} as text, GitHub Markdown or JSON: the rule and totals, one
 * row per layer, the skipped MatMul/Gemm nodes grouped by reason, and the type × depth roll-up.
 */
import type { InspectReport, Rollup } from './inspect-schema.ts';
import { code, dims, mdTable, num, percent, type ReportFormat, textTable, type Align } from './text.ts';

/** The report in the requested format (norms are never printed); ends with a newline. */
export function formatInspect(r: InspectReport, format: ReportFormat): string {
  if (format === 'json') return JSON.stringify({ ...r, layers: r.layers.map(({ norms: _n, ...l }) => l) }, null, 2) + '\n';
  return (format === 'md' ? markdown(r) : text(r)).join('\n') + '\n';
}

const LAYER_HEADER = ['layer', 'op', 'K×N', 'dtype', 'median', 'max', 'max/med', 'threshold', 'raw', 'outliers'];
const LAYER_ALIGN: Align[] = ['left', 'left', 'right', 'left', 'right', 'right', 'right', 'right', 'right', 'right'];

function layerRows(r: InspectReport, name: (s: string) => string): string[][] {
  return r.layers.map((l) => [name(l.name) + (l.wBits ? ' (8-bit)' : ''), l.op, dims(l.K, l.N), l.dtype, num(l.median), num(l.max), l.ratio === null ? '–' : num(l.ratio, 3), num(l.threshold), String(l.rawCount), String(l.outliers)]);
}

function ruleLine(r: InspectReport): string {
  const o = r.options;
  const sel = [...(o.include.length ? [`include ${o.include.join(',')}`] : []), ...(o.exclude.length ? [`exclude ${o.exclude.join(',')}`] : [])];
  const scope = o.scope === 'outer-w8' ? `; scope outer-w8: ${r.layers.filter((l) => l.wBits).length} layer(s) around the repeated blocks marked (8-bit)` : o.scope === 'blocks' ? '; scope blocks' : '';
  return `S2 rule: tau ${o.tau}, gamma ${o.gamma}, align ${o.align}, min-k ${o.minK}${sel.length ? `, ${sel.join(', ')}` : ''}${scope}`;
}

function totalsLine(r: InspectReport): string {
  const t = r.totals;
  const quantized = t.quantized ? `; ${t.quantized} matrix product(s) already quantized (integer ops or dequantized weights), not analysed: compare with the float model with convert diff` : '';
  const convs = t.floatConvs ? `; ${t.floatConvs} Conv/ConvTranspose node(s) with constant weights, which the passes leave float (they quantize MatMul and Gemm layers only)` : '';
  return `${t.layers} linear layers, ${t.withOutliers} with outliers (${t.outlierRows} outlier rows after alignment, ${t.rawOutlierRows} raw); ${t.skipped} MatMul/Gemm skipped${quantized}${convs}`;
}

/** Skipped nodes grouped by reason, reasons in order of first appearance. */
function skippedGroups(r: InspectReport): { reason: string; names: string[] }[] {
  const m = new Map<string, string[]>();
  for (const s of r.skipped) m.set(s.reason, [...(m.get(s.reason) ?? []), s.name]);
  return [...m].map(([reason, names]) => ({ reason, names }));
}

function depthLabel(d: number | null): string {
  return d === null ? '—' : String(d);
}

function rollupRows(ru: Rollup, name: (s: string) => string): { header: string[]; rows: string[][]; align: Align[] } {
  const header = ['type', ...ru.depths.map(depthLabel), 'all', 'share'];
  const rows = ru.rows.map((row) => [name(row.type), ...row.cells.map((c) => (c.layers ? `${c.flagged}/${c.layers}` : '')), `${row.flagged}/${row.layers}`, percent(row.share)]);
  return { header, rows, align: header.map((_, i) => (i === 0 ? 'left' : 'right')) };
}

function text(r: InspectReport): string[] {
  const out = [`convert inspect ${r.model}`, ruleLine(r), totalsLine(r), ''];
  out.push(...textTable(LAYER_HEADER, layerRows(r, (s) => s), LAYER_ALIGN));
  const groups = skippedGroups(r);
  if (groups.length) {
    out.push('', 'skipped');
    for (const g of groups) out.push(`  ${g.names.length} × ${g.reason}: ${g.names.slice(0, 4).join(', ')}${g.names.length > 4 ? ', …' : ''}`);
  }
  const ru = rollupRows(r.rollup, (s) => s);
  out.push('', 'layers with outliers by type × depth (flagged/layers; — = outside the blocks)');
  out.push(...textTable(ru.header, ru.rows, ru.align));
  return out;
}

function markdown(r: InspectReport): string[] {
  const out = [`### \`convert inspect\` ${code(r.model)}`, '', `${ruleLine(r)}. ${totalsLine(r)}.`, ''];
  const ru = rollupRows(r.rollup, code);
  out.push('#### Layers with outliers by type × depth', '', ...mdTable(ru.header, ru.rows, ru.align), '');
  out.push('#### Layers', '', ...mdTable(LAYER_HEADER, layerRows(r, code), LAYER_ALIGN));
  const groups = skippedGroups(r);
  if (groups.length) {
    out.push('', '#### Skipped', '', ...mdTable(['count', 'reason', 'nodes'], groups.map((g) => [String(g.names.length), g.reason, g.names.map(code).join(', ')]), ['right', 'left', 'left']));
  }
  return out;
}
