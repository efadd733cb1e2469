// The HTML report: built from `convert inspect` on the tiny ARVD and a real q-arvd W4A8 report
// of it (one calibration rollout, with the S1 sensitivity it measures), checked as markup, then
// opened in a real Chromium (playwright-core; scripts/find-chromium.mjs says which): no console errors, no network, the expected
// number of chart elements, a working layer picker; screenshot in test-output/report.png.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.ts';
import { run } from '../../src/cli/main.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { renderHtmlReport } from '../../src/report/html.ts';
import { type InspectReport, inspectModel } from '../../src/report/inspect.ts';
import { layerKind } from '../../src/report/layer-type.ts';
import { prompts, rollout } from '../../examples/tiny-arvd/rollout.ts';
import { findChromium } from '../../scripts/find-chromium.mjs';

const TINY = 'examples/tiny-arvd/model.onnx';
const OUT = 'test-output/report-html';

let inspect: InspectReport;
let quant: QuantReport;
let html: string;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  inspect = inspectModel(loadModel(TINY), TINY, { norms: true });
  const model = loadModel(TINY);
  const ctx = { log: createLogger({ write: () => {} }), verbose: false, modelDir: undefined };
  // split-check none: the charts need split layers, and the check on this one rollout keeps the unsplit model.
  const result = await runQuantPass(model, ctx, resolveOptions(qArvd, { 'w-bits': '4', 'split-check': 'none' }) as never, 'q-arvd', { rollout: rollout as never, prompts, samples: 1 });
  quant = result.report as QuantReport;
  writeFileSync(`${OUT}/q-arvd.json`, JSON.stringify(quant));
  html = renderHtmlReport({ inspect, quant });
  writeFileSync('test-output/report.html', html);
});

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
const withNorms = () => inspect.layers;
const initial = () => withNorms().reduce((best, l, i, all) => (l.rawCount > all[best]!.rawCount ? i : best), 0);

describe('renderHtmlReport', () => {
  it('has a real S1 curve and dual-scale decisions to draw (the fixture is what the charts claim)', () => {
    expect(quant.sensitivity?.length).toBe(6);
    expect(quant.sensitivity!.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    expect(quant.totals.layers).toEqual({ dual: 12, single: 25, skipped: 12 });
  });

  it('is deterministic and self-contained', () => {
    expect(renderHtmlReport({ inspect, quant })).toBe(html);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|@import|url\(|@font-face/i);
    for (const u of html.match(/https?:\/\/[^"' )<]+/g) ?? []) expect(u).toBe('http://www.w3.org/2000/svg');
    expect(html).toContain("Content-Security-Policy\" content=\"default-src 'none'");
  });

  it('draws one chart per available figure, with one marker per outlier row', () => {
    expect(count(html, /<svg id="[^"]+" class="chart/g)).toBe(5);
    const sel = withNorms()[initial()]!;
    expect(sel.name).toBe('/blocks.2/ffn/ffn.2/MatMul');
    const visible = html.match(/<g class="layer" data-layer="\d+" data-caption="[^"]*">(.*?)<\/g>/)![1]!;
    expect(count(visible, /<circle class="outlier /g)).toBe(sel.outliers);
    expect(count(visible, /<circle class="outlier raw"/g)).toBe(sel.rawCount);
    expect(count(html, /<g class="layer" /g)).toBe(withNorms().length);
  });

  it('renders a bare QuantReport (what the pass can call) without the norms chart', () => {
    const page = renderHtmlReport(quant);
    expect(count(page, /class="chart/g)).toBe(4);
    expect(page).not.toContain('id="fig-norms"');
    expect(page).toContain('No channel norms in this report');
    expect(page).toContain('Share of dual-scale layers by layer type and depth');
    const inspectOnly = renderHtmlReport(inspect);
    expect(count(inspectOnly, /class="chart/g)).toBe(2);
    expect(inspectOnly).toContain('Share of layers with outliers by layer type and depth');
  });

  it('is what `convert inspect --html --report` writes', async () => {
    let out = '';
    const io: CliIO = { out: (t) => void (out += t), err: () => {}, tty: false };
    const code = await run(['inspect', TINY, '--html', `${OUT}/cli.html`, '--report', `${OUT}/q-arvd.json`], io);
    expect(code).toBe(0);
    expect(out).toContain('convert inspect examples/tiny-arvd/model.onnx');
    expect(readFileSync(`${OUT}/cli.html`, 'utf8')).toBe(html);
  });
});

describe('the HTML report in chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    // The same browser npm test's pretest (scripts/ensure-chromium.mjs) found or installed.
    const found = findChromium();
    if (!found?.runs) throw new Error(`no Chromium found${found ? ` (CHROMIUM_PATH=${found.path} does not run)` : ''}: npm test installs Debian's (scripts/ensure-chromium.mjs), or set CHROMIUM_PATH`);
    browser = await chromium.launch({
      executablePath: found.path,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('renders with no console errors or requests, the expected charts, and a working layer picker', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(resolve('test-output/report.html')).href;
    await page.goto(url);

    expect(await page.locator('svg.chart').count()).toBe(5);
    const visible = '#fig-norms g.layer:not([display="none"])';
    const sel = withNorms()[initial()]!;
    expect(await page.locator(visible).count()).toBe(1);
    expect(await page.locator(`${visible} circle.outlier`).count()).toBe(sel.outliers);
    expect(await page.locator(`${visible} circle.outlier.raw`).count()).toBe(sel.rawCount);
    const cells = new Set(quant.layers.filter((l) => l.mode !== 'skipped').map((l) => JSON.stringify(layerKind(l.name))));
    expect(await page.locator('#fig-share rect.cell').count()).toBe(cells.size);
    expect(await page.locator('#fig-share rect.cell.flagged').count()).toBe(quant.totals.layers.dual);
    expect(await page.locator('#fig-sensitivity circle.sens-point').count()).toBe(quant.sensitivity!.length);
    const quantized = quant.layers.filter((l) => l.weightError);
    expect(await page.locator('#fig-weight-error rect.bar.single').count()).toBe(quantized.length);
    expect(await page.locator('#fig-weight-error rect.bar.dual').count()).toBe(quantized.filter((l) => l.weightError!.dual !== undefined).length);
    expect(await page.locator('#fig-activation circle.act-point').count()).toBe(quant.layers.reduce((s, l) => s + (l.activation?.length ?? 0), 0));
    // The norms chart has real extent: the curve spans most of the plot width.
    const box = await page.locator(`${visible} polyline.norms`).boundingBox();
    expect(box!.width).toBeGreaterThan(300);
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/report.png', fullPage: true });

    for (const name of ['/blocks.0/self_attn/k/MatMul', '/head/MatMul']) {
      const i = withNorms().findIndex((l) => l.name === name);
      const layer = withNorms()[i]!;
      await page.selectOption('#layer-picker', String(i));
      expect(await page.locator(visible).getAttribute('data-layer')).toBe(String(i));
      expect(await page.locator(`${visible} circle.outlier`).count()).toBe(layer.outliers);
      expect(await page.locator(`${visible} circle.outlier.raw`).count()).toBe(layer.rawCount);
      expect(await page.locator('#norms-caption').textContent()).toContain(`${name}: K = ${layer.K}`);
      const points = (await page.locator(`${visible} polyline.norms`).getAttribute('points'))!.split(' ');
      expect(points).toHaveLength(layer.K);
    }
    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
    await page.close();
  });
});
