// dual-scale auto's whole-model check (src/passes/quant/split-check.ts) on the bundled ARVD
// with its rollout module, kept short: six calibration prompts (the fewest with which its signed-rank
// test can undo the splits). What it must show: the check
// measured the two models it chose between — the model it emits, rolled out here on the same
// samples with onnxruntime, has the final-result error the report gives for the form it kept,
// and the model `split-check none` emits (auto's splits, unchecked) has the other — and a
// loaded calibration table reproduces the kept model byte for byte.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { contextFor } from '../../src/passes/calibration/samples.ts';
import { checkCalibrationModule } from '../../src/passes/calibration/module.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { SPLIT_CHECK_LEVEL, splitCheckVerdict } from '../../src/passes/quant/split-check.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('split-check');
afterAll(() => removeDir(dir));
const calibration: CalibrationModule = { rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 6) };

async function quantize(raw: Record<string, unknown>, name: string, lines: string[] = []) {
  const model = loadModel(MODEL_PATH);
  const log = createLogger({ write: (l) => lines.push(l), verbose: true });
  const options = resolveOptions(qArvd, { 'calib-threads': 1, ...raw }) as unknown as SharedQuantValues;
  const result = await runQuantPass(model, { log, verbose: true, modelDir: undefined }, options, 'q-arvd', raw['load-calibration'] ? undefined : calibration);
  const path = join(dir, `${name}.onnx`);
  saveModel(model, path);
  return { report: result.report as QuantReport, path };
}

/** The mean squared difference of a model's final results from fp32's over the calibration samples, rolled out as calibration does (same contexts). */
async function calibrationError(path: string): Promise<number> {
  const calib = checkCalibrationModule(calibration);
  const one = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  const rollout = async (file: string, sample: number) => {
    const session = await ort.InferenceSession.create(file, one);
    try {
      const out = (await calibration.rollout!((feeds) => session.run(feeds) as Promise<Record<string, ort.Tensor>>, contextFor(calib, sample))) as ort.Tensor;
      return out.data as Float32Array;
    } finally {
      await session.release();
    }
  };
  let sum = 0;
  for (let s = 0; s < calib.samples; s++) {
    const ref = await rollout(MODEL_PATH, s);
    const v = await rollout(path, s);
    let e = 0;
    for (let i = 0; i < v.length; i++) e += (v[i]! - ref[i]!) ** 2;
    sum += e / v.length;
  }
  return sum / calib.samples;
}

describe('dual-scale auto: the split check on the calibration rollouts (tiny-arvd, 6 prompts)', () => {
  it('emits the model its verdict keeps, with the errors it reports, and a loaded table reproduces it', async () => {
    const table = join(dir, 'w8a8.calibration.json');
    const lines: string[] = [];
    // S1 off: the check does not depend on it, and it is the longest step here.
    const w8a8 = { 'w-bits': '8', 'a-bits': '8', 'frame-weighting': false };
    const checked = await quantize({ ...w8a8, 'save-calibration': table }, 'checked', lines);
    const c = checked.report.splitCheck!;
    expect(c, 'the report carries the check').toBeDefined();
    expect(c.samples).toBe(6);
    expect(c.splits).toBeGreaterThan(0);
    // The verdict is the signed-rank test's on the per-sample errors it reports (not the lower mean).
    expect(c.p).toBeGreaterThan(0);
    expect({ kept: c.kept, p: c.p }).toEqual(splitCheckVerdict(c.mse, c.perSample!));
    if (c.kept === 'off') expect(c.p!).toBeLessThan(SPLIT_CHECK_LEVEL);
    // Each sample's error, per model: their mean is the score.
    for (const form of ['auto', 'off'] as const) {
      const per = c.perSample![form];
      expect(per).toHaveLength(6);
      expect(Math.abs(per.reduce((a, b) => a + b, 0) / 6 - c.mse[form]) / c.mse[form]).toBeLessThan(1e-12);
    }
    const favoured = c.perSample!.auto.filter((a, i) => a < c.perSample!.off[i]!).length;
    expect(lines.some((l) => l.includes(`nearer fp32 with the splits on ${favoured} of the 6 samples both finished`) && l.includes(`signed-rank p = ${c.p!.toPrecision(3)}`))).toBe(true);
    expect(lines.some((l) => l.includes('split check: 6 calibration rollout(s)'))).toBe(true);
    // Said before the rollouts start, with what they will be, and before the verdict.
    const start = lines.findIndex((l) => l.includes(`split check: dual-scale auto kept ${c.splits} split(s); rolling out 6 calibration sample(s)`));
    expect(start).toBeGreaterThanOrEqual(0);
    expect(start).toBeLessThan(lines.findIndex((l) => l.includes('split check: 6 calibration rollout(s)')));

    // The unchecked auto model: its splits are the ones the check weighed.
    const unchecked = await quantize({ ...w8a8, 'split-check': 'none' }, 'unchecked');
    expect(unchecked.report.splitCheck).toBeUndefined();
    expect(unchecked.report.totals.layers.dual).toBe(c.splits);
    const autoError = await calibrationError(unchecked.path);
    const keptError = await calibrationError(checked.path);
    // Not to the last bit: the check's fp32 reference is the model after fold-split, whose
    // permuted channels sum in another order (relative differences of 1e-6 here, where the two
    // forms differ by percents).
    const near = (a: number, b: number) => Math.abs(a - b) / b;
    expect(near(autoError, c.mse.auto)).toBeLessThan(1e-4);
    expect(near(keptError, c.kept === 'auto' ? c.mse.auto : c.mse.off)).toBeLessThan(1e-4);
    expect(keptError).toBeLessThanOrEqual(autoError);
    if (c.kept === 'off') {
      expect(checked.report.totals.layers.dual).toBe(0);
      // The layers auto had split keep the errors it compared.
      expect(checked.report.layers.filter((l) => l.splitChoice).length).toBeGreaterThanOrEqual(c.splits);
    } else {
      expect(readFileSync(checked.path).equals(readFileSync(unchecked.path))).toBe(true);
    }

    const loaded = await quantize({ ...w8a8, 'load-calibration': table }, 'loaded');
    expect(loaded.report.splitCheck).toEqual({ ...c, run: 'W8A8 qdq, reconstruct gptq, bias-correction true, activation-objective fp32, damp auto act-order true, integer-kernels auto, scope outer-w8' });
    expect(readFileSync(loaded.path).equals(readFileSync(checked.path)), 'load-calibration reproduces the kept model').toBe(true);

    // The verdict 'off', read from a table: the model without the splits, which the check measured.
    const offTable = join(dir, 'off.calibration.json');
    const saved = JSON.parse(readFileSync(table, 'utf8'));
    writeFileSync(offTable, JSON.stringify({ ...saved, splitCheck: { ...saved.splitCheck, kept: 'off' } }));
    copyFileSync(`${table}.recon`, `${offTable}.recon`);
    const offLines: string[] = [];
    const off = await quantize({ ...w8a8, 'load-calibration': offTable }, 'off', offLines);
    expect(off.report.totals.layers.dual).toBe(0);
    expect(offLines.some((l) => l.includes('its split check (6 rollouts') && l.includes('every layer single-scale, as in that run'))).toBe(true);
    expect(near(await calibrationError(off.path), c.mse.off)).toBeLessThan(1e-4);

    // A table from a build before the signed-rank rule (no p) that undid the splits by the lower
    // mean: judged again from its 6 samples' errors; with 4 kept, too few: the splits stay.
    const earlier = (name: string, perSample: { auto: number[]; off: number[] }) => {
      const file = join(dir, `${name}.calibration.json`);
      const { p: _, ...check } = saved.splitCheck;
      writeFileSync(file, JSON.stringify({ ...saved, splitCheck: { ...check, kept: 'off', perSample } }));
      copyFileSync(`${table}.recon`, `${file}.recon`);
      return file;
    };
    const rejudged = splitCheckVerdict(c.mse, c.perSample!);
    const earlierLines: string[] = [];
    const six = await quantize({ ...w8a8, 'load-calibration': earlier('earlier-six', c.perSample!) }, 'earlier-six', earlierLines);
    expect(six.report.splitCheck).toMatchObject({ kept: rejudged.kept, p: rejudged.p });
    if (rejudged.kept === 'auto') {
      expect(six.report.totals.layers.dual).toBe(c.splits);
      expect(earlierLines.some((l) => l.includes("undid the splits by an earlier build's rule (the lower mean); judged again from its 6 samples' errors by the signed-rank test"))).toBe(true);
    } else expect(six.report.totals.layers.dual).toBe(0);
    const fewLines: string[] = [];
    const four = { auto: c.perSample!.auto.slice(0, 4), off: c.perSample!.off.slice(0, 4) };
    const few = await quantize({ ...w8a8, 'load-calibration': earlier('earlier-four', four) }, 'earlier-four', fewLines);
    expect(few.report.totals.layers.dual).toBe(c.splits);
    expect(fewLines.some((l) => l.includes("undid the splits by an earlier build's rule (the lower mean) on 4 sample(s), too few for the signed-rank test that decides now (6)"))).toBe(true);

    // The verdict holds for the run that measured it: a weight-only W4 run reading the same
    // table keeps auto's splits, unchecked, and says why (found by review: it took W8A8's verdict).
    const w4Lines: string[] = [];
    const w4 = await quantize({ 'w-bits': '4', 'a-bits': 'none', 'frame-weighting': false, 'load-calibration': offTable }, 'w4', w4Lines);
    expect(w4.report.totals.layers.dual).toBeGreaterThan(0);
    expect(w4.report.splitCheck).toBeUndefined();
    expect(w4Lines.some((l) => l.includes(`was measured for W8A8 qdq`) && l.includes('not for this run (W4 qdq'))).toBe(true);
  }, 600_000);

  it("with S1 measured in the run, compares against S1's fp32 rollouts and still reports the emitted model's own error", async () => {
    const lines: string[] = [];
    // Weight-only W4 with frame weighting (the default): S1 rolls fp32 out on the same 6 samples.
    const checked = await quantize({ 'w-bits': '4', 'a-bits': 'none' }, 'w4-s1', lines);
    const c = checked.report.splitCheck!;
    expect(c, 'auto kept splits here, so the check ran').toBeDefined();
    expect(lines.some((l) => l.includes(`rolling out 6 calibration sample(s) with the splits and without them, against S1's fp32 rollouts of them`))).toBe(true);
    // S1's fp32 is the calibration session's model (after fold-split): the same function, to float rounding.
    const keptError = await calibrationError(checked.path);
    expect(Math.abs(keptError - (c.kept === 'auto' ? c.mse.auto : c.mse.off)) / keptError).toBeLessThan(1e-4);
  }, 600_000);

  it('does not roll out fewer samples than its test needs, and says so', async () => {
    const lines: string[] = [];
    const few = await quantize({ 'w-bits': '8', 'a-bits': '8', 'frame-weighting': false, 'sensitivity-samples': 5 }, 'five', lines);
    expect(few.report.splitCheck).toBeUndefined();
    const kept = few.report.layers.filter((l) => l.splitChoice && l.mode === 'dual').length;
    expect(kept).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes(`split-check rollout skipped: it would roll out 5 calibration sample(s), and with fewer than 6 no difference between the two models can reach the 5% level of its signed-rank test; dual-scale auto's ${kept} split(s) stand`))).toBe(true);
  }, 600_000);

  it('says when auto kept splits that it could not check (a feeds module)', async () => {
    const lines: string[] = [];
    // The rollout module's calls as plain feeds: the same layers, no rollouts to compare.
    const feeds: CalibrationModule = {
      samples: 2,
      async *feeds(ctx) {
        const calls: Record<string, ort.Tensor>[] = [];
        const s = await ort.InferenceSession.create(MODEL_PATH, { intraOpNumThreads: 1 });
        try {
          await tinyArvd.rollout(async (f) => {
            calls.push(f);
            return (await s.run(f)) as Record<string, ort.Tensor>;
          }, { ...ctx, prompt: tinyArvd.prompts[ctx.sample] });
        } finally {
          await s.release();
        }
        for (const f of calls.slice(0, 6)) yield { feeds: f };
      },
    };
    const model = loadModel(MODEL_PATH);
    const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': 'none', 'calib-threads': 1 }) as unknown as SharedQuantValues;
    const result = await runQuantPass(model, { log: createLogger({ write: (l) => lines.push(l), verbose: true }), verbose: true, modelDir: undefined }, options, 'q-arvd', feeds);
    const report = result.report as QuantReport;
    expect(report.splitCheck).toBeUndefined();
    const kept = report.layers.filter((l) => l.splitChoice && l.mode === 'dual').length;
    expect(kept).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes(`split-check rollout skipped: it rolls out the calibration samples, and the calibration data given is not a rollout module; dual-scale auto's ${kept} split(s) stand`))).toBe(true);
  }, 600_000);
});
