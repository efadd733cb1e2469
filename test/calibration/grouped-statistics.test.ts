// Reconstruction statistics in bounded memory (statistics-memory, src/passes/calibration/grouped.ts)
// on the bundled ARVD (examples/tiny-arvd, its rollout module, two calibration prompts so that
// damp auto has its two folds): a budget that forces several groups gives the same model, byte
// for byte, as one group, and the same calibration table and .recon side file (which
// load-calibration turns into that model again); so does sequential mode with its stages
// grouped; a layer too large for the budget alone is refused naming the layer and the option.
// Each run calibrates 2 rollouts, S1's rollouts and one more collection per group: seconds each.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { parseBytes } from '../../src/passes/calibration/grouped.ts';
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
async function quantize(name: string, raw: Record<string, unknown>, withData = true) {
  const model = loadModel(MODEL_PATH);
  const lines: string[] = [];
  const table = join(dir, `${name}.json`);
  const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': '8', 'calib-threads': 1, 'sensitivity-samples': 1, ...(withData ? { 'save-calibration': table } : {}), ...raw }) as unknown as SharedQuantValues;
  await runQuantPass(model, { log: createLogger({ write: (l) => lines.push(l), verbose: true }), verbose: true, modelDir: undefined }, options, 'q-arvd', withData ? calibration : undefined);
  const path = join(dir, `${name}.onnx`);
  saveModel(model, path);
  return { model: readFileSync(path), table: withData ? readFileSync(table, 'utf8') : '', recon: withData ? readFileSync(`${table}.recon`) : Buffer.alloc(0), lines, tablePath: table };
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

  it('tiny-arvd: several groups give the one-group model, table and .recon byte for byte; load-calibration reproduces it', async () => {
    const one = await quantize('one', {});
    expect(groupsOf(one.lines)).toBe(1);
    // tiny-arvd's statistics take 34 MB with its 6 chunks (ffn.2's input alone 7.9 MB): about a third.
    const grouped = await quantize('grouped', { 'statistics-memory': '12MiB' });
    const groups = groupsOf(grouped.lines);
    expect(groups).toBeGreaterThanOrEqual(3);
    expect(grouped.lines.filter((l) => /^statistics group \d+ of \d+/.test(l)).length).toBeGreaterThanOrEqual(groups - 1);
    expect(grouped.model.equals(one.model)).toBe(true);
    expect(grouped.table).toBe(one.table);
    expect(grouped.recon.equals(one.recon)).toBe(true);
    const loaded = await quantize('loaded', { 'load-calibration': grouped.tablePath }, false);
    expect(loaded.model.equals(one.model)).toBe(true);
  }, 600_000);

  it('tiny-arvd: sequential with its stages split into groups gives the one-group sequential model', async () => {
    const one = await quantize('seq-one', { sequential: true });
    // A block's statistics take 10.3 MB: 9 MiB splits every block in two.
    const grouped = await quantize('seq-grouped', { sequential: true, 'statistics-memory': '9MiB' });
    expect(grouped.lines.filter((l) => /^statistics group \d+ of \d+/.test(l)).length).toBeGreaterThan(0);
    expect(grouped.model.equals(one.model)).toBe(true);
    expect(grouped.recon.equals(one.recon)).toBe(true);
  }, 600_000);

  it('a layer whose statistics alone exceed the budget is refused, naming it and the option', async () => {
    await expect(quantize('small', { 'statistics-memory': '1MiB' })).rejects.toThrow(/layer \/blocks\.0\/ffn\/ffn\.2\/MatMul \(K = 256\) needs .* statistics-memory/);
  }, 600_000);
});
