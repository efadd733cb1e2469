// The package as its users get it: `npm pack`, the tarball installed into an empty project
// (from the npm cache, offline), then the CLI, the README's "Use from code" examples (the
// JavaScript run by node, the TypeScript compiled by tsc with `tsc --init`'s settings) and
// text calibration of the stories260K-hf folder, which crashed with two onnxruntimes.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.ts';

const ROOT = resolve('.');
const tmp = mkdtempSync(join(tmpdir(), 'qarvd-install-'));
const project = join(tmp, 'project');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The environment of the parent `npm test` minus its npm_* variables, which would steer the child npm. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function sh(cmd: string, args: string[], cwd = project): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 180_000 });
}
function ok(r: SpawnSyncReturns<string>, what: string): string {
  expect(r.status, `${what} failed:\n${r.stderr}\n${r.stdout}`).toBe(0);
  return r.stdout;
}
/** The version of a dev dependency installed in this checkout (so that the cache has it). */
function installed(pkg: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}
/** Every folder named onnxruntime-node under node_modules, at any depth. */
function copiesOf(name: string, dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const p = join(dir, e.name);
    if (e.name === name) out.push(p);
    else out.push(...copiesOf(name, p));
  }
  return out;
}

let packed: { filename: string; size: number; entryCount: number; files: { path: string }[] };
let installMode = '--offline';

beforeAll(() => {
  // --ignore-scripts: the global setup has just built dist/; prepack's clean rebuild would
  // remove it under the tests that run bin/convert.js in parallel.
  const pack = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
  packed = JSON.parse(ok(pack, 'npm pack'))[0];
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    // allowScripts: onnxruntime-node's install script fetches CUDA libraries from nuget (unreachable here).
    JSON.stringify({ name: 'qarvd-user', version: '1.0.0', private: true, type: 'module', allowScripts: { 'onnxruntime-node': false } }, null, 2),
  );
  const deps = [join(tmp, packed.filename), `@huggingface/transformers@${installed('@huggingface/transformers')}`, `typescript@${installed('typescript')}`, `@types/node@${installed('@types/node')}`];
  let r = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', ...deps]);
  if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) {
    // A cache filled by `npm ci` holds the locked tarballs but not every package's metadata.
    installMode = '--prefer-offline (the cache lacked metadata)';
    r = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...deps]);
  }
  ok(r, `npm install ${deps.join(' ')}`);
  // du's figure (disk use, like the 816 MB with two onnxruntimes), for the closing note.
  const du = sh('du', ['-sh', 'node_modules']);
  console.log(`install test: ${packed.filename} ${(packed.size / 1024).toFixed(0)} KiB, ${packed.entryCount} files; npm install ${installMode}; du -sh node_modules: ${du.status === 0 ? du.stdout.split('\t')[0] : 'du failed'}`);
  cpSync(join(ROOT, 'test/fixtures/stories260K/stories260K.onnx'), join(project, 'model.onnx'));
}, 240_000);

describe('the packed tarball installed in an empty project', () => {
  it('ships the compiled library and CLI and no tests, fixtures, bench or CI files', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'bin/convert.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/index.js.map', 'dist/src/cli/main.js']) expect(files).toContain(f);
    expect(files.filter((f) => /^(test|bench|\.ci|examples|scripts)\/|\.test\.|fixtures/.test(f))).toEqual([]);
    // The README's links into docs/ resolve in the installed package too; the generated API reference is not packed.
    const linked = [...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/\]\((docs\/[\w.-]+\.md)\)/g)].map((m) => m[1]!).filter((f) => existsSync(join(ROOT, f)));
    expect(linked).toContain('docs/benchmarks.md');
    for (const f of linked) expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith('docs/api/'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/qarvd/package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.private).toBeUndefined();
  });

  it('has exactly one onnxruntime-node, shared with @huggingface/transformers', () => {
    expect(copiesOf('onnxruntime-node', join(project, 'node_modules'))).toEqual([join(project, 'node_modules/onnxruntime-node')]);
    // npm's own view: transformers' dependency on it is deduped to the top-level copy.
    const paths = ok(sh('npm', ['ls', 'onnxruntime-node', '--all', '--parseable']), 'npm ls').trim().split('\n');
    expect(paths.filter((p) => p.includes('onnxruntime-node'))).toEqual([join(project, 'node_modules/onnxruntime-node')]);
    const tree = ok(sh('npm', ['ls', 'onnxruntime-node', '--all']), 'npm ls');
    console.log(tree);
    const entries = tree.split('\n').filter((l) => l.includes('onnxruntime-node@'));
    expect(entries).toHaveLength(2); // under qarvd and under transformers…
    expect(entries.filter((l) => !l.endsWith(' deduped'))).toHaveLength(1); // …one of them deduped
    for (const l of entries) expect(l).toContain('onnxruntime-node@1.30.0');
  });

  it('runs npx convert --help and a weight-only conversion without tsx', () => {
    expect(existsSync(join(project, 'node_modules/tsx'))).toBe(false);
    expect(ok(sh('npx', ['--no', '--', 'convert', '--help']), 'convert --help')).toContain('Usage: convert <input.onnx> -o <output.onnx>');
    const r = sh('npx', ['--no', '--', 'convert', 'model.onnx', '-o', 'model.w8.onnx', '--pass', 'q-arvd', '--q-arvd.a-bits', 'none']);
    ok(r, 'convert (weight-only)');
    expect(r.stderr).toMatch(/convert: wrote model\.w8\.onnx/);
    expect(statSync(join(project, 'model.w8.onnx')).size).toBeLessThan(statSync(join(project, 'model.onnx')).size);
  });

  it("runs the README's JavaScript example", () => {
    writeFileSync(join(project, 'example.mjs'), readmeBlock('example.mjs'));
    const out = ok(sh(process.execPath, ['example.mjs']), 'node example.mjs');
    expect(out).toMatch(/^q-arvd: 36 layers, \d+ bytes written$/m);
    expect(out).toContain('the models differ: true');
  });

  it("type-checks the README's TypeScript example with tsc --init's settings, and runs it", () => {
    ok(sh('npx', ['--no', '--', 'tsc', '--init']), 'tsc --init');
    writeFileSync(join(project, 'example.ts'), readmeBlock('example.ts'));
    ok(sh('npx', ['--no', '--', 'tsc']), 'tsc');
    const out = ok(sh(process.execPath, ['example.js']), 'node example.js');
    expect(out).toMatch(/^q-arvd W4A8: 36 layers quantized$/m);
    // The typed report and the warnings compile and read (scale search off: no few-samples warning).
    expect(out).toMatch(/^13 dual-scale layers; 0 warning\(s\): $/m);
    expect(existsSync(join(project, 'model.w4a8.onnx'))).toBe(true);
  });

  it('calibrates the stories260K-hf folder from prompts (--variant q8) with the one runtime', () => {
    cpSync(join(ROOT, 'test/fixtures/stories260K-hf'), join(project, 'hf-model'), { recursive: true });
    cpSync(join(ROOT, 'examples/hf-text-generation/prompts.txt'), join(project, 'prompts.txt'));
    const r = sh('npx', ['--no', '--', 'convert', 'hf-model', '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', 'prompts.txt']);
    ok(r, 'convert hf-model --variant q8 --q-arvd.prompts');
    expect(existsSync(join(project, 'hf-model/onnx/model_quantized.onnx'))).toBe(true);
  });

  it('without @huggingface/transformers, --q-arvd.prompts names the package and how to install it', () => {
    ok(sh('npm', ['uninstall', '--offline', '--no-audit', '--no-fund', '@huggingface/transformers']), 'npm uninstall');
    expect(copiesOf('onnxruntime-node', join(project, 'node_modules'))).toHaveLength(1);
    const r = sh('npx', ['--no', '--', 'convert', 'hf-model', '--pass', 'q-arvd', '--variant', 'q8', '--force', '--q-arvd.prompts', 'prompts.txt']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('needs the package @huggingface/transformers');
    expect(r.stderr).toContain('npm install @huggingface/transformers@~4.3.1');
  });

  it("type-checks against qarvd's declarations without @huggingface/transformers, even with skipLibCheck off", () => {
    expect(existsSync(join(project, 'node_modules/@huggingface/transformers'))).toBe(false);
    ok(sh('npx', ['--no', '--', 'tsc', '--skipLibCheck', 'false', '--noEmit']), 'tsc --skipLibCheck false');
  });
});
