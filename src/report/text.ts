/**
 * Small formatting helpers shared by `convert diff`, `convert inspect` and the HTML report:
 * aligned text tables, GitHub-flavoured Markdown tables, byte sizes and numbers. Everything
 * here is deterministic: the same input always gives the same characters.
 */

/** Output formats of the report commands. */
export type ReportFormat = 'text' | 'md' | 'json';

/** The formats, for CLI choices and validation. */
export const REPORT_FORMATS: readonly ReportFormat[] = ['text', 'md', 'json'];

/** Column alignment of a table. */
export type Align = 'left' | 'right';

/**
 * An aligned plain-text table: columns padded to their widest cell, separated by two spaces,
 * trailing spaces trimmed. `indent` prefixes every line.
 */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[], indent = ''): string[] {
  const all = [header, ...rows];
  const columns = Math.max(...all.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...all.map((r) => width(r[c] ?? ''))));
  return all.map((r) => (indent + r.map((cell, c) => pad(cell ?? '', widths[c]!, align[c] ?? 'left')).join('  ')).trimEnd());
}

/** A GitHub Markdown table; cells are escaped (`|`, newlines). */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[]): string[] {
  const line = (r: readonly string[]) => `| ${r.map(mdCell).join(' | ')} |`;
  const rule = `|${header.map((_, c) => (align[c] === 'right' ? '--:' : ':--')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)];
}

/** A Markdown code span for a name (names such as `onnx::MatMul_12` contain `_` and `:`). */
export function code(s: string): string {
  const ticks = s.includes('`') ? '``' : '`';
  const body = s.startsWith('`') || s.endsWith('`') ? ` ${s} ` : s;
  return `${ticks}${body}${ticks}`;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Display width: code points, so `×` and `→` count as one column. */
function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return align === 'right' ? fill + s : s + fill;
}

/** `512 B`, `16.0 KiB`, `2.13 MiB`, `1.05 GiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A signed count: `+3`, `-2`, and `''` for 0 (so that changes stand out in a column). */
export function signed(n: number): string {
  return n === 0 ? '' : n > 0 ? `+${n}` : `${n}`;
}

/** Four significant digits without exponent for ordinary magnitudes (`0.6863`, `10.28`, `1234`). */
export function num(x: number | undefined, digits = 4): string {
  if (x === undefined || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-4 && a < 1e6) return Number(x.toPrecision(digits)).toString();
  return x.toExponential(digits - 1);
}

/** `37.5%` of a share in [0, 1]. */
export function percent(share: number): string {
  return `${(share * 100).toFixed(share === 0 || share === 1 ? 0 : 1)}%`;
}

/** `[64×512]`-style dims. */
export function dims(K: number | undefined, N: number | undefined): string {
  return K === undefined || N === undefined ? '' : `${K}×${N}`;
}
