// Streaming conversion (docs/scale.md): a model read from external data is quantized with its
// quantized weights spilled to a scratch file beside the output, which the save then renames
// into place as the output's data file, and by default with its weight plans computed on
// worker threads. None of it may change a byte of the output: the streamed, threaded
// conversion of stories260K (a real model) must write exactly what the in-memory,
// single-thread one writes, for both passes and both weight widths.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convert } from '../../src/api/convert.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { quantize } from '../quant/quant-fixtures.ts';
import { FIXTURES } from '../helpers/fixtures.ts';

const STORIES = FIXTURES.find((f) => f.name === 'stories260K')!.path;
let dir: string;
let inline: string;
let external: string;

beforeAll(() => {
  dir = scratchDir('streaming');
  inline = join(dir, 'inline.onnx');
  external = join(dir, 'external.onnx');
  saveModel(loadModel(STORIES), inline, { externalData: false });
  saveModel(loadModel(STORIES), external, { externalData: true });
});
afterAll(() => removeDir(dir));

const files = (path: string) => [readFileSync(path), readFileSync(`${path}.data`)];

describe.each([
  ['minmax', '8'],
  ['minmax', '4'],
  ['q-arvd', '8'],
  ['q-arvd', '4'],
])('%s W%s weight-only', (pass, bits) => {
  it('streamed from external data (spilled, worker threads) writes the bytes of the in-memory single-thread conversion', async () => {
    const options = (threads: string) => ({ externalData: true as const, passes: [{ name: pass, options: { 'a-bits': 'none', 'w-bits': bits, threads } }] });
    // One name in three folders: the model file records its data file's name.
    const out = (how: string) => {
      const folder = join(dir, `${pass}-${bits}-${how}`);
      mkdirSync(folder);
      return join(folder, 'model.onnx');
    };
    // The reference: the pass on the model in memory, saved by itself (no scratch file at all).
    const reference = out('memory');
    const m = loadModel(inline);
    await quantize(m, { 'a-bits': 'none', 'w-bits': bits, threads: 1 }, undefined, pass as 'q-arvd' | 'minmax');
    saveModel(m, reference, { externalData: true });
    // A conversion of a file that writes external data keeps every quantized weight in a
    // scratch file beside the output, which becomes its data file (renamed, not copied:
    // src/graph/serde/spill-file.ts): from memory, and streamed on one thread.
    const fromMemory = out('file-memory');
    expect((await convert(inline, fromMemory, options('1'))).saved.externalDataTakenOver).toBeGreaterThan(0);
    const spilled = out('spilled');
    expect((await convert(external, spilled, options('1'))).saved.externalDataTakenOver).toBeGreaterThan(0);
    // The CLI as a user runs it (compiled code, worker threads).
    const threaded = out('threads');
    const r = await runCli([external, '-o', threaded, '--pass', pass, `--${pass}.a-bits`, 'none', `--${pass}.w-bits`, bits, `--${pass}.threads`, '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/were written there once, as they were made, not copied at the save/);
    const [model, data] = files(reference);
    for (const other of [fromMemory, spilled, threaded]) {
      const [m, d] = files(other);
      expect(Buffer.compare(m!, model!), `${other}: model file`).toBe(0);
      expect(Buffer.compare(d!, data!), `${other}: data file`).toBe(0);
      expect(readdirSync(dirname(other)).sort(), 'no spill file left beside the output').toEqual(['model.onnx', 'model.onnx.data']);
    }
  });
});

describe('the streamed conversion', () => {
  it('keeps no quantized weight in memory: each one waits for the save in the scratch file', async () => {
    const { quantizeLinearLayers } = await import('../../src/passes/quant/quantize-layers.ts');
    const { DEFAULT_QUANT_CONFIG } = await import('../../src/passes/quant/config.ts');
    const { modelTensors } = await import('../../src/graph/serde/io.ts');
    const model = loadModel(external);
    const report = quantizeLinearLayers(model, { ...DEFAULT_QUANT_CONFIG, aBits: null }, {}, undefined, 'q-arvd');
    expect(report.totals.layers.single + report.totals.layers.dual).toBeGreaterThan(0);
    const quantized = [...modelTensors(model)].filter((t) => t.name.includes('/qarvd/') && t.byteLength >= 1024);
    expect(quantized.length).toBeGreaterThan(0);
    for (const t of quantized) {
      expect(t.isInMemory, t.name).toBe(false);
      expect(t.external, t.name).toBeUndefined();
    }
  });

  it('removes its scratch file beside the output when a later pass fails (nothing written)', async () => {
    const folder = join(dir, 'failing');
    mkdirSync(folder);
    // minmax after q-arvd finds no float layer left, and refuses: "nothing was written".
    const passes = [{ name: 'q-arvd', options: { 'a-bits': 'none' } }, { name: 'minmax', options: { 'a-bits': 'none' } }];
    await expect(convert(external, join(folder, 'model.onnx'), { passes })).rejects.toThrow(/nothing was written/);
    expect(readdirSync(folder)).toEqual([]);
  });

  it('writes external data by default when the input has it, and one file when asked', async () => {
    const passes = [{ name: 'minmax', options: { 'a-bits': 'none' } }];
    const auto = await convert(external, join(dir, 'auto.onnx'), { passes });
    expect(auto.saved.externalDataPath).toBe(join(dir, 'auto.onnx.data'));
    expect(auto.saved.externalReason).toMatch(/the input reads its weights from external data/);
    const one = await convert(external, join(dir, 'one.onnx'), { passes, externalData: false });
    expect(one.saved.externalDataPath).toBeUndefined();
    const fromInline = await convert(inline, join(dir, 'from-inline.onnx'), { passes });
    expect(fromInline.saved.externalDataPath).toBeUndefined();
  });
});
