// Reconstruction statistics in bounded memory (statistics-memory, src/passes/calibration/grouped.ts)
// on the bundled ARVD (examples/tiny-arvd, its rollout module: 6 chunks; two calibration prompts
// so that damp auto has its two folds). A budget that forces several groups collects the groups
// after the first α-weighted (one sum per fold, no chunk factor): their H differs from the
// one-group H only in the order of float64 sums, so it agrees to about calls·2⁻⁵³ relative (see
// reconAgreement), μ and the weights are bit for bit the same, and the model and calibration
// table are byte for byte the one-group ones; a budget between the α-weighted and the per-chunk
// estimate (which used to be refused) runs; so do sequential mode with its stages grouped and
// gram-stride 2 (against the one-group run of the same stride); a layer too large for the
// budget alone is refused naming the layer and the option.
// Each run calibrates 2 rollouts, S1's rollouts and one more collection per group: seconds each.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { inputStatisticsBytes, parseBytes } from '../../src/passes/calibration/grouped.ts';
import { readReconFile } from '../../src/passes/calibration/recon-file.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('grouped-statistics');
afterAll(() => removeDir(dir));
const calibration: CalibrationModule = { rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 2) };

/** Quantizes tiny-arvd W4A8 (S1 from one rollout) and returns the model's bytes, its table's and side file's, and the log. */
async function quantize(name: string, raw: Record<string, unknown>, withData = true, module = calibration) {
  const model = loadModel(MODEL_PATH);
  const lines: string[] = [];
  const table = join(dir, `${name}.json`);
  // split-check none: grouped statistics skip the check (split-check.ts), so both sides go without it.
  const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': '8', 'calib-threads': 1, 'sensitivity-samples': 1, 'split-check': 'none', ...(withData ? { 'save-calibration': table } : {}), ...raw }) as unknown as SharedQuantValues;
  await runQuantPass(model, { log: createLogger({ write: (l) => lines.push(l), verbose: true }), verbose: true, modelDir: undefined }, options, 'q-arvd', withData ? module : undefined);
  const path = join(dir, `${name}.onnx`);
  saveModel(model, path);
  return { model: readFileSync(path), table: withData ? readFileSync(table, 'utf8') : '', recon: withData ? readFileSync(`${table}.recon`) : Buffer.alloc(0), lines, tablePath: table };
}

/**
 * How far the `.recon` statistics of run `b` are from run `a`'s: the largest
 * `|ΔH_ij| / √(H_ii·H_jj)` over every input's H and its two folds (Cauchy–Schwarz bounds a sum's
 * rounding error by that scale times calls·2⁻⁵³ whatever the cancellation, so the ratio is
 * meaningful also where H_ij is near 0), and whether μ, the weights and the inputs are the same.
 */
function reconAgreement(a: string, b: string) {
  const other = new Map([...readReconFile(b).stats].map(([name, s]) => [name, s]));
  let maxRelH = 0;
  let sameMeans = true;
  let layers = 0;
  for (const [name, x] of readReconFile(a).stats) {
    const y = other.get(name);
    if (!y || y.K !== x.K || y.weight !== x.weight || !!y.folds !== !!x.folds) return { maxRelH: Infinity, sameMeans: false, layers };
    layers++;
    const K = x.K;
    for (const [p, q] of [[x, y], ...(x.folds ? x.folds.map((f, i) => [f, y.folds![i]!]) : [])] as [typeof x, typeof y][]) {
      if (p.weight !== q.weight || p.mean.some((m, k) => !Object.is(m, q.mean[k]))) sameMeans = false;
      for (let i = 0; i < K; i++) {
        for (let j = 0; j < K; j++) {
          const d = Math.abs(p.h[i * K + j]! - q.h[i * K + j]!);
          const scale = Math.sqrt(p.h[i * K + i]! * p.h[j * K + j]!);
          if (d > 0) maxRelH = Math.max(maxRelH, scale > 0 ? d / scale : Infinity);
        }
      }
    }
  }
  return { maxRelH, sameMeans: sameMeans && other.size === layers, layers };
}

/**
 * How close a grouped H may be to the one-group H, relative to √(H_ii·H_jj): the same terms
 * summed in another order, so within about calls·2⁻⁵³ (gram.ts). tiny-arvd's rollout makes 48
 * Gram calls and each of the two prompts' folds has its own rollout: 96 calls, 1.1·10⁻¹⁴.
 * Measured 1.1–1.7·10⁻¹⁵.
 */
const H_TOLERANCE = 2 * 48 * 2 ** -53;

/**
 * A grouped run against the one-group run: H within {@link H_TOLERANCE} of it, μ and the
 * weights bit for bit, and the saved model and calibration table (but for its side file's id)
 * byte for byte the one-group ones (docs/calibration-memory.md; a weight within ~10⁻¹⁵ of a rounding boundary could flip on
 * another CPU, which this would then show).
 */
function expectAgreement(one: Awaited<ReturnType<typeof quantize>>, grouped: Awaited<ReturnType<typeof quantize>>): void {
  const agreement = reconAgreement(`${one.tablePath}.recon`, `${grouped.tablePath}.recon`);
  expect(agreement.layers).toBeGreaterThan(0);
  expect(agreement.maxRelH).toBeLessThan(H_TOLERANCE);
  expect(agreement.sameMeans).toBe(true);
  expect(grouped.model.equals(one.model)).toBe(true);
  // The tables differ only in their side files' ids: the side files differ in H's last bits.
  const withoutId = (table: string) => {
    const { recon, ...rest } = JSON.parse(table) as { recon?: string };
    expect(recon).toMatch(/^[0-9a-f]{32}$/);
    return JSON.stringify(rest);
  };
  expect(withoutId(grouped.table)).toBe(withoutId(one.table));
}

/** The number of groups a run's log announces (1 when it announces none). */
const groupsOf = (lines: string[]) => Number(/collected in (\d+) groups/.exec(lines.join('\n'))?.[1] ?? 1);

describe('statistics-memory', () => {
  it('parses byte counts and refuses what is not one, naming the option', () => {
    expect(parseBytes('4GiB', 'statistics-memory')).toBe(4 * 2 ** 30);
    expect(parseBytes('512 MiB', 'statistics-memory')).toBe(512 * 2 ** 20);
    expect(parseBytes('2e9', 'statistics-memory')).toBe(2e9);
    expect(() => parseBytes('lots', 'statistics-memory')).toThrow(/option statistics-memory must be a byte count/);
    expect(() => parseBytes('0', 'statistics-memory')).toThrow(/statistics-memory/);
  });

  it('tiny-arvd: several groups give the one-group statistics up to float64 summation order, and its model', async () => {
    const one = await quantize('one', {});
    expect(groupsOf(one.lines)).toBe(1);
    // tiny-arvd's statistics take 34 MB with its 6 chunks collected per chunk (ffn.2's input,
    // K = 256, alone 7.5 MiB), 6.8 MB α-weighted (ffn.2's 1.5 MiB). 12 MiB: the per-chunk first
    // group holds about a third of the layers, the α-weighted rest one more group. 3 MiB: below
    // ffn.2's per-chunk estimate (refused before α-weighting), above its α-weighted one.
    expect(inputStatisticsBytes(256, 6)).toBeGreaterThan(parseBytes('3MiB', 'statistics-memory'));
    expect(inputStatisticsBytes(256, null)).toBeLessThan(parseBytes('3MiB', 'statistics-memory'));
    for (const [budget, least] of [['12MiB', 2], ['3MiB', 4]] as const) {
      const grouped = await quantize(`grouped-${budget}`, { 'statistics-memory': budget });
      const groups = groupsOf(grouped.lines);
      expect(groups).toBeGreaterThanOrEqual(least);
      expect(grouped.lines.filter((l) => /^statistics group \d+ of \d+/.test(l)).length).toBeGreaterThanOrEqual(groups - 1);
      expectAgreement(one, grouped);
      // The side file holds the grouped statistics: load-calibration gives the grouped model again.
      const loaded = await quantize(`loaded-${budget}`, { 'load-calibration': grouped.tablePath }, false);
      expect(loaded.model.equals(grouped.model)).toBe(true);
    }
  }, 600_000);

  it('tiny-arvd: sequential with its stages split into groups gives the one-group sequential model', async () => {
    const one = await quantize('seq-one', { sequential: true });
    // A block's statistics take 10.3 MB per chunk: 9 MiB splits every block in two.
    const grouped = await quantize('seq-grouped', { sequential: true, 'statistics-memory': '9MiB' });
    expect(grouped.lines.filter((l) => /^statistics group \d+ of \d+/.test(l)).length).toBeGreaterThan(0);
    expectAgreement(one, grouped);
  }, 600_000);

  it('tiny-arvd with gram-stride 2: several groups give the one-group statistics and model of the same stride', async () => {
    // A later group weights each sampled product by its chunk's rows over the rows in its Gram
    // (productWeight), the one-group path the chunk's sum the same way: the same terms again.
    const one = await quantize('stride-one', { 'gram-stride': 2 });
    expect(groupsOf(one.lines)).toBe(1);
    const grouped = await quantize('stride-grouped', { 'gram-stride': 2, 'statistics-memory': '3MiB' });
    expect(groupsOf(grouped.lines)).toBeGreaterThanOrEqual(2);
    expectAgreement(one, grouped);
    // The stride took effect: every call's products (stride 1) give another H (measured: 1.0 relative).
    const everyCall = await quantize('stride-1', {});
    expect(reconAgreement(`${everyCall.tablePath}.recon`, `${one.tablePath}.recon`).maxRelH).toBeGreaterThan(1e-3);
  }, 600_000);

  it('a module whose rollouts change between collections is refused when a later group is collected', async () => {
    // The α-weighted sums weight each product with the first collection's row counts per chunk:
    // here the rollouts after the first two (frame weighting off: no S1 rollouts) tag every call chunk 0.
    let draws = 0;
    const changing: CalibrationModule = { prompts: calibration.prompts, rollout: (run, ctx) => tinyArvd.rollout(draws++ < 2 ? run : (feeds) => run(feeds, { chunk: 0 }), ctx) };
    await expect(quantize('changing', { 'statistics-memory': '3MiB', 'frame-weighting': false }, true, changing)).rejects.toThrow(/rows per chunk differ from the first collection's: grouped statistics need a module that draws the same samples every time/);
  }, 600_000);

  it('a layer whose statistics alone exceed the budget is refused, naming it and the option', async () => {
    await expect(quantize('small', { 'statistics-memory': '1MiB' })).rejects.toThrow(/layer \/blocks\.0\/ffn\/ffn\.2\/MatMul \(K = 256\) needs 1\.5 MiB of reconstruction statistics α-weighted .* raise --q-arvd\.statistics-memory/);
  }, 600_000);
});
