// `convert --help`, `convert passes`, `diff`, a round trip and a weight-only conversion must
// not load onnxruntime-node or @huggingface/transformers (issue 16). The compiled CLI runs with
// three witnesses, each printing "heavy module loaded: <path>": a module-resolution hook (ES
// imports), require's cache at exit (CommonJS, e.g. onnxruntime-node's own files) and, at exit,
// the shared objects mapped into the process (/proc/self/maps: a native binding loaded by any
// thread, worker or not). A text calibration of stories260K-hf shows the witnesses do see both
// packages when the CLI needs them. `--help` and `--version` load neither yargs nor any
// command's code (importing yargs alone took about as long as starting Node).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = resolve('bin/convert.js');
const STORIES = resolve('test/fixtures/stories260K/stories260K.onnx');
// Inside the checkout (test-output/ is ignored by git) so that calib.mjs resolves onnxruntime-node.
mkdirSync(resolve('test-output'), { recursive: true });
const tmp = mkdtempSync(join(resolve('test-output'), 'fast-start-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

writeFileSync(
  join(tmp, 'hook.mjs'),
  `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (/\\/node_modules\\/(onnxruntime-node|@huggingface\\/transformers)\\//.test(r.url)) process.stderr.write('heavy module loaded: ' + r.url + '\\n');
  if (/\\/node_modules\\/yargs\\/|\\/dist\\/src\\/cli\\/[a-z]+-command\\.js$/.test(r.url)) process.stderr.write('parser or command loaded: ' + r.url + '\\n');
  return r;
}
`,
);
writeFileSync(
  join(tmp, 'register.mjs'),
  `import { existsSync, readFileSync, writeSync } from 'node:fs';
import { createRequire, register } from 'node:module';
register(${JSON.stringify(pathToFileURL(join(tmp, 'hook.mjs')).href)});
const HEAVY = /\\/node_modules\\/(onnxruntime-node|@huggingface\\/transformers)\\/|libonnxruntime/;
process.on('exit', () => {
  const cjs = Object.keys(createRequire(import.meta.url).cache);
  const mapped = existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5] ?? '') : [];
  for (const p of new Set([...cjs, ...mapped])) if (HEAVY.test(p)) writeSync(2, 'heavy module loaded: ' + p + '\\n');
});
`,
);
copyFileSync(STORIES, join(tmp, 'model.onnx'));

function convert(...args: string[]) {
  return spawnSync(process.execPath, ['--import', pathToFileURL(join(tmp, 'register.mjs')).href, BIN, ...args], { encoding: 'utf8', cwd: tmp });
}

describe('the compiled CLI loads onnxruntime and transformers only when calibration runs', () => {
  it.each([
    ['--help', ['--help']],
    ['passes', ['passes']],
    ['a round trip', ['model.onnx', '-o', 'rt.onnx']],
    ['a weight-only conversion', ['model.onnx', '-o', 'w8.onnx', '--pass', 'q-arvd', '--q-arvd.a-bits', 'none']],
    ['diff', ['diff', 'model.onnx', 'model.onnx']],
  ])('%s', (_, args) => {
    const r = convert(...args);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('heavy module loaded');
  });

  it.each(['--help', 'passes --help', '--version'])('%s loads neither yargs nor the commands', (args) => {
    const r = convert(...args.split(' '));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).not.toBe('');
    expect(r.stderr).toBe('');
  });

  it('a command loads yargs and its code (the hook sees them)', () => {
    const r = convert('passes');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/parser or command loaded: .*\/yargs\//);
    expect(r.stderr).toMatch(/parser or command loaded: .*passes-command\.js/);
  });

  it('text calibration of stories260K-hf loads both, and each witness sees its part', () => {
    cpSync(resolve('test/fixtures/stories260K-hf'), join(tmp, 'hf'), { recursive: true });
    const r = convert('hf', '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', resolve('examples/hf-text-generation/prompts.txt'), '--q-arvd.scale-search', 'false');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/heavy module loaded: file:.*\/@huggingface\/transformers\//); // the resolve hook
    expect(r.stderr).toMatch(/heavy module loaded: \/.*\/onnxruntime-node\/dist\/binding\.js/); // require's cache
    if (existsSync('/proc/self/maps')) expect(r.stderr).toMatch(/heavy module loaded: \/.*libonnxruntime\.so/); // mapped by the process
  });
});

describe('the compiled CLI and TypeScript plugins', () => {
  it('loads a .ts plugin through tsx, registered only when one is given', () => {
    writeFileSync(
      join(tmp, 'ts-plugin.ts'),
      `const count: number = 0;
export default { name: 'ts-plugin', version: '1.0.0', passes: [{ name: 'noop-ts', summary: 'does nothing, typed', options: {}, statistics: {}, run: () => ({ modified: count > 0, stats: {} }) }] };
`,
    );
    const r = convert('passes', 'noop-ts', '--plugin', 'ts-plugin.ts');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('noop-ts  (plugin ts-plugin 1.0.0)');
  });
});
