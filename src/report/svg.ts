/**
 * Minimal SVG building blocks for the HTML report: escaping, linear scales, "nice" axis
 * ticks and axes. Coordinates are rounded to 0.1 px and numbers printed by fixed rules, so
 * the same data always gives the same markup.
 */
import { num } from './text.ts';

/** Escapes text for HTML/SVG content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A coordinate rounded to 0.1 px, printed without trailing zeros. */
export function px(x: number): string {
  const r = Math.round(x * 10) / 10;
  return Object.is(r, -0) ? '0' : String(r);
}

/** A linear map from [d0, d1] to [r0, r1] (a zero-width domain maps to the middle). */
export function scale(d0: number, d1: number, r0: number, r1: number): (x: number) => number {
  const span = d1 - d0;
  return span === 0 ? () => (r0 + r1) / 2 : (x) => r0 + ((x - d0) / span) * (r1 - r0);
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

/** Plot area of a chart: outer size and margins. */
export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The inner box of a frame. */
export function inner(f: Frame): { x0: number; x1: number; y0: number; y1: number } {
  return { x0: f.left, x1: f.width - f.right, y0: f.height - f.bottom, y1: f.top };
}

/** Left axis with gridlines and tick labels, and a rotated axis title. */
export function yAxis(f: Frame, ticks: readonly number[], y: (v: number) => number, title: string, label: (v: number) => string = (v) => num(v, 3)): string {
  const { x0, x1 } = inner(f);
  const parts = ticks.map((t) => `<line class="grid" x1="${px(x0)}" x2="${px(x1)}" y1="${px(y(t))}" y2="${px(y(t))}"/><text class="tick" x="${px(x0 - 6)}" y="${px(y(t) + 4)}" text-anchor="end">${esc(label(t))}</text>`);
  const mid = (f.top + f.height - f.bottom) / 2;
  parts.push(`<text class="axis-title" transform="translate(14 ${px(mid)}) rotate(-90)" text-anchor="middle">${esc(title)}</text>`);
  return parts.join('');
}

/** Bottom axis line with tick labels and a title. */
export function xAxis(f: Frame, ticks: readonly { at: number; label: string }[], title: string): string {
  const { x0, x1, y0 } = inner(f);
  const parts = [`<line class="axis" x1="${px(x0)}" x2="${px(x1)}" y1="${px(y0)}" y2="${px(y0)}"/>`];
  for (const t of ticks) parts.push(`<text class="tick" x="${px(t.at)}" y="${px(y0 + 16)}" text-anchor="middle">${esc(t.label)}</text>`);
  parts.push(`<text class="axis-title" x="${px((x0 + x1) / 2)}" y="${px(f.height - 4)}" text-anchor="middle">${esc(title)}</text>`);
  return parts.join('');
}

/** `<svg class="chart …">` with a viewBox, an accessible title and the given content. */
export function svgChart(id: string, f: Frame, title: string, content: string, extraClass = ''): string {
  return `<svg id="${esc(id)}" class="chart${extraClass ? ` ${extraClass}` : ''}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${content}</svg>`;
}
