// `convert --help`, `convert passes`, `diff` and a weight-only conversion must not load
// onnxruntime-node or @huggingface/transformers (issue 16): the compiled CLI runs under a
// module-resolution hook that reports every import of either, and a calibrated conversion
// shows that the hook does see them. `--help` and `--version` load neither yargs nor any
// command's code (importing yargs alone took about as long as starting Node).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
writeFileSync(join(tmp, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(tmp, 'hook.mjs')).href)});\n`);
copyFileSync(STORIES, join(tmp, 'model.onnx'));

function convert(...args: string[]) {
  return spawnSync(process.execPath, ['--import', pathToFileURL(join(tmp, 'register.mjs')).href, BIN, ...args], { encoding: 'utf8', cwd: tmp });
}

describe('the compiled CLI loads onnxruntime and transformers only when calibration runs', () => {
  it.each([
    ['--help', ['--help']],
    ['passes', ['passes']],
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

  it('a calibrated conversion loads onnxruntime-node (the hook sees it)', () => {
    writeFileSync(
      join(tmp, 'calib.mjs'),
      `import * as ort from 'onnxruntime-node';
export const samples = 1;
export function* feeds(ctx) {
  yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 8 }, () => BigInt(ctx.random.int(512))), [1, 8]) } };
}
`,
    );
    // The module imports onnxruntime itself; the pass imports it for its session too.
    const r = convert('model.onnx', '-o', 'w8a8.onnx', '--pass', 'q-arvd', '--q-arvd.calib', 'calib.mjs', '--q-arvd.scale-search', 'false');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/heavy module loaded: .*onnxruntime-node/);
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
