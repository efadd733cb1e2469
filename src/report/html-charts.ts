/**
 * The charts of the HTML report, as inline SVG strings (the paper's figures):
 * - {@link normsChart}: sorted input-channel norms of each layer, threshold and median lines,
 *   outlier markers (Figure 3), one `<g class="layer">` per layer for the layer picker;
 * - {@link shareHeatmap}: share of flagged layers by type × depth (Figure 4);
 * - {@link sensitivityChart}: the S1 chunk sensitivity curve (Figure 2);
 * - {@link weightErrorChart}: per-layer weight error, single- vs dual-scale;
 * - {@link activationChart}: per-layer activation scales by branch.
 */
import type { Rollup } from './inspect-schema.ts';
import { esc, type Frame, inner, niceTicks, px, scale, svgChart, xAxis, yAxis } from './svg.ts';
import { num, percent } from './text.ts';

/** A layer as the charts see it (merged from `convert inspect` and a quantization report). */
export interface ChartLayer {
  name: string;
  type: string;
  depth: number | null;
  K?: number;
  N?: number;
  median?: number;
  threshold?: number;
  rawCount?: number;
  outliers: number;
  mode?: 'dual' | 'single' | 'skipped';
  norms?: readonly number[];
  weightError?: { single: number; dual?: number };
  activation?: { role: string; channels: number; scale: number; zeroPoint: number; range: [number, number] }[];
}

/** Most outlier markers drawn per layer (a K/2 cap on a wide layer would be thousands). */
const MAX_MARKERS = 1024;
/** Most points of a norm curve; wider layers are sampled evenly (markers stay exact). */
const MAX_POINTS = 800;

/** Figure 3 for every layer with norms; the group of `selected` is the visible one. */
export function normsChart(layers: readonly ChartLayer[], selected: number): { svg: string; captions: string[] } {
  const f: Frame = { width: 760, height: 300, left: 64, right: 120, top: 14, bottom: 40 };
  const { x0, x1, y0, y1 } = inner(f);
  const groups: string[] = [];
  const captions: string[] = [];
  layers.forEach((l, i) => {
    const sorted = [...(l.norms ?? [])].sort((a, b) => b - a);
    const K = sorted.length;
    const max = sorted[0] ?? 0;
    const thr = l.threshold ?? NaN;
    const med = l.median ?? sorted[K >> 1] ?? 0;
    const top = Math.max(max, Number.isFinite(thr) ? thr : 0) * 1.08 || 1;
    const x = scale(0, Math.max(1, K - 1), x0, x1);
    const y = scale(0, top, y0, y1);
    const raw = l.rawCount ?? sorted.filter((n) => n > thr).length;
    const step = K > MAX_POINTS ? (K - 1) / (MAX_POINTS - 1) : 1;
    const idx = K > MAX_POINTS ? Array.from({ length: MAX_POINTS }, (_, j) => Math.round(j * step)) : sorted.map((_, j) => j);
    const parts = [yAxis(f, niceTicks(0, top), y, '‖W[k,:]‖₂ (input-channel norm)')];
    parts.push(xAxis(f, niceTicks(0, Math.max(1, K - 1), 8).map((t) => ({ at: x(t), label: String(t) })), 'input channels, sorted by norm (rank)'));
    parts.push(`<polyline class="norms" points="${idx.map((j) => `${px(x(j))},${px(y(sorted[j]!))}`).join(' ')}"/>`);
    if (Number.isFinite(thr)) parts.push(hline('threshold', x0, x1, y(thr), `threshold ${num(thr)}`));
    parts.push(hline('median', x0, x1, y(med), `median ${num(med)}`));
    for (let r = 0; r < Math.min(l.outliers, K, MAX_MARKERS); r++) {
      parts.push(`<circle class="outlier ${r < raw ? 'raw' : 'padded'}" cx="${px(x(r))}" cy="${px(y(sorted[r]!))}" r="3"><title>rank ${r}: ${num(sorted[r]!)}</title></circle>`);
    }
    const caption = `${l.name}: K = ${K}${l.N !== undefined ? `, N = ${l.N}` : ''}; ${raw} channel${raw === 1 ? '' : 's'} over the threshold ${num(thr)} → ${l.outliers} outlier row${l.outliers === 1 ? '' : 's'} after alignment; median ${num(med)}, max ${num(max)} (${med > 0 ? num(max / med, 3) : '–'}× the median)`;
    captions.push(caption);
    groups.push(`<g class="layer" data-layer="${i}" data-caption="${esc(caption)}"${i === selected ? '' : ' display="none"'}>${parts.join('')}</g>`);
  });
  return { svg: svgChart('fig-norms', f, 'Sorted input-channel norms with the outlier threshold', groups.join('')), captions };
}

function hline(cls: string, x0: number, x1: number, y: number, label: string): string {
  return `<line class="${cls}" x1="${px(x0)}" x2="${px(x1)}" y1="${px(y)}" y2="${px(y)}"/><text class="${cls}-label" x="${px(x1 + 6)}" y="${px(y + 4)}">${esc(label)}</text>`;
}

/** Figure 4: a heatmap of flagged ÷ layers per type (rows) and depth (columns). */
export function shareHeatmap(ru: Rollup, what: string): string {
  const cols = ru.depths.length;
  const cell = Math.max(16, Math.min(48, Math.floor(560 / Math.max(1, cols))));
  const label = 150;
  const f: Frame = { width: label + cols * cell + 90, height: 40 + ru.rows.length * 24 + 36, left: label, right: 90, top: 40, bottom: 36 };
  const parts: string[] = [];
  ru.depths.forEach((d, c) => parts.push(`<text class="tick" x="${px(label + c * cell + cell / 2)}" y="32" text-anchor="middle">${d === null ? '—' : d}</text>`));
  parts.push(`<text class="axis-title" x="${px(label + (cols * cell) / 2)}" y="14" text-anchor="middle">block depth (— = outside the blocks)</text>`);
  parts.push(`<text class="tick" x="${px(label + cols * cell + 45)}" y="32" text-anchor="middle">share</text>`);
  ru.rows.forEach((row, r) => {
    const y = 40 + r * 24;
    parts.push(`<text class="row-label" x="${label - 8}" y="${px(y + 16)}" text-anchor="end">${esc(row.type)}</text>`);
    row.cells.forEach((c, k) => {
      if (c.layers === 0) return;
      const share = c.flagged / c.layers;
      const x = label + k * cell;
      parts.push(`<rect class="cell${c.flagged ? ' flagged' : ''}" x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="22" fill="${heat(share)}"><title>${esc(row.type)} @ ${c.depth === null ? 'outside the blocks' : `depth ${c.depth}`}: ${c.flagged}/${c.layers} ${what}</title></rect>`);
      if (cell >= 30) parts.push(`<text class="cell-text${share > 0.5 ? ' dark' : ''}" x="${px(x + cell / 2)}" y="${px(y + 16)}" text-anchor="middle">${c.flagged}/${c.layers}</text>`);
    });
    parts.push(`<text class="share" x="${px(label + cols * cell + 45)}" y="${px(y + 16)}" text-anchor="middle">${percent(row.share)}</text>`);
  });
  return svgChart('fig-share', f, `Share of ${what} by layer type and depth`, parts.join(''));
}

/** White-ish (0) to red (1) in sRGB, as `#rrggbb`. */
function heat(share: number): string {
  const a = [241, 245, 249];
  const b = [220, 38, 38];
  return `#${a.map((v, i) => Math.round(v + (b[i]! - v) * share).toString(16).padStart(2, '0')).join('')}`;
}

/** Figure 2: the S1 sensitivity of each chunk. */
export function sensitivityChart(values: readonly number[]): string {
  const f: Frame = { width: 760, height: 260, left: 64, right: 20, top: 14, bottom: 40 };
  const { x0, x1, y0, y1 } = inner(f);
  const top = Math.max(0, ...values) * 1.1 || 1;
  const x = scale(0, Math.max(1, values.length - 1), x0 + 10, x1 - 10);
  const y = scale(0, top, y0, y1);
  const parts = [yAxis(f, niceTicks(0, top), y, 'sensitivity (MSE, normalised)')];
  const ticks = values.length <= 30 ? values.map((_, i) => i) : niceTicks(0, values.length - 1, 10);
  parts.push(xAxis(f, ticks.map((i) => ({ at: x(i), label: String(i) })), 'chunk'));
  parts.push(`<polyline class="sens" points="${values.map((v, i) => `${px(x(i))},${px(y(v))}`).join(' ')}"/>`);
  values.forEach((v, i) => parts.push(`<circle class="sens-point" cx="${px(x(i))}" cy="${px(y(v))}" r="4"><title>chunk ${i}: ${num(v)}</title></circle>`));
  return svgChart('fig-sensitivity', f, 'S1 chunk sensitivity', parts.join(''));
}

/** Relative weight error per layer: one bar single-scale, one dual-scale where it was computed. */
export function weightErrorChart(layers: readonly ChartLayer[]): string {
  const rows = layers.filter((l) => l.weightError);
  const f: Frame = { width: 760, height: 280, left: 64, right: 20, top: 14, bottom: 40 };
  const { x0, x1, y0, y1 } = inner(f);
  const top = Math.max(0, ...rows.flatMap((l) => [l.weightError!.single, l.weightError!.dual ?? 0])) * 1.1 || 1;
  const y = scale(0, top, y0, y1);
  const w = (x1 - x0) / Math.max(1, rows.length);
  const bw = Math.max(0.8, w * 0.4);
  const parts = [yAxis(f, niceTicks(0, top), y, '‖Ŵ − W‖ / ‖W‖')];
  parts.push(xAxis(f, niceTicks(0, Math.max(0, rows.length - 1), 10).map((i) => ({ at: x0 + (i + 0.5) * w, label: String(i) })), 'layer (graph order)'));
  rows.forEach((l, i) => {
    const e = l.weightError!;
    const gx = x0 + i * w + (w - 2 * bw) / 2;
    parts.push(bar('single', gx, bw, y(e.single), y0, `${l.name}: single-scale ${num(e.single)}`));
    if (e.dual !== undefined) parts.push(bar('dual', gx + bw, bw, y(e.dual), y0, `${l.name}: dual-scale ${num(e.dual)}${l.mode === 'dual' ? ' (used)' : ' (not used)'}`));
  });
  return svgChart('fig-weight-error', f, 'Weight error, single- vs dual-scale', parts.join(''));
}

function bar(cls: string, x: number, w: number, yTop: number, yBase: number, title: string): string {
  return `<rect class="bar ${cls}" x="${px(x)}" y="${px(yTop)}" width="${px(w)}" height="${px(Math.max(0, yBase - yTop))}"><title>${esc(title)}</title></rect>`;
}

/** Activation scale of each branch quantizer per layer, on a log axis. */
export function activationChart(layers: readonly ChartLayer[]): string {
  const rows = layers.filter((l) => l.activation?.length);
  const f: Frame = { width: 760, height: 280, left: 64, right: 20, top: 14, bottom: 40 };
  const { x0, x1, y0, y1 } = inner(f);
  const logs = rows.flatMap((l) => l.activation!.map((a) => Math.log10(Math.max(a.scale, 1e-12))));
  const lo = Math.floor(Math.min(...logs));
  const hi = Math.max(lo + 1, Math.ceil(Math.max(...logs)));
  const y = scale(lo, hi, y0, y1);
  const w = (x1 - x0) / Math.max(1, rows.length);
  const decades = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  const parts = [yAxis(f, decades, y, 'activation scale (log)', (v) => `1e${v}`)];
  parts.push(xAxis(f, niceTicks(0, Math.max(0, rows.length - 1), 10).map((i) => ({ at: x0 + (i + 0.5) * w, label: String(i) })), 'layer with activation quantizers (graph order)'));
  rows.forEach((l, i) => {
    for (const a of l.activation!) {
      const dx = a.role === 'outlier' ? -w * 0.15 : a.role === 'normal' ? w * 0.15 : 0;
      parts.push(`<circle class="act-point role-${esc(a.role)}" cx="${px(x0 + (i + 0.5) * w + dx)}" cy="${px(y(Math.log10(Math.max(a.scale, 1e-12))))}" r="3.5"><title>${esc(`${l.name} ${a.role} (${a.channels} channels): scale ${num(a.scale)}, zero point ${a.zeroPoint}, range [${num(a.range[0])}, ${num(a.range[1])}]`)}</title></circle>`);
    }
  });
  return svgChart('fig-activation', f, 'Activation scales per branch', parts.join(''));
}
