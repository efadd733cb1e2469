// A malformed calibration module gets one clear error naming the module (and the sample when
// there is one) and the problem; nothing is written and the model is left as it was.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { faintChunks } from '../../src/passes/calibration/sensitivity.ts';
import { runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('calib-malformed');
afterAll(() => removeDir(dir));

/** A small model: `y = x·W`, x float32 [1, 4, 32] named input_ids (so the messages read like a real model's). */
function smallModel(): string {
  const g = new Graph({ name: 'small' });
  const model = new Model(g, { irVersion: 8, opset: 17 });
  const f32 = (dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const x = new Value('input_ids', { type: f32([1, 4, 32]) });
  g.addInput(x);
  const w = new Value('W', { initializer: Tensor.fromFloat32('W', [32, 16], seededRandom(1).normalArray(512)) });
  g.addInitializer(w);
  const mm = new Node({ opType: 'MatMul', name: 'mm', inputs: [x, w], outputs: ['y'] });
  g.append(mm);
  const y = mm.outputs[0]!;
  y.type = f32([1, 4, 16]);
  g.addOutput(y);
  const path = join(dir, 'small.onnx');
  saveModel(model, path);
  return path;
}
const MODEL = smallModel();

const ids = (dims: number[]) => `new ort.Tensor('float32', new Float32Array(${dims.reduce((a, b) => a * b, 1)}).fill(0.5), ${JSON.stringify(dims)})`;
const HEADER = "import * as ort from 'onnxruntime-node';\n";

const CASES: { name: string; source: string; error: RegExp }[] = [
  { name: 'no-export', source: 'export const samples = 2;\n', error: /exports neither feeds\(ctx\) nor rollout\(run, ctx\)/ },
  { name: 'both', source: 'export function* feeds() {}\nexport async function rollout() {}\n', error: /exports both feeds and rollout/ },
  { name: 'throws', source: "export const samples = 3;\nexport function* feeds(ctx) { if (ctx.sample === 1) throw new Error('no more data'); yield { feeds: { input_ids: " + ids([1, 4, 32]) + ' } }; }\n', error: /, sample 1: threw: no more data/ },
  { name: 'wrong-name', source: `export function* feeds() { yield { feeds: { tokens: ${ids([1, 4, 32])} } }; }\n`, error: /sample 0: feeds name 'tokens', which the model does not have; its inputs are 'input_ids'/ },
  { name: 'missing-input', source: 'export function* feeds() { yield { feeds: {} }; }\n', error: /feeds lack the model input\(s\) 'input_ids'/ },
  { name: 'wrong-shape', source: `export function* feeds() { yield { feeds: { input_ids: ${ids([1, 4, 31])} } }; }\n`, error: /sample 0: the model rejected the feeds: .*(rank|dimension|shape)/i },
  { name: 'wrong-type', source: "export function* feeds() { yield { feeds: { input_ids: new ort.Tensor('int64', new BigInt64Array(128), [1, 4, 32]) } }; }\n", error: /sample 0: the model rejected the feeds: .*(type|tensor\(int64\))/i },
  { name: 'not-a-tensor', source: 'export function* feeds() { yield { feeds: { input_ids: [1, 2, 3] } }; }\n', error: /feed 'input_ids' is not an ort.Tensor/ },
  { name: 'zero-samples', source: `export const samples = 0;\nexport function* feeds() { yield { feeds: { input_ids: ${ids([1, 4, 32])} } }; }\n`, error: /samples must be a positive integer, got 0/ },
  // Found by a user trial: these two said "samples must be a positive integer, got 0" and "… got 8".
  { name: 'empty-prompts', source: 'export const prompts = [];\nexport async function rollout() {}\n', error: /prompts is an empty list: give at least one prompt/ },
  { name: 'string-samples', source: `export const samples = '8';\nexport function* feeds() { yield { feeds: { input_ids: ${ids([1, 4, 32])} } }; }\n`, error: /samples must be a positive integer, got '8' \(a string\)/ },
  { name: 'yields-nothing', source: 'export function* feeds() {}\n', error: /sample 0: feeds\(\) yielded no samples/ },
  { name: 'bad-yield', source: `export function* feeds() { yield ${ids([1, 4, 32])}; }\n`, error: /yielded something without a feeds record/ },
  { name: 'bad-chunk', source: `export function* feeds() { yield { feeds: { input_ids: ${ids([1, 4, 32])} }, chunk: -1 }; }\n`, error: /chunk tag must be a non-negative integer, got -1/ },
  { name: 'rollout-returns-nothing', source: `export const samples = 1;\nexport async function rollout(run) { await run({ input_ids: ${ids([1, 4, 32])} }, { chunk: 0 }); }\n`, error: /sample 0: rollout returned nothing; it must return the final result to judge/ },
  { name: 'rollout-returns-nan', source: `export const samples = 1;\nexport async function rollout(run) { await run({ input_ids: ${ids([1, 4, 32])} }, { chunk: 0 }); return new ort.Tensor('float32', new Float32Array([0, NaN]), [2]); }\n`, error: /sample 0: rollout returned a result holding NaN at index 1; the final result to judge must be finite/ },
  { name: 'no-rollout-samples', source: 'export async function rollout() {}\n', error: /a rollout module must export samples \(a number\) or prompts \(an array\)/ },
  { name: 'syntax-error', source: 'export function* feeds( {\n', error: /cannot be imported/ },
];

async function attempt(calib: string, warnings: string[] = [], extra: Record<string, unknown> = {}) {
  const model = loadModel(MODEL);
  const before = { nodes: model.graph.nodes().length, outputs: model.graph.outputs.map((v) => v.name), inits: model.graph.initializers.size };
  const report = join(dir, `${calib.replace(/\W/g, '_')}.report.json`);
  const table = join(dir, `${calib.replace(/\W/g, '_')}.table.json`);
  const options = resolveOptions(qArvd, { calib, report, 'save-calibration': table, 'calib-threads': 1, ...extra }) as unknown as SharedQuantValues;
  const log = createLogger({ write: (l) => warnings.push(l) });
  const error = await runQuantPass(model, { log, verbose: false, modelDir: undefined }, options, 'q-arvd').then(() => undefined, (e: Error) => e);
  const after = { nodes: model.graph.nodes().length, outputs: model.graph.outputs.map((v) => v.name), inits: model.graph.initializers.size };
  return { error, written: [report, table].filter((p) => existsSync(p)), unchanged: JSON.stringify(before) === JSON.stringify(after) };
}

describe('malformed calibration modules', () => {
  for (const c of CASES) {
    it(`${c.name}: names the module and the problem, writes nothing`, async () => {
      const path = join(dir, `${c.name}.mjs`);
      writeFileSync(path, HEADER + c.source);
      const { error, written, unchanged } = await attempt(path);
      expect(error, 'an error').toBeDefined();
      expect(error!.message).toContain(`calibration module ${path}`);
      expect(error!.message).toMatch(c.error);
      expect(written).toEqual([]);
      expect(unchanged).toBe(true);
    });
  }

  it('a module that throws: its own error (with its stack, in the module file) is the cause (--debug prints the chain)', async () => {
    const path = join(dir, 'throws-cause.mjs');
    writeFileSync(path, HEADER + "export const samples = 1;\nexport function* feeds() { throw new Error('my encoder blew up'); }\n");
    const { error } = await attempt(path);
    expect(error!.message).toMatch(/sample 0: threw: my encoder blew up/);
    const cause = error!.cause as Error;
    expect(cause.message).toBe('my encoder blew up');
    expect(cause.stack).toContain('throws-cause.mjs');
  });

  // Module mistakes that leave S1's curve meaningless without failing anything: warned.
  const rolloutModule = (noise: string, result: string) =>
    `${HEADER}export const samples = 2;\nexport async function rollout(run, ctx) {\n  let out;\n  for (let c = 0; c < 3; c++) out = await run({ input_ids: new ort.Tensor('float32', Float32Array.from({ length: 128 }, () => ${noise}), [1, 4, 32]) }, { chunk: c });\n  return ${result};\n}\n`;

  it('a rollout result holding NaN is judged by S1 only: with frame weighting off (nothing compares results) the run goes on (found by review)', async () => {
    const path = join(dir, 'nan-unjudged.mjs');
    writeFileSync(path, HEADER + `export const samples = 1;\nexport async function rollout(run) { await run({ input_ids: ${ids([1, 4, 32])} }, { chunk: 0 }); return new ort.Tensor('float32', new Float32Array([0, NaN]), [2]); }\n`);
    expect((await attempt(path, [], { 'frame-weighting': false })).error).toBeUndefined();
  });

  it('S1 with a rollout drawing its noise from Math.random: warned, naming the samples and ctx.random', async () => {
    const path = join(dir, 'math-random.mjs');
    writeFileSync(path, rolloutModule('Math.random() - 0.5', 'out.y'));
    const warnings: string[] = [];
    const { error } = await attempt(path, warnings);
    expect(error).toBeUndefined();
    expect(warnings.some((w) => w.includes(`warning: ${path}: rolled out again with the same context, sample(s) 0, 1 fed the model other inputs`) && w.includes('ctx.random')), warnings.join('\n')).toBe(true);
  });

  it('S1 with a rollout that draws from Math.random only after its first chunk: warned too (only the first call was compared)', async () => {
    const path = join(dir, 'math-random-later.mjs');
    writeFileSync(path, rolloutModule('(c === 0 ? ctx.random.normal() : Math.random() - 0.5)', 'out.y'));
    const warnings: string[] = [];
    expect((await attempt(path, warnings)).error).toBeUndefined();
    expect(warnings.some((w) => w.includes(`warning: ${path}: rolled out again with the same context, sample(s) 0, 1 fed the model other inputs before any call was quantized`)), warnings.join('\n')).toBe(true);
  });

  it('S1 with a result no quantization changes (not computed from the model), or only the last chunk\'s: warned; a module returning every chunk\'s output gets no warning', async () => {
    const constant = join(dir, 'constant-result.mjs');
    writeFileSync(constant, rolloutModule('ctx.random.normal()', "new ort.Tensor('float32', new Float32Array([1, 2, 3]), [3])"));
    const warnings: string[] = [];
    expect((await attempt(constant, warnings)).error).toBeUndefined();
    expect(warnings.some((w) => w.includes(`warning: ${constant}: quantizing any one chunk left the rollout's result unchanged`)), warnings.join('\n')).toBe(true);
    // A result with only the last chunk's output (a user trial: its rollout returned the last chunk's frames): the other chunks are named.
    const last = join(dir, 'last-chunk.mjs');
    writeFileSync(last, rolloutModule('ctx.random.normal()', 'out.y'));
    const lastWarnings: string[] = [];
    expect((await attempt(last, lastWarnings)).error).toBeUndefined();
    expect(lastWarnings.some((w) => w.includes(`warning: ${last}: quantizing chunk(s) 0, 1 changed the rollout's result (mean squared) by less than 0.1% of what a later chunk's did (chunk 2)`) && w.includes('return all of it')), lastWarnings.join('\n')).toBe(true);
    // A chunk left out between two that are in: the chunk named is a later one, not the most
    // sensitive of all (here chunk 0, scaled up).
    const middle = join(dir, 'middle-chunk.mjs');
    writeFileSync(middle, `${HEADER}export const samples = 2;\nexport async function rollout(run, ctx) {\n  const kept = [];\n  for (let c = 0; c < 3; c++) {\n    const { y } = await run({ input_ids: new ort.Tensor('float32', Float32Array.from({ length: 128 }, () => ctx.random.normal()), [1, 4, 32]) }, { chunk: c });\n    if (c !== 1) kept.push(...Array.from(y.data, (v) => (c === 0 ? 100 * v : v)));\n  }\n  return new ort.Tensor('float32', Float32Array.from(kept), [kept.length]);\n}\n`);
    const middleWarnings: string[] = [];
    expect((await attempt(middle, middleWarnings)).error).toBeUndefined();
    expect(middleWarnings.some((w) => w.includes(`warning: ${middle}: quantizing chunk(s) 1 changed the rollout's result (mean squared) by less than 0.1% of what a later chunk's did (chunk 2)`)), middleWarnings.join('\n')).toBe(true);
    // The rule itself: a curve falling along a long rollout (halving over 20 chunks, to 2e-6 of
    // the first) is no warning; earlier chunks far below a later one are.
    expect(faintChunks(Array.from({ length: 20 }, (_, c) => c), Array.from({ length: 20 }, (_, c) => 0.5 ** c))).toEqual([]);
    expect(faintChunks([0, 1, 2, 3], [2e-7, 3e-7, 1e-7, 0.999])).toEqual([0, 1, 2]);
    expect(faintChunks([3, 0, 1], [1, 1e-5, 0.5])).toEqual([0]);
    // Every chunk's output in the result: no warning.
    const proper = join(dir, 'proper.mjs');
    writeFileSync(proper, `${HEADER}export const samples = 2;\nexport async function rollout(run, ctx) {\n  const all = [];\n  for (let c = 0; c < 3; c++) all.push(...(await run({ input_ids: new ort.Tensor('float32', Float32Array.from({ length: 128 }, () => ctx.random.normal()), [1, 4, 32]) }, { chunk: c })).y.data);\n  return new ort.Tensor('float32', Float32Array.from(all), [all.length]);\n}\n`);
    const clean: string[] = [];
    expect((await attempt(proper, clean)).error).toBeUndefined();
    expect(clean.filter((w) => /fed the model other inputs|left the rollout's result unchanged|changed the rollout's result by less/.test(w))).toEqual([]);
  });

  it('an ES module calib.js in a "type": "commonjs" package: says to rename it or set "type": "module"', async () => {
    // What `npm init -y` writes; Node alone says only "Cannot use import statement outside a module".
    const app = join(dir, 'cjs-app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'commonjs' }));
    const path = join(app, 'calib.js');
    writeFileSync(path, HEADER + `export function* feeds() { yield { feeds: { input_ids: ${ids([1, 4, 32])} } }; }\n`);
    // In a child process: under vitest, Vite's transform would import the file as an ES module whatever its package says.
    const out = join(app, 'out.onnx');
    const r = await runCli([MODEL, '-o', out, '--pass', 'q-arvd', '--q-arvd.calib', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`calibration module ${path}: cannot be imported: Cannot use import statement outside a module`);
    expect(r.stderr).toContain(`rename it to calib.mjs, or set "type": "module" in ${join(app, 'package.json')}`);
    expect(existsSync(out)).toBe(false);
  });

  it('a CommonJS calib.js requiring an ES module helper.js: names helper.js, and does not tell calib.js to rename itself (found by review)', async () => {
    const app = join(dir, 'cjs-helper');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'commonjs' }));
    writeFileSync(join(app, 'helper.js'), 'export const n = 2;\n');
    const path = join(app, 'calib.js');
    writeFileSync(path, "const { n } = require('./helper.js');\nmodule.exports = { samples: n, feeds: () => ({}) };\n");
    const r = await runCli([MODEL, '-o', join(app, 'out.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`; ${join(app, 'helper.js')}, loaded from calib.js, is written as an ES module (import/export) and Node loads it as CommonJS (${join(app, 'package.json')} does not set "type": "module")`);
    expect(r.stderr).not.toContain('rename it to calib.mjs');
  });

  it('a module that throws at import: the error keeps what it threw as its cause (--debug prints its stack; found by review)', async () => {
    const path = join(dir, 'import-throw.mjs');
    writeFileSync(path, "export const samples = 1;\nexport function* feeds() {}\nfunction helper() { throw new Error('boom-at-import'); }\nhelper();\n");
    const { error } = await attempt(path);
    expect(error!.message).toContain(`calibration module ${path}: cannot be imported: boom-at-import`);
    expect((error!.cause as Error | undefined)?.message).toBe('boom-at-import');
  });

  it('a missing file is named as such', async () => {
    const { error, written } = await attempt(join(dir, 'nowhere.mjs'));
    expect(error!.message).toMatch(/calibration module .*nowhere\.mjs: file not found/);
    expect(written).toEqual([]);
  });

  it('no module and no table: says how to give one', async () => {
    const { error } = await attempt('');
    expect(error!.message).toMatch(/give a calibration module with calib .*load-calibration.*a-bits none/);
  });
});
