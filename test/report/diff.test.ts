// `convert diff`: golden samples (test/report/samples/<case>/), exit codes, op counts checked
// against an independent decoding with the onnx-proto package, and the promise that no weight
// byte is read without --data. Set UPDATE_GOLDEN=1 to rewrite the golden files.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import type { ModelDiff } from '../../src/report/diff.ts';
import type { ListDiff } from '../../src/report/diff-schema.ts';
import { formatDiff, MD_CELL_CHARS, MD_CHARS, MD_LAYER_ROWS, MD_LIST_ROWS } from '../../src/report/diff-format.ts';
import { prompts, rollout } from '../../examples/tiny-arvd/rollout.ts';
import { cli, golden } from '../helpers/cli.ts';

const STORIES = 'test/fixtures/stories260K/stories260K.onnx';
const TINY = 'examples/tiny-arvd/model.onnx';
/** Fixed folder names: the diff prints paths as given, so golden files need stable ones. */
const OUT = 'test-output/report-samples';
const SAMPLES = 'test/report/samples';
const ctx = { log: createLogger({ write: () => {} }), verbose: false, modelDir: undefined };



function path(sample: string, file: string): string {
  return `${OUT}/${sample}/${file}`;
}

/**
 * q-arvd with `options`, every layer in its integer form: the samples show how the diff reads the
 * integer emission (Gathers, Q/DQ, Sums); these small models' layers would otherwise mostly be
 * kept fp32 by the small-layer rule (test/quant/small-layers.test.ts).
 */
async function quantize(model: Model, options: Record<string, string>, calibration?: Parameters<typeof runQuantPass>[4]): Promise<Model> {
  await runQuantPass(model, ctx, resolveOptions(qArvd, { 'integer-kernels': 'always', ...options }) as never, 'q-arvd', calibration);
  return model;
}

/** One stories260K calibration sample (a TinyStories-like token sequence). */
const storiesCalibration = {
  samples: 1,
  *feeds() {
    yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from([1n, 403n, 407n, 261n, 378n, 10n, 9n, 300n]), [1, 8]) } };
  },
};

const tensorType = (elem: number, dims: (number | string)[]) => ({
  tensor_type: { elem_type: elem, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } },
});

/**
 * A synthetic pair whose interface changed: `x` f32[batch,64] → f32[1,64], input `mask`
 * replaced by a scalar `temperature`, output `y` f32[batch,32] → f32[1,32]; the weight `W`
 * keeps its type and shape but one value differs (seen only with --data).
 */
function synthetic(variant: 'a' | 'b'): Model {
  const g = new Graph({ name: 'synthetic' });
  const x = new Value('x', { type: tensorType(1, variant === 'a' ? ['batch', 64] : [1, 64]) });
  const other = variant === 'a' ? new Value('mask', { type: tensorType(1, ['batch', 64]) }) : new Value('temperature', { type: tensorType(1, []) });
  g.addInput(x);
  g.addInput(other);
  const data = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.fround(Math.sin(i) / 8));
  if (variant === 'b') data[5] = 0.5;
  const w = new Value('W', { initializer: Tensor.fromFloat32('W', [64, 32], data) });
  g.addInitializer(w);
  const gate = new Node({ opType: 'Mul', name: 'gate', inputs: [x, other], outputs: ['gated'] });
  const proj = new Node({ opType: 'MatMul', name: 'proj', inputs: [gate.output(0), w], outputs: ['projected'] });
  const act = new Node({ opType: 'Relu', name: 'act', inputs: [proj.output(0)], outputs: ['y'] });
  g.append(gate, proj, act);
  act.output(0).type = tensorType(1, variant === 'a' ? ['batch', 32] : [1, 32]);
  g.addOutput(act.output(0));
  return new Model(g, { opset: 17 });
}

/** Op type counts of a model file decoded with onnx-proto (not this project's codec), subgraphs included. */
function independentCounts(file: string): Map<string, number> {
  const { onnx } = createRequire(import.meta.url)('onnx-proto') as { onnx: { ModelProto: { decode(b: Uint8Array): any } } };
  const model = onnx.ModelProto.decode(readFileSync(file));
  const counts = new Map<string, number>();
  const visit = (graph: any) => {
    for (const n of graph.node ?? []) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      for (const a of n.attribute ?? []) {
        if (a.g) visit(a.g);
        for (const sg of a.graphs ?? []) visit(sg);
      }
    }
  };
  visit(model.graph);
  return counts;
}

beforeAll(async () => {
  rmSync(OUT, { recursive: true, force: true });
  for (const s of ['identical', 'stories260K-qdq-w4', 'stories260K-qoperator-w8a8', 'inputs-changed', 'external-data', 'external-data-corrupt']) mkdirSync(`${OUT}/${s}`, { recursive: true });
  saveModel(loadModel(STORIES), path('identical', 'copy.onnx'));
  saveModel(await quantize(loadModel(STORIES), { 'w-bits': '4', 'a-bits': 'none' }), path('stories260K-qdq-w4', 'after.onnx'));
  // Plain min/max activation ranges: the scale search changes no node, initializer or decision the diff shows.
  saveModel(await quantize(loadModel(STORIES), { format: 'qoperator', 'scale-search': 'false' }, storiesCalibration), path('stories260K-qoperator-w8a8', 'after.onnx'));
  saveModel(synthetic('a'), path('inputs-changed', 'before.onnx'));
  saveModel(synthetic('b'), path('inputs-changed', 'after.onnx'));
  saveModel(loadModel(STORIES), path('external-data', 'before.onnx'), { externalData: true });
  saveModel(await quantize(loadModel(STORIES), { 'w-bits': '4', 'a-bits': 'none' }), path('external-data', 'after.onnx'), { externalData: true });
});

afterEach(() => vi.restoreAllMocks());

describe('convert diff golden samples', () => {
  it('identical models: an empty diff and exit 0 under --exit-code', async () => {
    const before = STORIES;
    const after = path('identical', 'copy.onnx');
    for (const format of ['text', 'md', 'json']) {
      const r = await cli('diff', before, after, '--format', format, '--exit-code');
      expect(r.code, r.err).toBe(0);
      golden(SAMPLES, 'identical', `diff.${format === 'text' ? 'txt' : format}`, r.out);
    }
    const json = JSON.parse((await cli('diff', before, after, '--format', 'json')).out) as ModelDiff;
    expect(json.differ).toBe(false);
    expect(json.ops.every((o) => o.delta === 0)).toBe(true);
    expect(json.layers).toEqual({ unchanged: 36, rewritten: [] });
  });

  it('stories260K before/after q-arvd W4 weight-only, QDQ form', async () => {
    const after = path('stories260K-qdq-w4', 'after.onnx');
    const text = await cli('diff', STORIES, after);
    expect(text.code).toBe(0);
    golden(SAMPLES, 'stories260K-qdq-w4', 'diff.txt', text.out);
    golden(SAMPLES, 'stories260K-qdq-w4', 'diff.md', (await cli('diff', STORIES, after, '--format', 'md')).out);
    expect((await cli('diff', STORIES, after, '--exit-code')).code).toBe(1);
    // An error is not a difference under --exit-code (a CI gate tells them apart); without it, 1 as every error.
    const missing = await cli('diff', STORIES, path('nowhere', 'missing.onnx'), '--exit-code');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^convert: error: .*missing\.onnx: no such file/);
    expect((await cli('diff', STORIES, path('nowhere', 'missing.onnx'))).code).toBe(1);
    // Read from the parsed options, not argv's spelling: a global option before the command, --exit-code=true, --exit-code false.
    const nowhere = path('nowhere', 'missing.onnx');
    expect((await cli('--debug', 'diff', STORIES, nowhere, '--exit-code')).code).toBe(2);
    expect((await cli('diff', STORIES, nowhere, '--exit-code=true')).code).toBe(2);
    expect((await cli('diff', STORIES, nowhere, '--exit-code', 'false')).code).toBe(1);
    // A usage error (a missing argument) under --exit-code is an error too.
    expect((await cli('diff', STORIES, '--exit-code')).code).toBe(2);
    // The lm_head: 9 raw outliers of 64, rounded up to 32 rows; outside the blocks, 8-bit weights (scope outer-w8).
    expect(text.out).toMatch(/^ {2}\/MatMul +\[64×512\] +dual-scale W8 · 32 outlier rows · \+Gather×2 \+DequantizeLinear×2 \+MatMul×1 \+Sum×1 · constants 128\.0 KiB → 37\.5 KiB$/m);
    // Raising the opset from 14 to 21 turned ReduceMean's axes attribute into an input: the diff shows it.
    expect(text.out).toContain('~ /norm/ReduceMean (ReduceMean): attribute axes [-1] → (none)');
  });

  it('stories260K before/after q-arvd W8A8, QOperator form (MatMulIntegerToFloat)', async () => {
    const after = path('stories260K-qoperator-w8a8', 'after.onnx');
    const text = await cli('diff', STORIES, after);
    golden(SAMPLES, 'stories260K-qoperator-w8a8', 'diff.txt', text.out);
    golden(SAMPLES, 'stories260K-qoperator-w8a8', 'diff.md', (await cli('diff', STORIES, after, '--format', 'md')).out);
    expect(text.out).toMatch(/^ {2}\/blocks\.0\/q\/MatMul +\[64×64\] +single-scale W8A8 · \+QuantizeLinear×1 \+com\.microsoft\.MatMulIntegerToFloat×1 -MatMul×1 · /m);
    // The head (/MatMul, the layer outside the repeated blocks) keeps float inputs: 8-bit weight-only (outer-activations float, q-arvd's default).
    expect(text.out).toContain('(13 dual-scale, 23 single-scale; q-arvd W8A8 qoperator ×35, q-arvd W8 qoperator ×1)');
  });

  it('a synthetic model whose inputs and output shape changed', async () => {
    const before = path('inputs-changed', 'before.onnx');
    const after = path('inputs-changed', 'after.onnx');
    for (const format of ['text', 'md', 'json']) golden(SAMPLES, 'inputs-changed', `diff.${format === 'text' ? 'txt' : format}`, (await cli('diff', before, after, '--format', format)).out);
    const d = JSON.parse((await cli('diff', before, after, '--format', 'json')).out) as ModelDiff;
    expect(d.inputs.removed.map((v) => v.name)).toEqual(['mask']);
    expect(d.inputs.added).toEqual([{ name: 'temperature', dtype: 'f32', shape: [] }]);
    expect(d.inputs.changed).toEqual([{ name: 'x', before: { name: 'x', dtype: 'f32', shape: ['batch', 64] }, after: { name: 'x', dtype: 'f32', shape: [1, 64] }, what: ['shape'] }]);
    expect(d.outputs.changed.map((c) => c.what)).toEqual([['shape']]);
    expect(d.otherNodes.changed).toEqual([{ name: 'gate', op: 'Mul', what: ['inputs (x, mask) → (x, temperature)'] }]);
    // W's contents differ, but without --data they are not read: W counts as unchanged.
    expect(d.initializers.unchanged).toBe(1);
    const withData = await cli('diff', before, after, '--data');
    golden(SAMPLES, 'inputs-changed', 'diff-data.txt', withData.out);
    const dd = JSON.parse((await cli('diff', before, after, '--data', '--format', 'json')).out) as ModelDiff;
    expect(dd.initializers.changed.map((c) => [c.name, c.what])).toEqual([['W', ['data']]]);
  });

  it('a model with external data, before/after q-arvd W4', async () => {
    const before = path('external-data', 'before.onnx');
    const after = path('external-data', 'after.onnx');
    expect(existsSync(`${before}.data`) && existsSync(`${after}.data`)).toBe(true);
    const text = await cli('diff', before, after);
    golden(SAMPLES, 'external-data', 'diff.txt', text.out);
    const d = JSON.parse((await cli('diff', before, after, '--format', 'json')).out) as ModelDiff;
    expect(d.initializers.removed.filter((t) => t.external).length).toBeGreaterThan(30);
    // Where the bytes live does not change what they weigh: same figures as the inline pair.
    const inline = JSON.parse((await cli('diff', STORIES, path('stories260K-qdq-w4', 'after.onnx'), '--format', 'json')).out) as ModelDiff;
    expect(d.weights).toEqual(inline.weights);
    expect(d.weights.before).toBeGreaterThan(2236160); // the initializers, plus the Constant nodes' tensors
  });
});

describe('convert diff counts and data', () => {
  it('op counts agree with an independent onnx-proto decoding of both files', async () => {
    const pairs: [string, string][] = [
      [STORIES, path('stories260K-qdq-w4', 'after.onnx')],
      [STORIES, path('stories260K-qoperator-w8a8', 'after.onnx')],
      [path('external-data', 'before.onnx'), path('external-data', 'after.onnx')],
      [path('inputs-changed', 'before.onnx'), path('inputs-changed', 'after.onnx')],
    ];
    for (const [a, b] of pairs) {
      const d = JSON.parse((await cli('diff', a, b, '--format', 'json')).out) as ModelDiff;
      const ca = independentCounts(a);
      const cb = independentCounts(b);
      expect(new Map(d.ops.filter((o) => o.before > 0).map((o) => [o.op, o.before]))).toEqual(ca);
      expect(new Map(d.ops.filter((o) => o.after > 0).map((o) => [o.op, o.after]))).toEqual(cb);
      expect(d.nodes.after).toBe([...cb.values()].reduce((s, x) => s + x, 0));
    }
  });

  it('reads no tensor bytes without --data, and finds changed contents with it', async () => {
    const before = path('external-data', 'before.onnx');
    const corrupt = path('external-data-corrupt', 'before.onnx');
    copyFileSync(before, corrupt);
    const data = readFileSync(`${before}.data`);
    data[4096] = data[4096]! ^ 0xff;
    writeFileSync(`${corrupt}.data`, data);
    // Every way a tensor's bytes are read: bytes(), and bytesVia(), which reads a data file
    // into a reused buffer without calling bytes() (found by review: spying on bytes() alone
    // missed every read of a data file's tensor; a diff reading only those passed).
    const spies = [vi.spyOn(Tensor.prototype, 'bytes'), vi.spyOn(Tensor.prototype, 'bytesVia')] as const;
    const reads = () => spies.reduce((n, s) => n + s.mock.calls.length, 0);
    const plain = await cli('diff', before, corrupt, '--exit-code');
    expect(plain.code).toBe(0);
    expect(reads()).toBe(0);
    const withData = await cli('diff', before, corrupt, '--exit-code', '--data', '--format', 'json');
    expect(withData.code).toBe(1);
    // The data files' tensors are among those read, and only bytesVia sees them.
    expect(spies[1].mock.contexts.some((t) => (t as Tensor).external !== undefined)).toBe(true);
    const d = JSON.parse(withData.out) as ModelDiff;
    expect(d.initializers.changed).toHaveLength(1);
    expect(d.initializers.changed[0]!.what).toEqual(['data']);
    expect(d.initializers.changed[0]!.before.sha256).not.toBe(d.initializers.changed[0]!.after.sha256);
  });

  it('Markdown stays a pull-request comment: long lists end in a "more" row, the layers are all there (found by a user trial: tiny-arvd-l W4 gave 58 K characters, GitHub takes 65,536)', async () => {
    const before = 'examples/tiny-arvd-l/model.onnx';
    const after = path('tiny-arvd-l-w4', 'after.onnx');
    mkdirSync(path('tiny-arvd-l-w4', ''), { recursive: true });
    saveModel(await quantize(loadModel(before), { 'w-bits': '4', 'a-bits': 'none' }), after);
    const md = (await cli('diff', before, after, '--format', 'md')).out;
    const text = (await cli('diff', before, after)).out;
    // Every one of the 67 layers has its row; the initializer list stops at MD_LIST_ROWS with a count.
    expect(md.match(/^\| `\/[^`]*MatMul` \|/gm)).toHaveLength(67);
    const more = /^\| … (\d+) more \(`--format text` or `json` lists every one\) \|/m.exec(md);
    expect(more).not.toBeNull();
    const listed = JSON.parse((await cli('diff', before, after, '--format', 'json')).out) as ModelDiff;
    const inits = listed.initializers;
    expect(Number(more![1])).toBe(inits.added.length + inits.removed.length + inits.changed.length - MD_LIST_ROWS);
    // 67 layers in well under the limit; at about 150 characters a layer row, MD_LAYER_ROWS (320) rows still fit.
    expect(md.length).toBeLessThan(20_000);
    expect(md.length + (MD_LAYER_ROWS - 67) * 170).toBeLessThan(65_536);
    expect(text).not.toContain('more (');
  });

  it('Markdown stays under 65,536 characters however long the names (found by review: 400 layers with long names gave 67,019 under the row caps)', () => {
    const prefix = '/model/transformer/diffusion_model_with_a_rather_long_prefix_name';
    const list = <T,>(): ListDiff<T> => ({ added: [], removed: [], changed: [], unchanged: 0 });
    const empty = (): ModelDiff => ({
      schema: 'qarvd.diff/1', before: 'a.onnx', after: 'b.onnx', differ: true, dataCompared: false, model: [], opsets: [{ domain: '', before: 17, after: 17 }],
      ops: [{ op: 'MatMul', before: 400, after: 0, delta: -400 }], nodes: { before: 400, after: 2000 }, inputs: list(), outputs: list(), initializers: list(),
      weights: { before: 4, after: 1, ratio: 0.25 }, layers: { unchanged: 0, rewritten: [] }, otherNodes: { added: [], removed: [], changed: [] },
    });
    const big = empty();
    for (let b = 0; b < 40; b++) {
      for (const k of ['self_attn/q', 'self_attn/k', 'self_attn/v', 'self_attn/o', 'cross_attn/q', 'cross_attn/k', 'cross_attn/v', 'cross_attn/o', 'ffn/ffn.0', 'ffn/ffn.2']) {
        const name = `${prefix}/blocks.${b}/${k}/MatMul`;
        const decision = { method: 'q-arvd', layer: name, op: 'MatMul', K: 1536, N: 1536, mode: 'dual' as const, outliers: 32, bits: 'W8A8', format: 'qoperator' };
        big.layers.rewritten.push({ name, op: 'MatMul', K: 1536, N: 1536, direction: 'quantized', decision, opsBefore: { MatMul: 1 }, opsAfter: { Gather: 2, Add: 1 }, delta: [{ op: 'Gather', delta: 2 }, { op: 'MatMul', delta: -1 }], weightBytes: { before: 4, after: 1 } });
        big.initializers.added.push({ name: `${name}.weight_quantized`, dtype: 'int8', shape: [1536, 1536], bytes: 1536 * 1536 });
        big.otherNodes.added.push({ name: `${name}/QuantizeLinear`, op: 'QuantizeLinear' });
      }
    }
    const md = formatDiff(big, 'md');
    expect(md.length).toBeLessThan(MD_CHARS + 2_000);
    // Each list ends with its count of what it left out; the layers shown and left out add up.
    const more = [...md.matchAll(/^\| … (\d+) more \(`--format text` or `json` lists every one\) \|/gm)].map((m) => Number(m[1]));
    expect(more).toHaveLength(3);
    expect(md.match(/^\| `\/model[^`]*MatMul` \|/gm)!.length + more[0]!).toBe(400);
    // A long cell ends in "…" instead of filling the comment.
    const one = empty();
    one.otherNodes.changed.push({ name: '/n', op: 'Reshape', what: Array.from({ length: 500 }, (_, i) => `attribute a${i} changed`) });
    const row = formatDiff(one, 'md').split('\n').find((l) => l.startsWith('| changed | `/n`'))!;
    expect(row).toMatch(/… \|$/);
    expect(row.length).toBeLessThan(MD_CELL_CHARS + 50);
  });

  it('prints the same bytes on every run', async () => {
    const after = path('stories260K-qdq-w4', 'after.onnx');
    const a = await cli('diff', STORIES, after, '--format', 'json');
    const b = await cli('diff', STORIES, after, '--format', 'json');
    expect(a.out).toBe(b.out);
    expect(a.out).not.toMatch(/\/work\/|\d{4}-\d\d-\d\dT/);
  });

  it('matches the issue example line on a tiny-ARVD ffn.2 layer at W4A8 (QDQ, calibrated)', async () => {
    mkdirSync(`${OUT}/tiny-w4a8`, { recursive: true });
    const after = path('tiny-w4a8', 'after.onnx');
    saveModel(await quantize(loadModel(TINY), { 'w-bits': '4', 'scale-search': 'false' }, { rollout: rollout as never, prompts, samples: 1 }), after);
    const r = await cli('diff', TINY, after);
    // The issue's line had +Gather×1; fold-split (default on) moves ffn.2's outlier channels last through ffn.0, so a Slice reads them.
    // Each branch's 4-bit weight is stored as int4 behind a Cast to int8 (int4-storage), which onnxruntime folds at load.
    expect(r.out).toMatch(/^ {2}\/blocks\.0\/ffn\/ffn\.2\/MatMul +\[256×64\] +dual-scale W4A8 · 32 outlier rows · \+Slice×1 \+QuantizeLinear×2 \+DequantizeLinear×4 \+Cast×2 \+MatMul×1 \+Sum×1 -Add×1 · /m);
    // The 7 layers around the blocks take 8-bit weights and keep float inputs (q-arvd's defaults scope outer-w8 and outer-activations float).
    expect(r.out).toContain('37 linear layers rewritten (12 dual-scale, 25 single-scale; q-arvd W4A8 qdq ×30, q-arvd W8 qdq ×7), 0 unchanged');

    // The same conversion with int8 storage: --data tells the storage change from a change of values.
    const int8 = path('tiny-w4a8', 'int8.onnx');
    saveModel(await quantize(loadModel(TINY), { 'w-bits': '4', 'scale-search': 'false', 'int4-storage': 'false' }, { rollout: rollout as never, prompts, samples: 1 }), int8);
    const d = JSON.parse((await cli('diff', int8, after, '--data', '--format', 'json')).out) as ModelDiff;
    const storage = d.initializers.changed.filter((c) => c.before.dtype === 'i8' && c.after.dtype === 'i4');
    expect(storage.length).toBe(30 + 12);
    expect(storage.every((c) => c.what.join() === 'dtype, same values')).toBe(true);
    // A weight whose values changed says so.
    const model = loadModel(after);
    const w = model.graph.initializers.get(storage[0]!.name)!.initializer!;
    const bytes = Uint8Array.from(w.bytes());
    bytes[0] = bytes[0]! ^ 0x01;
    w.setBytes(bytes);
    const edited = path('tiny-w4a8', 'edited.onnx');
    saveModel(model, edited);
    const e = JSON.parse((await cli('diff', int8, edited, '--data', '--format', 'json')).out) as ModelDiff;
    expect(e.initializers.changed.find((c) => c.name === storage[0]!.name)!.what).toEqual(['dtype', 'values']);
  });

  it('reports bad arguments on one line with exit 1', async () => {
    const missing = await cli('diff', STORIES, `${OUT}/nope.onnx`);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(`convert: error: ${OUT}/nope.onnx: no such file\n`);
    const fmt = await cli('diff', STORIES, STORIES, '--format', 'html');
    expect(fmt.err).toBe('convert: error: --format html: expected one of text, md, json\n');
    const unknown = await cli('diff', STORIES, STORIES, '--bogus');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/^convert: error: Unknown argument/);
  });
});
