// A saved collect step (save-statistics / load-statistics) on the bundled ARVD
// (examples/tiny-arvd, 4 calibration prompts, S1 off to stay short: it follows the collection): runs at other
// bit-widths that read the file write the same bytes as runs that collect themselves (q-arvd
// W8A8, q-arvd weight-only W4, minmax W8A8), say that they read it, and a file that does not
// fit the run (another layer selection, other samples, another reservoir, no Gram matrices) is
// refused with an error naming the file and the mismatch. About 30–60 s on an idle 2-core machine.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { createLogger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { cli } from '../helpers/cli.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('stats-file');
afterAll(() => removeDir(dir));
const calibration: CalibrationModule = { rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 4) };
const file = join(dir, 'collected.bin');

async function quantize(method: 'q-arvd' | 'minmax', raw: Record<string, unknown>, module = calibration) {
  const model = loadModel(MODEL_PATH);
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const pass = method === 'q-arvd' ? qArvd : minmax;
  const options = resolveOptions(pass, { 'calib-threads': 1, ...(method === 'q-arvd' ? { 'frame-weighting': false } : {}), ...raw }) as unknown as SharedQuantValues;
  if (method === 'minmax') options.dualScale = false;
  await runQuantPass(model, { log, verbose: false, modelDir: undefined }, options, method, module);
  const path = join(dir, `m${Math.random().toString(36).slice(2)}.onnx`);
  saveModel(model, path);
  return { bytes: readFileSync(path), lines };
}

describe('save-statistics / load-statistics on tiny-arvd', () => {
  it('runs that read the collection write the same model as runs that collect', async () => {
    await quantize('q-arvd', { 'w-bits': '4', 'a-bits': '8', 'save-statistics': file });
    // The collection was made on the model as q-arvd calibrates it, after fold-split reordered
    // ffn.2's channels: q-arvd at any bit-width folds alike; minmax (no fold) is refused.
    await expect(quantize('minmax', { 'w-bits': '8', 'a-bits': '8', 'load-statistics': file })).rejects.toThrow(/collected\.bin: was collected on another model or another layer selection, or with another fold-split/);
    for (const [method, raw] of [
      ['q-arvd', { 'w-bits': '8', 'a-bits': '8' }],
      ['q-arvd', { 'w-bits': '4', 'a-bits': 'none' }],
    ] as const) {
      const fresh = await quantize(method, raw);
      const loaded = await quantize(method, { ...raw, 'load-statistics': file });
      expect(Buffer.compare(loaded.bytes, fresh.bytes), `${method} ${JSON.stringify(raw)}`).toBe(0);
      expect(loaded.lines.some((l) => l.startsWith(`collect step read from ${file}`))).toBe(true);
      expect(fresh.lines.some((l) => l.startsWith('collect step read from'))).toBe(false);
    }
  }, 600_000);

  it('refuses a file that does not fit the run, naming it and the mismatch', async () => {
    const w8a8 = { 'w-bits': '8', 'a-bits': '8', 'load-statistics': file };
    await expect(quantize('q-arvd', { ...w8a8, exclude: ['*ffn*'] })).rejects.toThrow(/statistics file .*collected\.bin: was collected on another model or another layer selection/);
    await expect(quantize('q-arvd', w8a8, { ...calibration, prompts: tinyArvd.prompts.slice(0, 3) })).rejects.toThrow(/collected\.bin: was collected from 4 sample\(s\) .* this run calibrates on 3 sample\(s\)/);
    await expect(quantize('q-arvd', { ...w8a8, 'reservoir-rows': 64 })).rejects.toThrow(/collected\.bin: keeps 256 reservoir rows .* asks for 64 \(option reservoir-rows\)/);
    const ranges = join(dir, 'ranges.bin');
    await quantize('minmax', { 'w-bits': '8', 'a-bits': '8', 'save-statistics': ranges });
    await expect(quantize('q-arvd', { 'w-bits': '8', 'a-bits': '8', 'scale-search': false, 'fold-split': false, 'load-statistics': ranges })).rejects.toThrow(/ranges\.bin: has no Gram matrices/);
    // The same minmax collection read by q-arvd with fold-split false and no Gram matrices needed: the model q-arvd makes collecting itself.
    const fresh = await quantize('q-arvd', { 'w-bits': '8', 'a-bits': '8', 'scale-search': false, 'fold-split': false, reconstruct: 'none', 'bias-correction': false });
    const loaded = await quantize('q-arvd', { 'w-bits': '8', 'a-bits': '8', 'scale-search': false, 'fold-split': false, reconstruct: 'none', 'bias-correction': false, 'load-statistics': ranges });
    expect(Buffer.compare(loaded.bytes, fresh.bytes)).toBe(0);
  }, 600_000);

  it('refuses a corrupted file, and names the layer and the file when its statistics cannot be used', async () => {
    const w8a8 = { 'w-bits': '8', 'a-bits': '8' };
    const saved = readFileSync(file);
    const headerEnd = 12 + saved.readUInt32LE(8);
    const header = JSON.parse(saved.subarray(12, headerEnd).toString()) as { sha256: string; inputs: { name: string; chunks: { grams: { gram: [number, number, string] }[] }[] }[] };
    // A user trial: four 0xFF bytes in the middle of the data were read without a word.
    const corrupted = join(dir, 'corrupted.bin');
    const bytes = Buffer.from(saved);
    bytes.fill(0xff, headerEnd + ((bytes.length - headerEnd) >> 1), headerEnd + ((bytes.length - headerEnd) >> 1) + 4);
    writeFileSync(corrupted, bytes);
    await expect(quantize('q-arvd', { ...w8a8, 'load-statistics': corrupted })).rejects.toThrow(/statistics file .*corrupted\.bin: is corrupted: its checksum does not match; save it again/);
    // Values the checksum cannot catch (a file from an earlier build, or saved so): the data
    // changed and the checksum made to fit it, as the writer would.
    const resealed = (name: string, edit: (data: Buffer, at: (blob: [number, number, string]) => number) => void) => {
      const out = Buffer.from(saved);
      const data = out.subarray(headerEnd);
      edit(data, ([offset]) => offset);
      const { sha256: _, ...rest } = header;
      const sha256 = createHash('sha256').update(data).update(JSON.stringify(rest)).digest('hex');
      const json = JSON.stringify({ ...rest, sha256 });
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(headerEnd - 12);
      out.write(json.padEnd(headerEnd - 12, ' '), 12);
      const path = join(dir, name);
      writeFileSync(path, out);
      return path;
    };
    const input = header.inputs.find((i) => i.chunks[0]?.grams)!;
    const gram = input.chunks[0]!.grams[0]!.gram;
    const nan = resealed('nan.bin', (data, at) => data.writeDoubleLE(NaN, at(gram) + 8 * 5));
    await expect(quantize('q-arvd', { ...w8a8, 'load-statistics': nan })).rejects.toThrow(new RegExp(`nan\\.bin: holds a non-finite value \\(NaN\\) in the Gram matrix of ${input.name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(the input of [^)]+\\), chunk \\d+, element 5`));
    // The trial's 1e30 overwrite: H is no longer positive definite at any damping. The error named neither the layer nor the file.
    const huge = resealed('huge.bin', (data, at) => {
      for (const c of input.chunks) for (const g of c.grams) for (let i = 0; i < 64; i++) data.writeDoubleLE(i % 2 ? 1e30 : -1e30, at(g.gram) + 8 * i);
    });
    await expect(quantize('q-arvd', { ...w8a8, 'load-statistics': huge })).rejects.toThrow(/layer \S+: reconstruction failed \(statistics from statistics file .*huge\.bin\): /);
  }, 600_000);
});

describe('load-statistics and the calibration module file', () => {
  it('takes one module file spelt two ways as the same and two files spelt alike as two (a user trial: ./rollout.mjs and rollout.mjs were refused, another folder\'s rollout.mjs accepted)', async () => {
    // stories260K with a feeds module written here: the check is the same for any module.
    const stories = join(REPO_ROOT, 'test/fixtures/stories260K/stories260K.onnx');
    const moduleIn = (folder: string, seed: number) => {
      mkdirSync(join(dir, folder), { recursive: true });
      const path = join(dir, folder, 'calib.mjs');
      writeFileSync(path, `import * as ort from 'onnxruntime-node';\nexport const samples = 4;\nexport function* feeds(ctx) {\n  yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7 + ctx.sample * 13 + ${seed}) % 512)), [1, 16]) } };\n}\n`);
      return path;
    };
    const mine = moduleIn('a', 1);
    const other = moduleIn('b', 5);
    const stats = join(dir, 'stories.bin');
    const run = (calib: string, out: string, io: string) => cli(stories, '-o', join(dir, out), '--pass', 'q-arvd', '--q-arvd.calib', calib, `--q-arvd.${io}`, stats);
    const saved = await run(`./${relative(process.cwd(), mine)}`, 'saved.onnx', 'save-statistics');
    expect(saved.code, saved.err).toBe(0);
    const again = await run(mine, 'again.onnx', 'load-statistics');
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain(`collect step read from ${stats}`);
    expect(Buffer.compare(readFileSync(join(dir, 'again.onnx')), readFileSync(join(dir, 'saved.onnx')))).toBe(0);
    const wrong = await run(join(dir, 'b', '..', 'b', 'calib.mjs'), 'wrong.onnx', 'load-statistics');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/stories\.bin: was collected from 4 sample\(s\) of \S*\/a\/calib\.mjs, this run calibrates on 4 sample\(s\) of \S*\/b\/calib\.mjs/);
    expect(other).toContain('/b/calib.mjs');
    // A file saved by an earlier build (no source, no checksum: its header rewritten in place,
    // padded as the format pads it) is still compared by the module as typed (found by review).
    const old = join(dir, 'old-stories.bin');
    const bytes = Buffer.from(readFileSync(stats));
    const end = 12 + bytes.readUInt32LE(8);
    const header = JSON.parse(bytes.subarray(12, end).toString()) as { sha256?: string; identity: { source?: string } };
    delete header.sha256;
    delete header.identity.source;
    bytes.write(JSON.stringify(header).padEnd(end - 12, ' '), 12);
    writeFileSync(old, bytes);
    const typed = `./${relative(process.cwd(), mine)}`;
    const oldRun = (calib: string) => cli(stories, '-o', join(dir, 'old.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', calib, '--q-arvd.load-statistics', old);
    const same = await oldRun(typed);
    expect(same.code, same.err).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'old.onnx')), readFileSync(join(dir, 'saved.onnx')))).toBe(0);
    const respelt = await oldRun(mine);
    expect(respelt.code).toBe(1);
    expect(respelt.err).toContain(`was collected from 4 sample(s) of ${typed}, this run calibrates on 4 sample(s) of ${mine} (a file saved by an earlier build records the module as it was typed: give it the same way, or collect again with save-statistics)`);
  }, 300_000);
});
