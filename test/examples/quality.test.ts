// The quality harness: its plan (rows skipped with the pass's own message, pinned options only
// when declared, one S1 measurement per (bits, draw) shared by the other rows) and a small run
// on tiny-arvd with two calibration draws.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EVALUATION_SEED_STRIDE, formatQuality, MODELS, runQuality, withSeeds } from '../../examples/quality/harness.ts';
import { convertArgs, jobCommand, planJobs, type QuantJob, rowOptions, runJobs } from '../../examples/quality/jobs.ts';
import { BIT_WIDTHS, type QualityRow, ROWS } from '../../examples/quality/rows.ts';
import { signedRankTest } from '../../src/kernels/signed-rank.ts';

const out = mkdtempSync(join(tmpdir(), 'qarvd-quality-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const bits = (label: string) => BIT_WIDTHS.find((b) => b.label === label)!;

const ROWS_SMALL: QualityRow[] = [
  { label: 'minmax', pass: 'minmax', options: {} },
  { label: 'q-arvd', pass: 'q-arvd', options: { 'sensitivity-samples': 2 } },
  { label: 'q-arvd dual off', pass: 'q-arvd', options: { 'dual-scale': false, 'sensitivity-samples': 2 }, pinned: { 'no-such-option': 1 } },
  { label: 'future', pass: 'q-arvd', options: { 'no-such-option': 'x' } },
];

describe('quality plan', () => {
  it('passes options as CLI strings, pins only declared options, and skips with the pass\'s message', () => {
    const ok = rowOptions(ROWS_SMALL[2], bits('W4A8'), 'calib.ts');
    expect(ok).toEqual({ options: { 'w-bits': '4', 'a-bits': '8', calib: 'calib.ts', 'calib-threads': '1', 'dual-scale': 'false', 'sensitivity-samples': '2' } });
    expect(rowOptions(ROWS_SMALL[3], bits('W8A8'), 'c.ts')).toEqual({ skip: "pass q-arvd: unknown option 'no-such-option'" });
    expect(rowOptions({ label: 'auto', pass: 'q-arvd', options: { 'dual-scale': 'maybe' } }, bits('W8A8'), 'c.ts')).toEqual({ skip: expect.stringMatching(/option dual-scale expects/) });
  });

  it('measures S1 once per (bits, draw), or once per draw at one bit-width, and the others read it', () => {
    const per = planJobs(ROWS_SMALL, [bits('W8A8'), bits('W4')], ['a.ts', 'b.ts'], out);
    expect(per.skipped.map((s) => `${s.row.label} ${s.bits.label}`)).toEqual(['future W8A8', 'future W4']);
    expect(per.jobs).toHaveLength(12);
    const savers = per.jobs.filter((j) => j.saves);
    expect(savers.map((j) => j.id)).toEqual(['q-arvd-W8A8-d0', 'q-arvd-W8A8-d1']);
    const dualOff = per.jobs.find((j) => j.id === 'q-arvd-dual-off-W8A8-d1')!;
    expect(dualOff.after).toBe(savers[1]);
    expect(convertArgs(dualOff, 'm.onnx')).toEqual(expect.arrayContaining(['--q-arvd.sensitivity', savers[1].saves!, '--q-arvd.calib', 'b.ts']));
    // Weight-only q-arvd calibrates no activations: no S1.
    expect(per.jobs.filter((j) => j.bits.label === 'W4').every((j) => !j.saves && !j.after)).toBe(true);

    const once = planJobs(ROWS_SMALL, [bits('W8A8'), bits('W4A8')], ['a.ts'], out, 'W4A8');
    expect(once.jobs.filter((j) => j.saves).map((j) => j.id)).toEqual(['q-arvd-W4A8-d0']);
    expect(once.jobs.find((j) => j.id === 'q-arvd-W8A8-d0')!.after!.id).toBe('q-arvd-W4A8-d0');
  });

  it('with shared statistics (the demo), the S1 job saves its collection and the other q-arvd jobs of the draw read it', () => {
    const { jobs } = planJobs(ROWS_SMALL, [bits('W8A8'), bits('W4A8'), bits('W4')], ['a.ts'], out, 'W4A8', true);
    const provider = jobs.find((j) => j.savesStatistics && j.row.pass === 'q-arvd')!;
    expect(provider.id).toBe('q-arvd-W4A8-d0');
    expect(convertArgs(provider, 'm.onnx')).toEqual(expect.arrayContaining(['--q-arvd.save-statistics', provider.savesStatistics!]));
    const readers = jobs.filter((j) => j.statisticsFrom === provider).map((j) => j.id);
    // Every other q-arvd job that folds its split layers' producers alike (fold-split): not dual off,
    // and not minmax, which calibrate the model with its channels in the original order.
    const expected = jobs.filter((j) => j !== provider && j.row.pass === 'q-arvd' && !j.row.label.includes('dual off')).map((j) => j.id);
    expect(readers.sort()).toEqual(expected.sort());
    expect(readers).toEqual(expect.arrayContaining(['q-arvd-W4-d0', 'q-arvd-W8A8-d0']));
    for (const id of ['minmax-W8A8-d0', 'minmax-W4-d0', 'q-arvd-dual-off-W8A8-d0']) expect(convertArgs(jobs.find((j) => j.id === id)!, 'm.onnx').some((a) => a.includes('load-statistics')), id).toBe(false);
    expect(convertArgs(jobs.find((j) => j.id === 'q-arvd-W8A8-d0')!, 'm.onnx')).toEqual(expect.arrayContaining(['--q-arvd.load-statistics', provider.savesStatistics!]));
    // The minmax jobs with activations share one collection of their own: the first collects, the others read its ranges.
    const [mW8A8, mW4A8, mW4] = ['minmax-W8A8-d0', 'minmax-W4A8-d0', 'minmax-W4-d0'].map((id) => jobs.find((j) => j.id === id)!);
    expect(mW8A8.savesStatistics).toBe(join(out, 'statistics-minmax-d0.bin'));
    expect(convertArgs(mW8A8, 'm.onnx')).toEqual(expect.arrayContaining(['--minmax.save-statistics', mW8A8.savesStatistics!]));
    expect(mW4A8.statisticsFrom).toBe(mW8A8);
    expect(convertArgs(mW4A8, 'm.onnx')).toEqual(expect.arrayContaining(['--minmax.load-statistics', mW8A8.savesStatistics!]));
    expect(mW4.statisticsFrom ?? mW4.savesStatistics).toBeUndefined(); // weight-only: no activation ranges
    // The S1 curve is written as soon as it is measured, and read from there.
    expect(convertArgs(provider, 'm.onnx')).toEqual(expect.arrayContaining(['--q-arvd.save-sensitivity', provider.savesSensitivity!]));
    expect(convertArgs(jobs.find((j) => j.id === 'q-arvd-W8A8-d0')!, 'm.onnx')).toEqual(expect.arrayContaining(['--q-arvd.sensitivity', provider.savesSensitivity!]));
  });

  it('with shared statistics over the full table, the provider is a job that collects Gram matrices (the RTN rows come first and collect none)', () => {
    expect(() => planJobs(ROWS, [bits('W8A8'), bits('W4')], ['a.ts'], out, undefined, true)).toThrow(/need s1From/);
    const { jobs } = planJobs(ROWS, [bits('W8A8'), bits('W4A8'), bits('W4')], ['a.ts', 'b.ts'], out, 'W4A8', true);
    const blocks = (j: { options: Record<string, string> }) => j.options.scope === 'blocks';
    const qarvd = (j: QuantJob) => j.row.pass === 'q-arvd';
    const providers = jobs.filter((j) => j.savesStatistics && qarvd(j) && !blocks(j));
    expect(providers.map((j) => j.draw).sort()).toEqual([0, 1]);
    // The scope-blocks rows calibrate other layers: their own provider per draw, own files, read only by them.
    const blockProviders = jobs.filter((j) => j.savesStatistics && qarvd(j) && blocks(j));
    expect(blockProviders.map((j) => j.draw).sort()).toEqual([0, 1]);
    expect(new Set(jobs.filter((j) => j.savesStatistics && qarvd(j)).map((j) => j.savesStatistics)).size).toBe(4);
    // The minmax rows with activations (minmax, minmax blocks, minmax outer-w8) share one collection
    // per draw and selection among themselves; every file is written by one job.
    const minmaxProviders = jobs.filter((j) => j.savesStatistics && !qarvd(j));
    expect(minmaxProviders.map((j) => `${j.row.label} d${j.draw}`).sort()).toEqual(['minmax blocks d0', 'minmax blocks d1', 'minmax d0', 'minmax d1', 'minmax outer-w8 d0', 'minmax outer-w8 d1']);
    expect(new Set(jobs.filter((j) => j.savesStatistics).map((j) => j.savesStatistics)).size).toBe(10);
    for (const j of jobs.filter((x) => x.statisticsFrom && !qarvd(x))) {
      expect(j.options['a-bits'], j.id).not.toBe('none');
      expect([j.statisticsFrom!.draw, j.statisticsFrom!.options.scope], j.id).toEqual([j.draw, j.options.scope]);
    }
    for (const j of jobs) if (j.statisticsFrom) expect(blocks(j.statisticsFrom), j.id).toBe(blocks(j));
    for (const j of jobs) if (j.after) expect(blocks(j.after), j.id).toBe(blocks(j));
    for (const p of providers) {
      expect(p.bits.label).toBe('W4A8');
      expect(p.saves).toBeDefined();
      expect(p.options.reconstruct === 'none' && p.options['bias-correction'] === 'false').toBe(false);
    }
    expect(jobs.find((j) => j.id === 'q-arvd-RTN-W4A8-d0')!.after).toBe(providers.find((p) => p.draw === 0));
  });

  it('resumes: a job whose model and table an earlier run left is not run again', async () => {
    const { jobs } = planJobs(ROWS_SMALL.slice(0, 2), [bits('W8A8')], ['missing-module.ts'], out);
    for (const j of jobs) writeFileSync(j.output, '');
    writeFileSync(jobs[1].saves!, '{}');
    // The calibration module does not exist: any convert run would fail.
    await runJobs(jobs, 'missing.onnx', 2, undefined, true);
    expect(jobs.map((j) => j.ms)).toEqual([NaN, NaN]);
    for (const j of [...jobs.map((x) => x.output), jobs[1].saves!]) rmSync(j);
  });

  it('runs the onnxruntime peer rows through the recipe command, the static one on the draw\'s calibration module', () => {
    const peers = ROWS.filter((r) => r.pass === 'onnxruntime');
    expect(peers.map((r) => [r.label, r.bits])).toEqual([
      ['onnxruntime quantize_static W8A8', ['W8A8']],
      ['onnxruntime quantize_dynamic W8', ['W8']],
      ['onnxruntime MatMulNBits W4 block32 RTN', ['W4']],
    ]);
    const { jobs, skipped } = planJobs(peers.filter((r) => r.bits![0] !== 'W8'), [bits('W8A8'), bits('W4')], ['a.ts', 'b.ts'], out);
    expect(skipped).toEqual([]);
    expect(jobs.map((j) => j.id)).toEqual(['onnxruntime-quantize-static-W8A8-W8A8-d0', 'onnxruntime-quantize-static-W8A8-W8A8-d1', 'onnxruntime-MatMulNBits-W4-block32-RTN-W4-d0', 'onnxruntime-MatMulNBits-W4-block32-RTN-W4-d1']);
    const cmd = jobCommand(jobs[1]!, 'm.onnx');
    expect(cmd.slice(0, 2)).toEqual(['--import', 'tsx']);
    expect(cmd[2]).toMatch(/bench\/peers\/onnxruntime-recipe-cli\.ts$/);
    expect(cmd.slice(3)).toEqual(['m.onnx', '-o', jobs[1]!.output, '--recipe', 'static', '--calib', 'b.ts']);
    expect(jobCommand(jobs[2]!, 'm.onnx').slice(3)).toEqual(['m.onnx', '-o', jobs[2]!.output, '--recipe', 'nbits', '--block-size', '32', '--accuracy-level', '4']);
    const dynamic = planJobs(peers, [bits('W8')], ['a.ts'], out).jobs;
    expect(dynamic.map((j) => j.id)).toEqual(['onnxruntime-quantize-dynamic-W8-W8-d0']);
    expect(jobCommand(dynamic[0]!, 'm.onnx').slice(3)).toEqual(['m.onnx', '-o', dynamic[0]!.output, '--recipe', 'dynamic']);
    expect(rowOptions({ label: 'x', pass: 'onnxruntime', options: { recipe: 'awq' } }, bits('W4'), 'c.ts')).toEqual({ skip: "onnxruntime recipe 'awq' unknown; known: static, nbits, dynamic" });
  });

  it('evaluates each prompt with more noise seeds when asked, the first being the prompt\'s own', () => {
    const prompts = [{ prompt: 'a', seed: 90001 }, { prompt: 'b', seed: 90002 }];
    expect(withSeeds(prompts, 1)).toEqual(prompts);
    expect(withSeeds(prompts, 3).map((p) => `${p.prompt}${p.seed}`)).toEqual(['a90001', 'b90002', `a${90001 + EVALUATION_SEED_STRIDE}`, `b${90002 + EVALUATION_SEED_STRIDE}`, `a${90001 + 2 * EVALUATION_SEED_STRIDE}`, `b${90002 + 2 * EVALUATION_SEED_STRIDE}`]);
    expect(() => withSeeds(prompts, 0)).toThrow(/seeds: expected a whole number ≥ 1, got 0/);
  });

  it('lists today\'s rows and the future ones at every bit-width the issue asks for', () => {
    expect(BIT_WIDTHS.map((b) => b.label)).toEqual(['W8A8', 'W4A8', 'W4A6', 'W8', 'W4']);
    const labels = ROWS.map((r) => r.label);
    expect(labels.slice(0, 3)).toEqual(['minmax', 'q-arvd RTN', 'q-arvd RTN dual off']);
    for (const r of ROWS.slice(0, 3)) expect('options' in rowOptions(r, bits('W4A6'), 'c.ts')).toBe(true);
  });
});

describe('quality run', () => {
  it('quantizes every row on two draws, evaluates identical files once and prints mean and spread', async () => {
    // tiny-arvd calibrated on 4 of its rollouts instead of 16, to keep the test short.
    const rolloutPath = join(out, 'four-rollouts.mts');
    writeFileSync(rolloutPath, `export { prompts, evaluationPrompts, rollout } from ${JSON.stringify(MODELS['tiny-arvd'].rolloutPath)};\nexport const samples = 4;\n`);
    const model = { ...MODELS['tiny-arvd'], rolloutPath };
    const result = await runQuality({ model, draws: 2, prompts: 2, bitWidths: [bits('W8A8'), bits('W4')], rows: ROWS_SMALL, out, twins: 1 });
    const table = formatQuality(result);
    console.log(table);
    expect(result.entries).toHaveLength(6);
    for (const e of result.entries) expect(e.draws).toHaveLength(2);
    const get = (row: string, b: string) => result.entries.find((e) => e.row.label === row && e.bits.label === b)!;
    // Calibration draws change activation ranges: W8A8 models differ between draws.
    expect(get('minmax', 'W8A8').draws[0].mse).not.toBe(get('minmax', 'W8A8').draws[1].mse);
    // Weight-only today ignores calibration: both draws are one file, evaluated once.
    expect(get('minmax', 'W4').draws[0].mse).toBe(get('minmax', 'W4').draws[1].mse);
    expect(result.evaluated).toBeLessThan(12);
    // Every quantized row has a finite, positive one-step error, and 4-bit weights err more than 8-bit ones.
    for (const e of result.entries) for (const d of e.draws) expect(d.stepError).toBeGreaterThan(0);
    expect(get('minmax', 'W4').draws[0].stepError).toBeGreaterThan(get('minmax', 'W8A8').draws[0].stepError);
    expect(table).toMatch(/1-step ×minmax/);
    // One twin per model (twins.ts): its own MSE, and the row's spread of twin ÷ model in the table; fp32's twin against fp32.
    for (const e of result.entries) for (const d of e.draws) expect(d.twins).toHaveLength(1);
    const w4 = get('minmax', 'W4').draws[0];
    // minmax W4 ignores calibration: both draws are one file, so its twin spread is one ratio.
    const ratio = (w4.twins![0]!.mse / w4.mse).toFixed(2);
    expect(table).toMatch(new RegExp(`^W4 +minmax +.* ${ratio}–${ratio} `, 'm'));
    expect(result.fp32Twins).toHaveLength(1);
    expect(result.fp32Twins![0]!.mse).toBeLessThan(w4.mse / 100);
    expect(result.fp32Twins![0]!.stepError).toBeGreaterThan(0);
    expect(table).toMatch(/fp32's twins against fp32: final-video MSE /);
    // The paired comparison, rollout by rollout: minmax against itself is 1 with none below;
    // another row's is the geometric mean of its per-rollout ratios (2 draws × 2 prompts).
    expect(table).toMatch(/^W8A8 +minmax +\S+ +\S+ +\S+ +1\.000 +1\.000–1\.000 +1\.000 +0\/4 /m);
    const [row, base] = [get('q-arvd dual off', 'W8A8'), get('minmax', 'W8A8')];
    const logs = row.draws.flatMap((d, i) => d.promptMse.map((m, p) => Math.log(m / base.draws[i].promptMse[p])));
    const below = row.draws.flatMap((d, i) => d.promptMse.filter((m, p) => m < base.draws[i].promptMse[p])).length;
    expect(logs).toHaveLength(4);
    // Then the signed-rank test's p over those 4 log ratios (minmax against itself: nothing ranked, p = 1).
    const p = signedRankTest(logs).p;
    expect(p).toBeGreaterThan(0.1); // 4 rollouts cannot reach a small p: the smallest two-sided p is 2/16
    expect(table).toMatch(new RegExp(`^W8A8 +q-arvd dual off +.* ${Math.exp(logs.reduce((a, b) => a + b) / 4).toFixed(3)} +${below}/4 +${p.toFixed(3)} `, 'm'));
    expect(table).toMatch(/^W8A8 +minmax +.* 0\/4 +1\.000 /m);
    // With a "… dual auto" row beside its "… dual off" row, the table compares the two the same way.
    expect(table).not.toContain('dual-scale auto against off');
    const relabelled = { ...result, entries: result.entries.map((e) => (e.row.label === 'q-arvd' ? { ...e, row: { ...e.row, label: 'q-arvd dual auto' } } : e)) };
    const [auto, off] = [get('q-arvd', 'W4'), get('q-arvd dual off', 'W4')];
    const pairLogs = auto.draws.flatMap((d, i) => d.promptMse.map((m, q) => Math.log(m / off.draws[i].promptMse[q])));
    const perDraw = auto.draws.map((d, i) => (d.mse / off.draws[i].mse).toFixed(3)).join(', ');
    expect(formatQuality(relabelled)).toContain(
      `W4 q-arvd dual auto ÷ q-arvd dual off: mean MSE per draw ${perDraw}; paired ${Math.exp(pairLogs.reduce((a, b) => a + b) / 4).toFixed(3)}, ` +
        `${auto.draws.flatMap((d, i) => d.promptMse.filter((m, q) => m < off.draws[i].promptMse[q])).length}/4 rollouts below, p = ${signedRankTest(pairLogs).p.toFixed(3)}`,
    );
    expect(table).toContain('2 evaluation prompts (fixed, disjoint from the 4 calibration prompts)');
    expect(table).toMatch(/^W8A8 +q-arvd dual off +\d/m);
    expect(table).toContain("skipped: future at W8A8, W4 (pass q-arvd: unknown option 'no-such-option')");
    expect(table).toMatch(/time: quantization [\d.]+ s \(12 convert runs; 2 measured S1/);
    // A run without S1 jobs (minmax rows only) says none was measured, not that their times were reused (found by a trial).
    const noS1 = formatQuality({ ...result, timings: { ...result.timings, jobs: result.timings.jobs.filter((j) => !j.s1) } });
    expect(noS1).toMatch(/; 0 measured S1; /);
    expect(noS1).not.toContain('reused');
  }, 600_000);
});
