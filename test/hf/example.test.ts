// examples/hf-text-generation run as a user runs it, on a scratch copy of the stories260K-hf
// fixture: convert → model_quantized.onnx → pipeline(..., { dtype: 'q8' }) → a continuation.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyFixture, FIXTURE, hashTree } from './helpers.ts';

const { root, model } = copyFixture('hf-example');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const EXAMPLE = resolve('examples/hf-text-generation');

describe('examples/hf-text-generation', () => {
  it('run.mjs quantizes the folder to q8 and generates with the variant through the pipeline', () => {
    const fixture = hashTree(FIXTURE);
    const r = spawnSync(process.execPath, [join(EXAMPLE, 'run.mjs'), model], { encoding: 'utf8', timeout: 60_000 });
    console.log(r.stdout);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`$ convert ${model} --pass q-arvd --variant q8 --q-arvd.prompts ${join(EXAMPLE, 'prompts.txt')}`);
    expect(r.stderr).toContain(`wrote ${join(model, 'onnx', 'model_quantized.onnx')}`);
    expect(r.stdout).toMatch(/^q8  : Once upon a time, there was a little girl named Lily$/m);
    expect(r.stdout).toMatch(/^fp32: Once upon a time, there was a little girl named Lily$/m);
    expect(existsSync(join(model, 'onnx', 'model_quantized.onnx'))).toBe(true);
    expect(hashTree(FIXTURE)).toEqual(fixture);
  });

  it('the README shows the command run.mjs runs', () => {
    const readme = readFileSync(join(EXAMPLE, 'README.md'), 'utf8');
    expect(readme).toContain('npx convert ./model --pass q-arvd --variant q8 --q-arvd.prompts prompts.txt');
    expect(readme).toContain("pipeline('text-generation', 'model', { dtype: 'q8' })");
    expect(readFileSync(join(EXAMPLE, 'run.mjs'), 'utf8')).toContain("'--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', prompts");
  });
});
