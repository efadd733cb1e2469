/**
 * The self-contained HTML report: one file, no network (a Content-Security-Policy forbids
 * every fetch), inline CSS, inline SVG charts and a ten-line script for the layer picker.
 *
 * What it shows, when the data has it:
 * 1. summary and per-layer table;
 * 2. Figure 3: sorted input-channel norms with the threshold and median, outliers marked
 *    (raw ones filled, alignment padding hollow), with a `<select>` layer picker — needs
 *    channel norms, i.e. an `inspectModel(…, { norms: true })` report;
 * 3. Figure 4: share of dual-scale layers (or, without a quantization report, of layers with
 *    outliers) by layer type × block depth;
 * 4. Figure 2: the S1 sensitivity curve, when the quantization report has `sensitivity`;
 * 5. per-layer weight error single- vs dual-scale, and the activation scales per branch.
 *
 * The q-arvd pass can call `renderHtmlReport(report)` with its `QuantReport`, or, to get
 * Figure 3 too, `renderHtmlReport({ inspect: inspectModel(floatModel, name, { norms: true }), quant: report })`
 * with the model as it was before quantization. The output depends only on the data.
 */
import type { QuantReport } from '../passes/quant/report.ts';
import { activationChart, type ChartLayer, normsChart, sensitivityChart, shareHeatmap, weightErrorChart } from './html-charts.ts';
import { rollup } from './inspect.ts';
import type { InspectReport } from './inspect-schema.ts';
import { layerKind } from './layer-type.ts';
import { esc } from './svg.ts';
import { dims, num } from './text.ts';

/** A quantization report, optionally with the S1 per-chunk sensitivity (normalised) and loss weights α. */
export type QuantReportWithSensitivity = QuantReport & { sensitivity?: number[]; alpha?: number[] };

/** What the report is drawn from: `convert inspect` output, a quantization report, or both. */
export interface HtmlReportInput {
  inspect?: InspectReport;
  quant?: QuantReportWithSensitivity;
  /** Page title (default: from the model or method). */
  title?: string;
}

/** Renders the report (see the module doc); accepts a bare InspectReport or QuantReport too. */
export function renderHtmlReport(data: HtmlReportInput | InspectReport | QuantReportWithSensitivity): string {
  const input = normalizeInput(data);
  const layers = mergeLayers(input);
  const quant = input.quant;
  const title = input.title ?? (input.inspect ? `Q-ARVD report: ${input.inspect.model}` : `Q-ARVD report: ${quant?.method ?? ''} ${quant?.bits ?? ''}`.trim());
  const sections: string[] = [`<h1>${esc(title)}</h1>`, summary(input, layers)];

  const withNorms = layers.filter((l) => l.norms && l.norms.length > 0);
  sections.push('<section id="norms"><h2>Input-channel norms and outliers <span class="fig">cf. paper Fig. 3</span></h2>');
  if (withNorms.length) {
    const selected = initialLayer(withNorms);
    const { svg, captions } = normsChart(withNorms, selected);
    const options = withNorms.map((l, i) => `<option value="${i}"${i === selected ? ' selected' : ''}>${esc(l.name)} — ${l.outliers} outlier${l.outliers === 1 ? '' : 's'}</option>`).join('');
    sections.push(`<label for="layer-picker">Layer</label> <select id="layer-picker">${options}</select>`);
    sections.push(svg, `<p id="norms-caption" class="caption">${esc(captions[selected]!)}</p>`);
    sections.push('<p class="legend"><span class="sw sw-norms"></span>norms <span class="sw sw-threshold"></span>threshold <span class="sw sw-median"></span>median <span class="sw sw-raw"></span>outlier over the threshold <span class="sw sw-padded"></span>added by alignment</p>');
  } else sections.push('<p class="note">No channel norms in this report: run <code>convert inspect model.onnx --html report.html</code> on the float model.</p>');
  sections.push('</section>');

  const charted = layers.filter((l) => l.mode !== 'skipped');
  if (charted.length) {
    const what = quant ? 'dual-scale layers' : 'layers with outliers';
    const ru = rollup(charted.map((l) => ({ type: l.type, depth: l.depth, flagged: quant ? l.mode === 'dual' : l.outliers > 0 })));
    sections.push(`<section id="share"><h2>Share of ${what} by layer type × depth <span class="fig">cf. paper Fig. 4</span></h2>${shareHeatmap(ru, what)}</section>`);
  }
  const sens = quant?.sensitivity;
  if (Array.isArray(sens) && sens.length > 0) {
    const total = sens.reduce((s, v) => s + v, 0);
    const alpha = Array.isArray(quant?.alpha) && quant.alpha.length === sens.length ? `; loss weights α = [${quant.alpha.map((v) => num(v, 3)).join(', ')}]` : '';
    sections.push(`<section id="sensitivity"><h2>S1 chunk sensitivity <span class="fig">cf. paper Fig. 2</span></h2>${sensitivityChart(sens)}<p class="caption">${sens.length} chunks: [${sens.map((v) => num(v, 3)).join(', ')}] (sum ${num(total, 3)})${alpha}.</p></section>`);
  }
  if (layers.some((l) => l.weightError)) {
    sections.push(`<section id="weight-error"><h2>Weight error, single- vs dual-scale</h2>${weightErrorChart(layers)}<p class="legend"><span class="sw sw-single"></span>single-scale <span class="sw sw-dual"></span>dual-scale (S2 split)</p></section>`);
  }
  if (layers.some((l) => l.activation?.length)) {
    sections.push(`<section id="activation"><h2>Activation quantizers</h2>${activationChart(layers)}<p class="legend"><span class="sw sw-all"></span>one quantizer <span class="sw sw-outlier"></span>outlier branch <span class="sw sw-normal"></span>normal branch</p>${activationTable(layers)}</section>`);
  }
  sections.push(layerTable(layers, Boolean(quant)));
  return page(title, sections.join('\n'));
}

function normalizeInput(data: HtmlReportInput | InspectReport | QuantReportWithSensitivity): HtmlReportInput {
  if ((data as InspectReport).schema === 'qarvd.inspect/1') return { inspect: data as InspectReport };
  if (Array.isArray((data as QuantReport).layers) && typeof (data as QuantReport).method === 'string') return { quant: data as QuantReportWithSensitivity };
  return data as HtmlReportInput;
}

/** Inspect layers first (graph order), enriched by the quantization report; then its other layers. */
function mergeLayers(input: HtmlReportInput): ChartLayer[] {
  const q = new Map((input.quant?.layers ?? []).map((l) => [l.name, l]));
  const out: ChartLayer[] = [];
  const seen = new Set<string>();
  for (const l of input.inspect?.layers ?? []) {
    const e = q.get(l.name);
    out.push({ name: l.name, type: l.type, depth: l.depth, K: l.K, N: l.N, median: l.median, threshold: l.threshold, rawCount: l.rawCount, outliers: l.outliers, norms: l.norms, ...(e ? { mode: e.mode, weightError: e.weightError, activation: e.activation } : {}) });
    seen.add(l.name);
  }
  for (const e of input.quant?.layers ?? []) {
    if (seen.has(e.name)) continue;
    const { type, depth } = layerKind(e.name);
    out.push({ name: e.name, type, depth, K: e.K, N: e.N, median: e.median, threshold: e.threshold, outliers: e.outliers, mode: e.mode, weightError: e.weightError, activation: e.activation });
  }
  return out;
}

/** The layer shown first: the one with the most channels over the threshold (first on ties). */
function initialLayer(layers: readonly ChartLayer[]): number {
  let best = 0;
  layers.forEach((l, i) => {
    if ((l.rawCount ?? l.outliers) > (layers[best]!.rawCount ?? layers[best]!.outliers)) best = i;
  });
  return best;
}

function summary(input: HtmlReportInput, layers: ChartLayer[]): string {
  const items: string[] = [];
  const i = input.inspect;
  if (i) {
    items.push(`model <code>${esc(i.model)}</code>`, `S2 rule: tau ${i.options.tau}, gamma ${i.options.gamma}, align ${i.options.align}, min-k ${i.options.minK}`);
    items.push(`${i.totals.layers} linear layers, ${i.totals.withOutliers} with outliers (${i.totals.outlierRows} outlier rows after alignment, ${i.totals.rawOutlierRows} over the threshold); ${i.totals.skipped} MatMul/Gemm skipped${i.totals.floatConvs ? `; ${i.totals.floatConvs} Conv/ConvTranspose node(s) left float (only MatMul and Gemm layers are quantized)` : ''}`);
  }
  const q = input.quant;
  if (q) {
    items.push(`quantization: ${esc(q.method)} ${esc(q.bits)} ${esc(q.format)} — ${q.totals.layers.dual} dual-scale, ${q.totals.layers.single} single-scale, ${q.totals.layers.skipped} skipped`);
    items.push(`weights ${q.totals.bytesBefore} → ${q.totals.bytesAfter} bytes (×${q.totals.ratio.toFixed(3)})`);
  }
  if (!i && !q) items.push(`${layers.length} layers`);
  return `<ul class="summary">${items.map((x) => `<li>${x}</li>`).join('')}</ul>`;
}

function activationTable(layers: ChartLayer[]): string {
  const rows = layers.flatMap((l) => (l.activation ?? []).map((a) => `<tr><td>${esc(l.name)}</td><td>${esc(a.role)}</td><td class="r">${a.channels}</td><td class="r">${num(a.scale)}</td><td class="r">${a.zeroPoint}</td><td class="r">[${num(a.range[0])}, ${num(a.range[1])}]</td></tr>`));
  return `<details><summary>activation quantizers (${rows.length})</summary><table><thead><tr><th>layer</th><th>branch</th><th>channels</th><th>scale</th><th>zero point</th><th>calibrated range</th></tr></thead><tbody>${rows.join('')}</tbody></table></details>`;
}

function layerTable(layers: ChartLayer[], withQuant: boolean): string {
  const head = ['layer', 'type', 'depth', 'K×N', 'median', 'threshold', 'raw', 'outliers', ...(withQuant ? ['mode', 'error single', 'error dual'] : [])];
  const rows = layers.map((l) => {
    const cells = [esc(l.name), esc(l.type), l.depth === null ? '—' : String(l.depth), dims(l.K, l.N), num(l.median), num(l.threshold), l.rawCount === undefined ? '–' : String(l.rawCount), String(l.outliers)];
    if (withQuant) cells.push(l.mode ?? '–', num(l.weightError?.single), num(l.weightError?.dual));
    return `<tr>${cells.map((c, k) => `<td${k >= 2 && k !== 8 ? ' class="r"' : ''}>${c}</td>`).join('')}</tr>`;
  });
  return `<section id="layers"><h2>Layers</h2><table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:980px;color:#1f2937;padding:0 16px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:28px 0 8px}.fig{font-weight:normal;color:#6b7280;font-size:13px}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f3f4f6;padding:1px 4px;border-radius:3px}
.summary{padding-left:18px}.caption,.note{color:#374151;font-size:13px}.legend{font-size:12px;color:#4b5563}
.sw{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px 0 10px}
.sw-norms{background:#2563eb}.sw-threshold{background:#dc2626}.sw-median{background:#9ca3af}
.sw-raw,.sw-padded,.sw-all,.sw-outlier,.sw-normal{width:9px;height:9px;border-radius:50%}
.sw-raw{background:#dc2626}.sw-padded{border:2px solid #f59e0b;width:6px;height:6px}
.sw-single,.sw-dual{height:10px}.sw-single{background:#9ca3af}.sw-dual{background:#2563eb}
.sw-all{background:#6b7280}.sw-outlier{background:#dc2626}.sw-normal{background:#2563eb}
svg.chart{display:block;max-width:100%;height:auto;margin:8px 0;background:#fff}
svg .grid{stroke:#e5e7eb}svg .axis{stroke:#6b7280}svg text{font-size:11px;fill:#374151}svg .axis-title{font-size:12px;fill:#111827}
svg .norms{fill:none;stroke:#2563eb;stroke-width:1.5}svg .threshold{stroke:#dc2626;stroke-dasharray:6 4;stroke-width:1.5}
svg .median{stroke:#9ca3af;stroke-dasharray:2 3;stroke-width:1.5}svg .threshold-label{fill:#dc2626}svg .median-label{fill:#6b7280}
svg .outlier.raw{fill:#dc2626}svg .outlier.padded{fill:#fff;stroke:#f59e0b;stroke-width:1.5}
svg .cell{stroke:#fff}svg .cell-text{font-size:10px}svg .cell-text.dark{fill:#fff}svg .row-label{font-size:12px}
svg .sens{fill:none;stroke:#7c3aed;stroke-width:2}svg .sens-point{fill:#7c3aed}
svg .bar.single{fill:#9ca3af}svg .bar.dual{fill:#2563eb}
svg .act-point.role-all{fill:#6b7280}svg .act-point.role-outlier{fill:#dc2626}svg .act-point.role-normal{fill:#2563eb}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border-bottom:1px solid #e5e7eb;padding:3px 6px;text-align:left}td.r{text-align:right;font-variant-numeric:tabular-nums}
select{font:inherit;max-width:100%}
`;

// Shows the picked layer's group of Figure 3 and its caption; runs only on the static markup.
const SCRIPT = `(function(){var s=document.getElementById('layer-picker');if(!s)return;var c=document.getElementById('norms-caption');
function show(v){var gs=document.querySelectorAll('#fig-norms g.layer');for(var i=0;i<gs.length;i++){var g=gs[i];if(g.getAttribute('data-layer')===v){g.removeAttribute('display');c.textContent=g.getAttribute('data-caption');}else g.setAttribute('display','none');}}
s.addEventListener('change',function(){show(s.value);});show(s.value);})();`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
<script>${SCRIPT}</script>
</body>
</html>
`;
}
