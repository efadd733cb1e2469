// `scope outer-w8`, q-arvd's default (linear-layers.ts, config.ts layerConfig): at w-bits 4 the
// layers around tiny-arvd's repeated blocks take 8-bit weights, each exactly what w-bits 8
// makes of it, while the block layers are what scope all makes of them; at w-bits 8 it writes
// scope all's bytes; calibration tables record the 8-bit layers and refuse a run that differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { cli } from '../helpers/cli.ts';
import { removeDir, REPO_ROOT, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { loadFixture, OUTER_ARVD, quantFixture, quantize, testCalibration } from './quant-fixtures.ts';


const f = quantFixture('tiny-arvd');
const quantized = (r: QuantReport) => r.layers.filter((l) => l.mode !== 'skipped');
const entry = (r: QuantReport, name: string) => r.layers.find((l) => l.name === name)!;

describe('scope outer-w8', () => {
  it('gives tiny-arvd\'s outer layers what w-bits 8 makes of them and its block layers what w-bits 4 does (q-arvd default and minmax); the model runs', async () => {
    const dir = scratchDir('outer-w8');
    try {
      for (const method of ['q-arvd', 'minmax'] as const) {
        const scope = method === 'minmax' ? { scope: 'outer-w8' } : {};
        const model = await loadFixture(f);
        const mixed = await quantize(model, { 'w-bits': '4', 'a-bits': 'none', ...scope }, undefined, method);
        const w8 = await quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': 'none', scope: 'all' }, undefined, method);
        const w4 = await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': 'none', scope: 'all' }, undefined, method);
        expect(quantized(mixed).filter((l) => l.wBits === 8).map((l) => l.name).sort(), method).toEqual([...OUTER_ARVD].sort());
        expect(quantized(mixed).length, method).toBe(37);
        for (const l of quantized(mixed)) {
          const same = OUTER_ARVD.includes(l.name) ? entry(w8, l.name) : entry(w4, l.name);
          expect([l.mode, l.outliers, l.weightError], `${method} ${l.name}`).toEqual([same.mode, same.outliers, same.weightError]);
        }
        expect(mixed.totals.bytesAfter, method).toBeGreaterThan(w4.totals.bytesAfter);
        expect(mixed.totals.bytesAfter, method).toBeLessThan(w8.totals.bytesAfter);
        const path = `${dir}/${method}.onnx`;
        saveModel(model, path);
        const out = await runModel(path, f.feeds(seededRandom(7)));
        expect(Object.values(out).every((t) => (t.data as Float32Array).every(Number.isFinite)), method).toBe(true);
      }
    } finally {
      removeDir(dir);
    }
  });

  it('refuses block-size with w8-kernel dynamic at w-bits 4, which its 8-bit layers would run in (per-channel scales only)', async () => {
    await expect(quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': 'none', 'block-size': '32', 'w8-kernel': 'dynamic' })).rejects.toThrow(
      /option block-size 32: w8-kernel dynamic .* \(at w-bits 4 for scope outer-w8's 8-bit layers\); use block-size channel or w8-kernel nbits, or scope all/,
    );
    await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': 'none', 'block-size': '32', 'w8-kernel': 'dynamic', scope: 'all' });
  });

  it('writes scope all\'s bytes at w-bits 8 (GPTQ on calibration data)', async () => {
    const dir = scratchDir('outer-w8');
    try {
      const paths: string[] = [];
      for (const scope of ['outer-w8', 'all']) {
        const model = await loadFixture(f);
        await quantize(model, { 'w-bits': '8', 'a-bits': 'none', scope }, testCalibration(f, 2));
        paths.push(`${dir}/${scope}.onnx`);
        saveModel(model, paths.at(-1)!);
      }
      expect(readFileSync(paths[0]!).equals(readFileSync(paths[1]!))).toBe(true);
    } finally {
      removeDir(dir);
    }
  });

  it('records the 8-bit layers in the calibration table, which reproduces the model; a scope all run refuses it', async () => {
    // With quantized outer inputs, the layers differ from scope all's only in their bits (float inputs: the next test).
    const dir = scratchDir('outer-w8');
    try {
      const table = `${dir}/table.json`;
      const made = await loadFixture(f);
      await quantize(made, { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', 'save-calibration': table }, testCalibration(f, 2));
      saveModel(made, `${dir}/made.onnx`);
      expect([...JSON.parse(readFileSync(table, 'utf8')).config.w8Layers].sort()).toEqual([...OUTER_ARVD].sort());
      const again = await loadFixture(f);
      await quantize(again, { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', 'load-calibration': table });
      saveModel(again, `${dir}/again.onnx`);
      expect(readFileSync(`${dir}/again.onnx`).equals(readFileSync(`${dir}/made.onnx`))).toBe(true);
      await expect(quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', scope: 'all', 'load-calibration': table })).rejects.toThrow(
        /gave \/patch_embedding\/MatMul 8-bit weights and this run gives it 4-bit \(7 layer\(s\) differ; the table was made with scope outer-w8\); use the option scope the table was made with \(scope outer-w8\)/,
      );
      // A run on fewer layers reads it (the check is per layer of the run).
      await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', exclude: ['/head/*'], 'load-calibration': table });
      // A table made with every layer at 4 bits (scope all, or before outer-w8) is refused by the default, naming the scope.
      const allTable = `${dir}/all.json`;
      await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', scope: 'all', 'save-calibration': allTable }, testCalibration(f, 2));
      await expect(quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': '8', 'outer-activations': 'quantized', 'load-calibration': allTable })).rejects.toThrow(/4-bit weights and this run gives it 8-bit \(7 layer\(s\) differ; the table was made with every layer at its bits .*\(scope all\)/);
      // A weight-only run reading the A8 table uses its statistics, not its activation-quantizer shifts.
      const w4 = await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': 'none', 'load-calibration': table });
      expect(quantized(w4).filter((l) => l.reconstruction?.activationShift !== undefined)).toEqual([]);
    } finally {
      removeDir(dir);
    }
  });

  it('outer-activations float: the outer layers keep float inputs (8-bit weight-only) under W8A8 and W4A8; no activation quantizer reaches them; the table records it', async () => {
    const dir = scratchDir('outer-float');
    try {
      for (const bits of ['8', '4']) {
        const table = `${dir}/w${bits}.json`;
        const made = await loadFixture(f);
        const report = await quantize(made, { 'w-bits': bits, 'a-bits': '8', 'outer-activations': 'float', 'save-calibration': table }, testCalibration(f, 2));
        const outer = quantized(report).filter((l) => OUTER_ARVD.includes(l.name));
        expect(outer.map((l) => [l.wBits, l.aBits ?? null]), bits).toEqual(OUTER_ARVD.map(() => [8, null]));
        expect(quantized(report).filter((l) => !OUTER_ARVD.includes(l.name)).every((l) => l.aBits === 8 && l.wBits === Number(bits)), bits).toBe(true);
        // No QuantizeLinear of an activation feeds the outer layers; every block layer in integer form has one.
        const quantizes = made.graph.nodes().filter((n) => n.opType === 'QuantizeLinear' && !n.input(0)?.initializer);
        const withQuantizer = new Set(quantizes.map((n) => n.metadata.get('qarvd.layer')));
        const integerBlockLayers = quantized(report).filter((l) => !OUTER_ARVD.includes(l.name) && l.compute !== 'float').map((l) => l.name);
        expect([...withQuantizer].sort(), bits).toEqual(integerBlockLayers.sort());
        expect(integerBlockLayers.length, bits).toBeGreaterThan(10);
        // No activation-quantizer shift in the outer layers' bias correction.
        expect(outer.filter((l) => l.reconstruction?.activationShift !== undefined), bits).toEqual([]);
        saveModel(made, `${dir}/w${bits}.onnx`);
        const out = await runModel(`${dir}/w${bits}.onnx`, f.feeds(seededRandom(7)));
        expect(Object.values(out).every((t) => (t.data as Float32Array).every(Number.isFinite)), bits).toBe(true);
        expect(JSON.parse(readFileSync(table, 'utf8')).config.outerActivations, bits).toBe('float');
        const again = await loadFixture(f);
        await quantize(again, { 'w-bits': bits, 'a-bits': '8', 'outer-activations': 'float', 'load-calibration': table });
        saveModel(again, `${dir}/again-w${bits}.onnx`);
        expect(readFileSync(`${dir}/again-w${bits}.onnx`).equals(readFileSync(`${dir}/w${bits}.onnx`)), bits).toBe(true);
        await expect(quantize(await loadFixture(f), { 'w-bits': bits, 'a-bits': '8', 'outer-activations': 'quantized', 'load-calibration': table })).rejects.toThrow(/was made with outerActivations float, this run has outerActivations quantized/);
        // The default (float since 2026-12-06) reads it. Its log line on the layers kept fp32 tells
        // the outer layers (float inputs by design) from those that lose their activation quantizer
        // (a user trial read "inputs not quantized" of the outer layers in an A8 run).
        const lines: string[] = [];
        const options = resolveOptions(qArvd, { 'w-bits': bits, 'a-bits': '8', 'load-calibration': table }) as unknown as SharedQuantValues;
        const result = await runQuantPass(await loadFixture(f), { log: createLogger({ write: (l) => lines.push(l) }), verbose: false, modelDir: undefined }, options, 'q-arvd');
        const kept = (result.report as QuantReport).layers.filter((l) => l.compute === 'float');
        const lost = kept.filter((l) => l.aBits !== null).length;
        const byDesign = kept.filter((l) => l.aBits === null);
        expect(byDesign.map((l) => l.name).sort(), bits).toEqual([...OUTER_ARVD].sort());
        const keptLine = lines.find((l) => l.includes('layer(s) kept fp32'));
        expect(keptLine, bits).toContain(`${kept.length} layer(s) kept fp32 (quantized weights dequantized at load, float MatMul, `);
        expect(keptLine, bits).toContain(lost ? `, ${lost} of them with inputs not quantized: they run with float activations in this A8 model, ${byDesign.length} weight-only by outer-activations float)` : ', all weight-only by outer-activations float)');
        // With scope all the option changes no layer, and the refusal names the table's setting.
        if (bits === '8') {
          await expect(quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', scope: 'all', 'outer-activations': 'float', 'load-calibration': table })).rejects.toThrow(/was made with outerActivations float, this run has outerActivations quantized/);
          // A run on fewer layers (include) reads the table: the per-layer check passes.
          await expect(quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', 'outer-activations': 'float', include: ['/blocks.*', '/head/*'], 'load-calibration': table })).resolves.toBeDefined();
        }
      }
      // Where the option changes no layer (scope all), the table does not record it: a run with either setting reads the table.
      const allTable = `${dir}/all.json`;
      await quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', scope: 'all', 'outer-activations': 'float', 'save-calibration': allTable }, testCalibration(f, 2));
      expect(JSON.parse(readFileSync(allTable, 'utf8')).config.outerActivations).toBeUndefined();
      await quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', scope: 'all', 'load-calibration': allTable });
      await quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', scope: 'all', 'outer-activations': 'quantized', 'load-calibration': allTable });
      // A table saved with quantized outer inputs (q-arvd's default before 2026-12-06) is refused by today's default, with the way to read it.
      const quantizedTable = `${dir}/quantized.json`;
      await quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', 'outer-activations': 'quantized', 'save-calibration': quantizedTable }, testCalibration(f, 2));
      await expect(quantize(await loadFixture(f), { 'w-bits': '8', 'a-bits': '8', 'load-calibration': quantizedTable })).rejects.toThrow(
        /was made with outerActivations quantized, this run has outerActivations float; .*a table saved by q-arvd before 2026-12-06 with the default has quantized outer inputs: give outer-activations quantized to read it/,
      );
    } finally {
      removeDir(dir);
    }
  });
  it('warns that outer-activations float changes nothing under scope all only when it is asked for (it is q-arvd\'s default)', async () => {
    const dir = scratchDir('outer-warn');
    try {
      // A module that stops calibration at once: the warning comes before calibration, the error after it.
      const calib = join(dir, 'stop.mjs');
      writeFileSync(calib, "export const samples = 1;\nexport async function* feeds() { throw new Error('stop here'); }\n");
      const args = [join(REPO_ROOT, 'examples/tiny-arvd/model.onnx'), '-o', join(dir, 'out.onnx'), '--pass', 'q-arvd', '--q-arvd.scope', 'all', '--q-arvd.calib', calib];
      const asked = await cli(...args, '--q-arvd.outer-activations', 'float');
      const moot = /outer-activations float changes nothing here: it applies to scope outer-w8's layers, and this run has scope all/;
      expect(asked.code, asked.err).toBe(1);
      expect(asked.err).toMatch(moot);
      expect(asked.err).toMatch(/stop here/);
      const byDefault = await cli(...args);
      expect(byDefault.code, byDefault.err).toBe(1);
      expect(byDefault.err).toMatch(/stop here/);
      expect(byDefault.err).not.toMatch(moot);
    } finally {
      removeDir(dir);
    }
  });
});
