// Folder mode end to end on a scratch copy of stories260K-hf: `convert <folder> --variant …`
// writes the file transformers.js loads for that dtype, and @huggingface/transformers' own
// text-generation pipeline loads it and generates.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import type { Tensor } from '../../src/graph/ir/tensor.ts';
import { loadModel, modelTensors, saveModel } from '../../src/graph/serde/io.ts';
import { agreement, CALIBRATION_PROMPTS, cli, copyFixture, FP32_TOKENS, greedy, hashTree } from './helpers.ts';

const { root, model } = copyFixture('hf');
const onnx = join(model, 'onnx');
const prompts = join(root, 'prompts.txt');
let fp32Hashes: Record<string, string>;

beforeAll(() => {
  writeFileSync(prompts, CALIBRATION_PROMPTS.join('\n') + '\n');
  fp32Hashes = hashTree(model);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Graph inputs and outputs with element types and dims, to compare interfaces. */
const iface = (file: string) => {
  const g = loadModel(file).graph;
  return [...g.inputs, ...g.outputs].map((v) => `${v.name}:${v.elemType()}[${(v.shape() ?? []).join(',')}]`);
};

/**
 * The quantized weight initializers: the 2-D integer tensors (scales, zero points and index
 * lists are 0-D or 1-D). Found by review: "some UINT8 tensor" held for the activations' zero
 * points alone, so a W4A8 variant passed as 8-bit weights.
 */
const quantizedWeights = (m: ReturnType<typeof loadModel>): Tensor[] => [...modelTensors(m)].filter((t) => t.dims.length === 2 && t.dataType !== DataType.FLOAT);

describe('transformers.js folder: q8 and q4 variants of stories260K-hf', () => {
  it('fp32 through the pipeline gives the continuation recorded with the fixture', async () => {
    const fp32 = await greedy(model, { dtype: 'fp32' });
    expect(fp32.file).toBe(join(onnx, 'model.onnx'));
    expect(fp32.tokens).toEqual(FP32_TOKENS);
  });

  it('q-arvd W8A8 calibrated from a prompt list through the tokenizer → onnx/model_quantized.onnx, loaded with dtype q8', async () => {
    const r = await cli(model, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', prompts, '--stats');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`${CALIBRATION_PROMPTS.length} sample(s) from prompts ${prompts} (tokenizer ${model})`);
    expect(r.err).toMatch(/q-arvd W8A8 qdq: \d+ dual-scale, \d+ single-scale/);
    expect(r.err).toContain(`wrote ${join(onnx, 'model_quantized.onnx')}`);
    expect(r.err).toContain(`{ dtype: 'q8' }`);
    expect(r.out).toMatch(/layersQuantized\s+36/);

    // The KV-cache interface is untouched (symbolic dims, present.* outputs), the attention
    // MatMuls stay float, the weights are 8-bit, and the variant says what it is.
    const q = loadModel(join(onnx, 'model_quantized.onnx'));
    expect(iface(join(onnx, 'model_quantized.onnx'))).toEqual(iface(join(onnx, 'model.onnx')));
    expect(iface(join(onnx, 'model.onnx'))).toContain(`past_key_values.0.key:${DataType.FLOAT}[batch_size,4,past_sequence_length,8]`);
    const floatMatMuls = [...q.graph].filter((n) => n.opType === 'MatMul' && !n.input(1)?.producer()?.opType.startsWith('Dequantize'));
    expect(floatMatMuls.length).toBeGreaterThanOrEqual(10);
    // int8 storage, and values beyond int4's [-8, 7] in every layer (int4 widened to int8 keeps its range).
    const weights = quantizedWeights(q);
    expect(weights.length).toBe(36 + Number(/(\d+) dual-scale/.exec(r.err)![1]));
    expect(new Set(weights.map((t) => t.dataType))).toEqual(new Set([DataType.INT8]));
    for (const t of weights) expect(Math.max(...t.toNumbers().map(Math.abs)), t.name).toBeGreaterThan(8);
    expect(q.metadata.get('qarvd.variant')).toBe('q8');

    const fp32 = await greedy(model, { dtype: 'fp32' });
    const q8 = await greedy(model, { dtype: 'q8' });
    const agree = agreement(q8.tokens, fp32.tokens);
    console.log(`fp32: ${JSON.stringify(fp32.tokens)} "${fp32.text}"\nq8:   ${JSON.stringify(q8.tokens)} "${q8.text}"\nq8 agreement ${agree}/10 (loaded ${q8.file})`);
    expect(q8.file).toBe(join(onnx, 'model_quantized.onnx'));
    expect(agree).toBeGreaterThanOrEqual(9);
  });

  it('weight-only W4 as --variant q4 → onnx/model_q4.onnx, loaded with dtype q4', async () => {
    const r = await cli(model, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none');
    expect(r.code, r.err).toBe(0);
    const q4 = await greedy(model, { dtype: 'q4' });
    const agree = agreement(q4.tokens, FP32_TOKENS);
    const ratio = statSync(join(onnx, 'model_q4.onnx')).size / statSync(join(onnx, 'model.onnx')).size;
    console.log(`q4:   ${JSON.stringify(q4.tokens)} "${q4.text}"\nq4 agreement ${agree}/10, size ${ratio.toFixed(3)}× fp32 (loaded ${q4.file})`);
    expect(q4.file).toBe(join(onnx, 'model_q4.onnx'));
    expect([...modelTensors(loadModel(join(onnx, 'model_q4.onnx')))].some((t) => t.dataType === DataType.INT4 || t.dataType === DataType.UINT4)).toBe(true);
    expect(agree).toBeGreaterThanOrEqual(8);
    expect(ratio).toBeLessThan(0.45);
  });

  it('a name of its own → onnx/model_<name>.onnx, loaded with model_file_name; later runs do not take it for a base graph', async () => {
    const r = await cli(model, '--pass', 'q-arvd', '--variant', 'qarvd-w8', '--q-arvd.a-bits', 'none');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`'qarvd-w8' is not a transformers.js dtype: load with pipeline(task, '${model}', { model_file_name: 'model_qarvd-w8', dtype: 'fp32' })`);
    const w8 = await greedy(model, { model_file_name: 'model_qarvd-w8', dtype: 'fp32' });
    expect(w8.file).toBe(join(onnx, 'model_qarvd-w8.onnx'));
    expect(agreement(w8.tokens, FP32_TOKENS)).toBeGreaterThanOrEqual(9);
    // The hint's dtype 'fp32' is needed (found by review): transformers.js appends the dtype's
    // suffix to model_file_name, and a config.json dtype (or the browser's default, q8) would
    // otherwise load model_qarvd-w8_q4.onnx, which does not exist.
    const config = join(model, 'config.json');
    const original = readFileSync(config, 'utf8');
    try {
      writeFileSync(config, JSON.stringify({ ...JSON.parse(original), 'transformers.js_config': { dtype: 'q4' } }));
      await expect(greedy(model, { model_file_name: 'model_qarvd-w8' })).rejects.toThrow(/model_qarvd-w8_q4\.onnx/);
      const hinted = await greedy(model, { model_file_name: 'model_qarvd-w8', dtype: 'fp32' });
      expect(hinted.file).toBe(join(onnx, 'model_qarvd-w8.onnx'));
      expect(hinted.tokens).toEqual(w8.tokens);
    } finally {
      writeFileSync(config, original);
    }
    // Replacing q4 with --force processes model.onnx only (model_qarvd-w8.onnx carries qarvd.variant).
    const again = await cli(model, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--force');
    expect(again.code, again.err).toBe(0);
    expect(again.err.match(/^convert: wrote /gm)).toHaveLength(1);
    expect(existsSync(join(onnx, 'model_qarvd-w8_q4.onnx'))).toBe(false);
  });

  it('convert diff onnx/model.onnx onnx/model_quantized.onnx summarises the change', async () => {
    const r = await cli('diff', join(onnx, 'model.onnx'), join(onnx, 'model_quantized.onnx'));
    expect(r.code, r.err).toBe(0);
    // The head keeps float inputs (8-bit weight-only): outer-activations float, q-arvd's default.
    expect(r.out).toMatch(/36 linear layers rewritten \(\d+ dual-scale, \d+ single-scale; q-arvd W8A8 qdq ×35, q-arvd W8 qdq ×1\)/);
    expect(r.out).toMatch(/graph inputs: 0 added, 0 removed, 0 changed, 13 unchanged/);
    expect(r.out).toMatch(/graph outputs: 0 added, 0 removed, 0 changed, 11 unchanged/);
  });

  it('never modified the fp32 files', () => {
    const after = hashTree(model);
    for (const [f, h] of Object.entries(fp32Hashes)) expect(after[f], f).toBe(h);
  });
});

describe('transformers.js folder: a variant with external data', () => {
  const { root: root2, model: model2 } = copyFixture('hf-ext');
  const onnx2 = join(model2, 'onnx');
  afterAll(() => rmSync(root2, { recursive: true, force: true }));

  it('writes <variant file>_data beside the fp32 data file; both load through the pipeline, fp32 unchanged', async () => {
    // An fp32 graph with its weights in model.onnx_data, as optimum writes large models.
    saveModel(loadModel(join(onnx2, 'model.onnx')), join(onnx2, 'model.onnx'), { externalData: true, dataFileName: 'model.onnx_data' });
    const before = hashTree(model2);
    expect(Object.keys(before)).toContain('onnx/model.onnx_data');
    const fp32Before = await greedy(model2, { dtype: 'fp32' });
    expect(fp32Before.tokens).toEqual(FP32_TOKENS);

    const r = await cli(model2, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.a-bits', 'none', '--external-data');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`weights written to ${join(onnx2, 'model_quantized.onnx_data')}`);
    expect(r.err).toContain('use_external_data_format');
    const locations = new Set([...modelTensors(loadModel(join(onnx2, 'model_quantized.onnx')))].map((t) => t.external?.location).filter(Boolean));
    expect([...locations]).toEqual(['model_quantized.onnx_data']);

    const q8 = await greedy(model2, { dtype: 'q8' });
    console.log(`external data: q8 ${JSON.stringify(q8.tokens)} agreement ${agreement(q8.tokens, FP32_TOKENS)}/10 (loaded ${q8.file})`);
    expect(q8.file).toBe(join(onnx2, 'model_quantized.onnx'));
    expect(agreement(q8.tokens, FP32_TOKENS)).toBeGreaterThanOrEqual(9);

    const fp32After = await greedy(model2, { dtype: 'fp32' });
    expect(fp32After.tokens).toEqual(fp32Before.tokens);
    const after = hashTree(model2);
    for (const [f, h] of Object.entries(before)) expect(after[f], f).toBe(h);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), 'onnx/model_quantized.onnx', 'onnx/model_quantized.onnx_data'].sort());
  });
});
