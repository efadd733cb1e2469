// Side outputs (reports, calibration tables, statistics, HTML) never land on what a run reads
// or on each other: the cases a new-user trial reproduced (each overwrote the model, a table
// or a calibration module and exited 0), on copies of the bundled models.
import { copyFileSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { checkRunFiles, passFiles } from '../../src/api/run-files.ts';
import { createRegistry } from '../../src/api/registry.ts';
import { cli } from '../helpers/cli.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { expectRefused } from '../helpers/refusal.ts';

const TINY = resolve('examples/tiny-arvd/model.onnx');
const HF = resolve('test/fixtures/stories260K-hf');

describe('files a conversion writes', () => {
  let dir: string;
  let model: string;
  const folders = () => ({ input: dir, output: dir });
  const q = (...rest: string[]) => [model, '-o', join(dir, 'out.onnx'), '--pass', 'q-arvd', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', ...rest];

  beforeAll(() => {
    dir = scratchDir('run-files');
    model = join(dir, 'model.onnx');
    copyFileSync(TINY, model);
    writeFileSync(join(dir, 'table.json'), '{}\n');
    writeFileSync(join(dir, 'calib.mjs'), 'export async function feeds() { return []; }\n');
  });
  afterAll(() => removeDir(dir));

  it.each([
    ['report', 'model.onnx', /--q-arvd\.report .*model\.onnx: is the input model/],
    ['save-calibration', 'model.onnx', /--q-arvd\.save-calibration .*model\.onnx: is the input model/],
    ['save-statistics', 'model.onnx', /--q-arvd\.save-statistics .*model\.onnx: is the input model/],
    ['save-sensitivity', 'model.onnx', /--q-arvd\.save-sensitivity .*model\.onnx: is the input model/],
    ['report', 'out.onnx', /--q-arvd\.report and the output both name/],
    ['report', 'missing/report.json', /--q-arvd\.report .*missing\/report\.json: folder .*missing does not exist/],
    ['save-calibration', 'missing/table.json', /--q-arvd\.save-calibration .*: folder .*missing does not exist/],
  ])('--q-arvd.%s %s is refused', async (key, file, says) => {
    await expectRefused(q(`--q-arvd.${key}`, join(dir, file)), says, folders());
  });

  it('a report over the calibration module, the loaded table, or the table saved by the same run', async () => {
    const calib = join(dir, 'calib.mjs');
    const table = join(dir, 'table.json');
    await expectRefused(q('--q-arvd.calib', calib, '--q-arvd.report', calib), /--q-arvd\.report .*calib\.mjs: is --q-arvd\.calib/, folders());
    await expectRefused(q('--q-arvd.load-calibration', table, '--q-arvd.report', table), /--q-arvd\.report .*table\.json: is --q-arvd\.load-calibration/, folders());
    await expectRefused(q('--q-arvd.load-calibration', table, '--q-arvd.report', `${table}.recon`), /is --q-arvd\.load-calibration's \.recon file/, folders());
    await expectRefused(q('--q-arvd.save-calibration', join(dir, 't2.json'), '--q-arvd.report', join(dir, 't2.json')), /--q-arvd\.save-calibration and --q-arvd\.report both name/, folders());
    await expectRefused([model, '-o', table, '--pass', 'q-arvd', '--q-arvd.load-calibration', table], /the output .*table\.json: is --q-arvd\.load-calibration/, folders());
  });

  it('a table written back to the path it was loaded from is allowed (the pass rewrites it in place)', async () => {
    const table = join(dir, 'table.json');
    const r = await cli(...q('--q-arvd.load-calibration', table, '--q-arvd.save-calibration', table));
    // The check lets it through; the pass then reads the table, which is not a real one.
    expect(r.code).toBe(1);
    expect(r.err).not.toMatch(/which this run reads/);
    expect(r.err).toMatch(/table\.json/);
  });

  it("a report over the input's external data file", async () => {
    const sub = join(dir, 'external');
    mkdirSync(sub);
    const ext = join(sub, 'model.onnx');
    saveModel(loadModel(TINY), ext, { externalData: true });
    await expectRefused([ext, '-o', join(sub, 'out.onnx'), '--pass', 'minmax', '--minmax.w-bits', '8', '--minmax.a-bits', 'none', '--minmax.report', `${ext}.data`], /--minmax\.report .*model\.onnx\.data: is the input's data file/, { input: sub, output: sub });
  });

  it('inspect --html over the model or the report it reads', async () => {
    await expectRefused(['inspect', model, '--html', model], /--html .*model\.onnx: is the model/, folders());
    await expectRefused(['inspect', model, '--html', join(dir, 'missing', 'r.html')], /--html .*: folder .*missing does not exist/, folders());
  });

  it("a report over the output's data file, the --config file, or a plugin's default output", async () => {
    await expectRefused([...q('--q-arvd.report', join(dir, 'out.onnx.data')), '--external-data'], /--q-arvd\.report .*out\.onnx\.data .*the output's data file|the output's data file .*both name/, folders());
    const config = join(dir, 'convert.config.json');
    writeFileSync(config, JSON.stringify({ passes: [{ name: 'q-arvd', options: { 'w-bits': '4', 'a-bits': 'none', report: config } }] }));
    await expectRefused([model, '-o', join(dir, 'out.onnx'), '--config', config], /--q-arvd\.report .*convert\.config\.json: is --config/, folders());
    // A plugin pass whose file option defaults to a path: the default is checked like a given value.
    const plugin = join(dir, 'dump.mjs');
    writeFileSync(plugin, `export default { name: 'dumper', version: '1.0.0', passes: [{ name: 'dump', summary: 'writes a file', options: { out: { type: 'string', default: ${JSON.stringify(model)}, help: 'where', file: { access: 'write' } } }, statistics: {}, run() { return { modified: false, stats: {} }; } }] };\n`);
    await expectRefused([model, '-o', join(dir, 'out.onnx'), '--plugin', plugin, '--pass', 'dump'], /--dump\.out .*model\.onnx: is the input model/, folders());
  });

  it('folder mode: a report over an fp32 base graph, the config or the tokenizer; side outputs of several graphs', async () => {
    const hf = join(dir, 'hf');
    cpSync(HF, hf, { recursive: true });
    const base = join(hf, 'onnx', 'model.onnx');
    const q4 = (report: string) => [hf, '--variant', 'q4', '--pass', 'q-arvd', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--q-arvd.report', report];
    await expectRefused(q4(base), /--q-arvd\.report .*model\.onnx: is the fp32 graph model\.onnx/, { input: hf, output: hf });
    await expectRefused(q4(join(hf, 'config.json')), /--q-arvd\.report .*config\.json: is the model folder's config\.json/, { input: hf, output: hf });
    // File mode on the same folder's graph: the tokenizer a prompt list would use is protected too.
    await expectRefused([base, '-o', join(dir, 'hf-out.onnx'), '--pass', 'q-arvd', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--q-arvd.report', join(hf, 'tokenizer.json')], /is the model folder's tokenizer\.json/, { input: hf, output: dir });
    // A base graph with external data: its data file is known once the graph is loaded, before the passes.
    const ext = join(dir, 'hf-ext');
    cpSync(HF, ext, { recursive: true });
    const extBase = join(ext, 'onnx', 'model.onnx');
    saveModel(loadModel(extBase), extBase, { externalData: true });
    await expectRefused([ext, '--variant', 'q4', '--pass', 'q-arvd', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--q-arvd.report', `${extBase}.data`], /--q-arvd\.report .*model\.onnx\.data: is model\.onnx's data file/, { input: ext, output: ext });
    copyFileSync(base, join(hf, 'onnx', 'decoder_model.onnx'));
    await expectRefused(q4(join(dir, 'r.json')), /--q-arvd\.report would be written once for each of the 2 graphs/, { input: hf, output: dir });
  });
});

describe('checkRunFiles', () => {
  it('names files by their options and lets a declared rewrite through', async () => {
    const registry = await createRegistry([]);
    const step = registry.step('q-arvd', { 'load-calibration': 't.json', 'save-calibration': 't.json', report: 'r.json' });
    const { reads, writes } = passFiles([step]);
    expect(reads.map((r) => r.label)).toEqual(['--q-arvd.load-calibration', "--q-arvd.load-calibration's .recon file"]);
    expect(writes.map((w) => [w.label, w.path])).toEqual([
      ['--q-arvd.report', 'r.json'],
      ['--q-arvd.save-calibration', 't.json'],
      ["--q-arvd.save-calibration's .recon file", 't.json.recon'],
    ]);
    expect(reads.map((r) => r.required)).toEqual([true, undefined]);
    // A table to load must exist (its .recon file may not); the checks below are of existing files.
    expect(() => checkRunFiles(reads, writes)).toThrow(/^--q-arvd\.load-calibration t\.json: file not found$/);
    const existing = reads.map((r) => ({ ...r, required: false }));
    expect(() => checkRunFiles(existing, writes)).not.toThrow();
    expect(() => checkRunFiles(existing, [{ label: '--x', path: 't.json' }])).toThrow(/--x t\.json: is --q-arvd\.load-calibration \(t\.json\)/);
  });
});
