// A shortened `npm run demo` on the small tiny-arvd (the demo's own model is tiny-arvd-l): the 16
// calibration rollouts, but 3 held-out prompts and 3 latency runs, on fixed seeds. The table
// has its rows and columns, and the claims hold — at W4A8 q-arvd (S1+S2) is no worse than
// minmax, at W8A8 every method stays above 35 dB PSNR.
import { mkdtempSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/passes/log.ts';
import { MODELS } from '../../examples/quality/harness.ts';
import { BIT_WIDTHS, METHODS, runDemo, type DemoResult } from '../../examples/tiny-arvd/demo.ts';
import { EVALUATION_SET } from '../../examples/tiny-arvd/prompts.ts';

const out = mkdtempSync(join(tmpdir(), 'qarvd-demo-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('the demo, shortened', () => {
  let result: DemoResult;

  it('runs and prints one table with every method at every bit-width', async () => {
    result = await runDemo({ out, model: MODELS['tiny-arvd'], evaluationPrompts: EVALUATION_SET.slice(0, 3), latencyRuns: 3, log: createLogger({ write: () => {} }) });
    console.log(result.table);
    const names = result.evaluation.models.map((m) => m.name);
    expect(names).toEqual(BIT_WIDTHS.flatMap((b) => METHODS.map((m) => `${m} ${b.label}`)));
    const lines = result.table.split('\n');
    for (const name of ['fp32', ...names]) expect(lines.some((l) => l.startsWith(name + ' '))).toBe(true);
    expect(result.table).toContain('3 prompts;');
    expect(lines.find((l) => l.startsWith('model'))).toMatch(/MSE\s+PSNR dB\s+1-step\s+MSE c0 .* MSE c5\s+bytes\s+size\/fp32\s+ms\/call\s+time\/fp32/);
    for (const m of result.evaluation.models) {
      expect(m.chunkMse).toHaveLength(6);
      // The one-step error of every model, the q-arvd ones included (evaluated later, against
      // fp32's videos and replayed calls from the first evaluation).
      expect(m.stepError).toBeGreaterThan(0);
      expect(m.sizeRatio).toBeLessThan(0.6);
    }
    for (const f of ['frames-W8A8.png', 'frames-W4A8.png', 'frames-W4.png', 'report.html', 'sensitivity.json', 'q-arvd-S1-S2-W4A8.onnx', 'minmax-W4.report.json']) expect(existsSync(join(out, f))).toBe(true);
    // S1 once, at W4A8, on the demo's few rollouts; the other q-arvd runs read that curve.
    expect(result.reports['q-arvd S1+S2 W4A8'].calibration?.sensitivity?.samples).toBe(4);
    expect(result.reports['q-arvd S1+S2 W8A8'].sensitivity).toEqual(result.sensitivity);
    // One collection: the W4A8 q-arvd run saves it, the other q-arvd runs read it (their logs
    // say so), and the file (an intermediate) is gone afterwards.
    for (const bits of ['W8A8', 'W4']) expect(readFileSync(join(out, `q-arvd-S1-S2-${bits}.log`), 'utf8')).toMatch(/collect step read from .*statistics-d0\.bin/);
    expect(readFileSync(join(out, 'q-arvd-S1-S2-W4A8.log'), 'utf8')).toMatch(/calibrated 37 layers on 16 sample\(s\) .*: collect \d/);
    expect(existsSync(join(out, 'statistics-d0.bin'))).toBe(false);
    // The W8A8 run read the S1 curve the W4A8 run wrote as soon as it had measured it.
    expect(result.reports['q-arvd S1+S2 W8A8'].calibration?.seconds?.sensitivity).toBeDefined();
    expect(JSON.parse(readFileSync(join(out, 'sensitivity-d0.json'), 'utf8')).sensitivity.normalized).toEqual(result.sensitivity);
    // fp32 and minmax were evaluated while q-arvd ran; the latency covers every model.
    expect(result.timings.overlapped).toBeGreaterThan(0);
    for (const m of [result.evaluation.fp32, ...result.evaluation.models]) expect(m.latencyMs).toBeGreaterThan(0);
    // About 40 s on an idle 2-core machine; the suite-wide 120 s is too tight when it is busy.
  }, 300_000);

  it('measures a sensitivity curve over the 6 chunks, first chunk largest', () => {
    expect(result.sensitivity).toHaveLength(6);
    expect(result.sensitivity.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(result.sensitivity[0]).toBe(Math.max(...result.sensitivity));
    expect(result.alpha.reduce((a, b) => a + b, 0) / 6).toBeCloseTo(1, 6);
  });

  it('holds the claims: W4A8 q-arvd (S1+S2) MSE ≤ minmax; W8A8 PSNR ≥ 35 dB', () => {
    const get = (name: string) => result.evaluation.models.find((m) => m.name === name)!;
    console.log(`W4A8 MSE: minmax ${get('minmax W4A8').mse.toExponential(3)}, q-arvd S1+S2 ${get('q-arvd S1+S2 W4A8').mse.toExponential(3)}`);
    expect(get('q-arvd S1+S2 W4A8').mse).toBeLessThanOrEqual(get('minmax W4A8').mse);
    for (const m of METHODS) expect(get(`${m} W8A8`).psnr).toBeGreaterThanOrEqual(35);
  });
});
