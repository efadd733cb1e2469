// Folder mode refusals: each is one clear line, exit code 1, and the folder is left exactly
// as it was (hashes of every file before and after; no stray staging folder).
import { copyFileSync, cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, copyFixture, FIXTURE, hashTree } from './helpers.ts';

const { root, model } = copyFixture('hf-errors');
const onnx = join(model, 'onnx');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs the CLI, expects failure with one error line matching `message`, and no change on disk. */
async function refused(dir: string, args: string[], message: RegExp): Promise<string> {
  const before = hashTree(dir);
  const r = await cli(...args);
  expect(r.code, r.err).toBe(1);
  expect(r.err.split('\n').filter((l) => l !== '')).toHaveLength(1);
  expect(r.err).toMatch(/^convert: error: /);
  expect(r.err).toMatch(message);
  expect(hashTree(dir)).toEqual(before);
  return r.err;
}

describe('convert <folder>: bad folders and bad --variant names write nothing', () => {
  it('no config.json', async () => {
    const dir = join(root, 'no-config');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    await refused(dir, [dir, '--pass', 'q-arvd', '--variant', 'q8'], /no-config: not a transformers\.js model folder: no config\.json/);
  });

  it('no onnx/ folder', async () => {
    const dir = join(root, 'no-onnx');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    await refused(dir, [dir, '--pass', 'q-arvd', '--variant', 'q8'], /no-onnx: no onnx\/ folder; transformers\.js loads the graphs from onnx\/<name>\.onnx/);
  });

  it('an onnx/ with only variants in it', async () => {
    const dir = join(root, 'only-variants');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    writeFileSync(join(dir, 'onnx', 'model_quantized.onnx'), 'x');
    await refused(dir, [dir, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none'], /no fp32 base graph .*it holds only variants: model_quantized\.onnx/);
  });

  it('a variant that exists, unless --force', async () => {
    writeFileSync(join(onnx, 'model_quantized.onnx'), 'an earlier variant');
    const err = await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.a-bits', 'none'], /model_quantized\.onnx already exists; add --force to replace it/);
    expect(err).toContain('the fp32 graphs are never written');
    // An orphaned data file of the variant counts too.
    rmSync(join(onnx, 'model_quantized.onnx'));
    writeFileSync(join(onnx, 'model_quantized.onnx_data'), 'stale');
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.a-bits', 'none'], /model_quantized\.onnx_data already exists; add --force/);
    // --force replaces the variant and drops the stale data file the new (inline) variant does not use.
    const fp32 = hashTree(model)['onnx/model.onnx'];
    const r = await cli(model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.a-bits', 'none', '--force', '--quiet');
    expect(r.code, r.err).toBe(0);
    const after = hashTree(model);
    expect(Object.keys(after).filter((f) => f.startsWith('onnx/'))).toEqual(['onnx/', 'onnx/model.onnx', 'onnx/model_quantized.onnx']);
    expect(after['onnx/model.onnx']).toBe(fp32);
    rmSync(join(onnx, 'model_quantized.onnx'));
  });

  it('a --variant that looks like a typo of a dtype: did you mean', async () => {
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q88'], /--variant 'q88' is not a transformers\.js dtype; did you mean 'q8'\?/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'qint8'], /did you mean 'int8' or 'uint8'\?/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'Q4'], /did you mean 'q4'\?/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', '../model'], /--variant '\.\.\/model': '\/' is not allowed: use letters, digits/);
  });

  it('a dtype whose meaning the output lacks', async () => {
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'fp16'], /--variant fp16 means float16 weights and activations, but this q-arvd run has w-bits 8, a-bits 8; no pass here produces that format/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q4f16', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none'], /--variant q4f16 means 4-bit weights with float16 activations/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'bnb4'], /--variant bnb4 means bitsandbytes NF4 weights/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q4'], /--variant q4 means 4-bit weight-only quantization, but this q-arvd run has w-bits 8, a-bits 8; quantize with --q-arvd\.w-bits 4 --q-arvd\.a-bits none/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4'], /this q-arvd run has w-bits 4, a-bits 8/);
    await refused(model, [model, '--pass', 'minmax', '--variant', 'q8', '--minmax.w-bits', '4', '--minmax.a-bits', 'none'], /--variant q8 means 8-bit quantized weights, but this minmax run has w-bits 4/);
    // 8-bit weights are int8 (reduce-range: a 7-bit grid in int8): a uint8 variant names a format no pass writes.
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'uint8', '--q-arvd.a-bits', 'none'], /--variant uint8 means uint8 weights, but q-arvd stores 8-bit weights as int8 .*use --variant int8 or q8/);
    await refused(model, [model, '--pass', 'dce', '--variant', 'q8'], /the passes given quantize nothing .*add --pass q-arvd/);
    await refused(model, [model, '--variant', 'fp32'], /--variant fp32 is the base model itself/);
  });

  it('folder and file flags are not mixed up', async () => {
    await refused(model, [model, '--pass', 'q-arvd', '-o', join(root, 'x.onnx')], /is a model folder; -o is not used with one/);
    await refused(model, [model, '--pass', 'q-arvd'], /is a model folder; give --variant <name>/);
    await refused(model, [join(onnx, 'model.onnx'), '-o', join(root, 'y.onnx'), '--variant', 'q8'], /--variant applies to a model folder input/);
  });

  it("in a folder of several graphs a pass's refusal names the graph's file", async () => {
    // Found by review: "cannot make the graph input 'latents' from text" did not say which graph has that input.
    const dir = join(root, 'two-graphs');
    cpSync(FIXTURE, dir, { recursive: true });
    copyFileSync(resolve('examples/tiny-arvd/model.onnx'), join(dir, 'onnx', 'encoder_model.onnx'));
    const prompts = join(root, 'two-prompts.txt');
    writeFileSync(prompts, 'Lily went to the park\nThe dog was happy\n');
    await refused(dir, [dir, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', prompts], new RegExp(`^convert: error: ${join(dir, 'onnx', 'encoder_model.onnx')}: pass q-arvd \\(plugin q-arvd\\): .*cannot make the graph input 'latents' from text`));
  });

  it('text calibration refusals name the prompt list', async () => {
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', join(root, 'missing.txt')], /--q-arvd\.prompts .*missing\.txt: file not found/);
    const blank = join(root, 'blank.txt');
    writeFileSync(blank, '\n  \n');
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', blank], /blank\.txt: has no prompts \(one a line, or a JSON array of strings\)/);
    await refused(model, [model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', blank, '--q-arvd.calib', blank], /give calib or prompts, not both/);
  });
});
