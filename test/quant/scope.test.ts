// `scope blocks` (src/passes/quant/repeated-blocks.ts, linear-layers.ts): on the real models
// the repeated blocks are found from the node names and only their layers are quantized; the
// layers around them keep their float weights byte for byte and the model runs in
// onnxruntime-node. The detection rules are also checked on name lists (no model here is
// named without blocks, or with a numbered module that is not a block).
import { describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { repeatedStacks, stackOf } from '../../src/passes/quant/repeated-blocks.ts';
import { sequentialStages } from '../../src/passes/quant/sequential.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';
import { runModel } from '../helpers/ort.ts';
import { loadFixture, OUTER_ARVD, quantFixture, quantize } from './quant-fixtures.ts';
import { GraphBuilder } from './synthetic-graphs.ts';


describe('repeatedStacks', () => {
  it('finds the block stacks of the real models and leaves the layers around them outside', () => {
    for (const [path, outside] of [
      ['examples/tiny-arvd-l/model.onnx', OUTER_ARVD],
      ['examples/tiny-arvd/model.onnx', OUTER_ARVD],
      ['test/fixtures/stories260K/stories260K.onnx', ['/MatMul']],
    ] as const) {
      const names = findLinearLayers(loadModel(`${REPO_ROOT}/${path}`).graph, { minK: 0 }).layers.map((l) => l.name);
      const stacks = repeatedStacks(names);
      expect([...stacks], path).toEqual(['/blocks.']);
      expect(names.filter((n) => !stackOf(n, stacks)), path).toEqual([...outside]);
    }
  });

  it('reads optimum, llama2.c and underscore names; a numbered module of one layer per index is no block', () => {
    const optimum = [0, 1].flatMap((i) => ['q_proj', 'k_proj', 'o_proj'].map((p) => `/model/layers.${i}/self_attn/${p}/MatMul`));
    expect([...repeatedStacks([...optimum, '/lm_head/MatMul'])]).toEqual(['/model/layers.']);
    const llama = [0, 1, 2].flatMap((i) => [`layers.${i}.attention.wq`, `layers.${i}.feed_forward.w1`]);
    expect([...repeatedStacks(llama)]).toEqual(['layers.']);
    expect([...repeatedStacks(['h_0/attn/Gemm', 'h_0/mlp/Gemm', 'h_1/attn/Gemm', 'h_1/mlp/Gemm'])]).toEqual(['h_']);
    // time_embedding.0 and .2 hold one layer each: a Sequential's children, not blocks.
    expect(repeatedStacks(['/time_embedding/time_embedding.0/MatMul', '/time_embedding/time_embedding.2/MatMul']).size).toBe(0);
    // Two indices with different layers are not the same block repeated.
    expect(repeatedStacks(['/stage.0/a/MatMul', '/stage.0/b/MatMul', '/stage.1/c/MatMul', '/stage.1/d/MatMul']).size).toBe(0);
    expect(repeatedStacks(['MatMul_0', 'MatMul_1', 'Gemm_2']).size).toBe(0);
  });
});

describe('scope blocks', () => {
  const dir = scratchDir('scope');

  it('quantizes only tiny-arvd\'s block layers (q-arvd and minmax); the outer layers keep their weights and the model runs', async () => {
    try {
      const f = quantFixture('tiny-arvd');
      const original = await loadFixture(f);
      const weights = (m: Model) => new Map(findLinearLayers(m.graph, { minK: 0 }).layers.filter((l) => OUTER_ARVD.includes(l.name)).map((l) => [l.name, Buffer.from(l.weightValue.initializer!.bytes()).toString('base64')]));
      const before = weights(original);
      expect(before.size).toBe(OUTER_ARVD.length);
      for (const method of ['q-arvd', 'minmax'] as const) {
        const model = await loadFixture(f);
        const report = await quantize(model, { 'w-bits': '4', 'a-bits': 'none', scope: 'blocks' }, undefined, method);
        const outside = report.layers.filter((l) => l.reason === 'outside the repeated blocks (scope blocks)').map((l) => l.name);
        expect(outside.sort(), method).toEqual([...OUTER_ARVD].sort());
        expect(report.layers.filter((l) => l.mode !== 'skipped').every((l) => l.name.startsWith('/blocks.')), method).toBe(true);
        expect(report.totals.layers.single + report.totals.layers.dual, method).toBe(30);
        // The outer layers are still float MatMuls on the same bytes.
        expect(weights(model), method).toEqual(before);
        const path = `${dir}/${method}.onnx`;
        saveModel(model, path);
        const out = await runModel(path, f.feeds(seededRandom(7)));
        expect(Object.values(out).every((t) => (t.data as Float32Array).every(Number.isFinite)), method).toBe(true);
      }
      // The default considers every layer.
      const all = await quantize(await loadFixture(f), { 'w-bits': '4', 'a-bits': 'none' });
      expect(all.totals.layers.single + all.totals.layers.dual).toBe(37);
    } finally {
      removeDir(dir);
    }
  });
});

/** Synthetic: no bundled model has two stacks (encoder and decoder blocks, named like T5, and an lm_head). */
function twoStacks(): GraphBuilder {
  const b = new GraphBuilder('two-stacks');
  let x = b.input('x', [8, 32]);
  let seed = 1;
  const w = (n: string) => b.init(n, [32, 32], seededRandom(seed++).normalArray(32 * 32));
  for (const stack of ['encoder', 'decoder']) for (const i of [0, 1]) for (const l of ['q', 'o']) x = b.node('MatMul', `/${stack}/block.${i}/${l}/MatMul`, [x, w(`${stack}${i}${l}.w`)]);
  x = b.node('MatMul', '/lm_head/MatMul', [x, w('lm_head.w')]);
  b.output(x, [8, 32]);
  return b;
}

describe('torch.onnx dynamo exports (nodes named linear_N, module paths in metadata)', () => {
  // Synthetic: no bundled model comes from the dynamo exporter. Its nodes carry the module
  // scopes as `pkg.torch.onnx.name_scopes` metadata (the repr of a Python list, the node's
  // own name last), which the block rule reads in place of the node name.
  function dynamoStyle(): GraphBuilder {
    const b = new GraphBuilder('dynamo');
    let x = b.input('x', [8, 32]);
    let n = 0;
    const linear = (scope: string[]) => {
      const name = `linear_${n}`;
      x = b.node('MatMul', name, [x, b.init(`w${n}`, [32, 32], seededRandom(++n).normalArray(32 * 32))]);
      x.producer()!.metadata.set('pkg.torch.onnx.name_scopes', `[${['', ...scope, name].map((s) => `'${s}'`).join(', ')}]`);
    };
    linear(['patch_embedding']);
    for (const i of [0, 1]) for (const l of ['attn.q', 'ffn.fc1']) linear([`blocks.${i}`, ...l.split('.').map((_, k, a) => `blocks.${i}.${a.slice(0, k + 1).join('.')}`)]);
    linear(['head']);
    b.output(x, [8, 32]);
    return b;
  }

  it('finds the blocks from the metadata: scope blocks keeps the embedding and head float, outer-w8 gives them 8 bits, sequential cuts a stage per block', async () => {
    const found = findLinearLayers(dynamoStyle().model.graph, { scope: 'blocks' });
    expect(found.stacks).toEqual(['blocks.']);
    expect(found.skipped.map((s) => s.name)).toEqual(['linear_0', 'linear_5']);
    const outer = findLinearLayers(dynamoStyle().model.graph, { scope: 'outer-w8' }).layers.filter((l) => l.wBits).map((l) => l.name);
    expect(outer).toEqual(['linear_0', 'linear_5']);
    const stages = sequentialStages(findLinearLayers(dynamoStyle().model.graph).layers).map((st) => st.map((l) => l.name));
    expect(stages).toEqual([['linear_0'], ['linear_1', 'linear_2'], ['linear_3', 'linear_4'], ['linear_5']]);
    // The node names alone show no blocks.
    expect(repeatedStacks(['linear_0', 'linear_1', 'linear_2', 'linear_3', 'linear_4', 'linear_5']).size).toBe(0);
    // The metadata survives a save and load, and the pass reads it.
    const dir = scratchDir('dynamo-style');
    try {
      saveModel(dynamoStyle().model, `${dir}/model.onnx`);
      const report = await quantize(loadModel(`${dir}/model.onnx`), { 'w-bits': '4', 'a-bits': 'none' });
      expect(report.layers.filter((l) => l.wBits === 8).map((l) => l.name)).toEqual(['linear_0', 'linear_5']);
    } finally {
      removeDir(dir);
    }
  });
});

describe('scope blocks with sequential calibration', () => {
  it('keeps each stage\'s layers on a model with two stacks (encoder and decoder, named like T5)', async () => {
    // Synthetic: no bundled model has two stacks. Each stage finds its layers by name; the
    // blocks are not detected again on the partly rewritten model.
    const b = twoStacks();
    const report = await quantize(b.model, { 'w-bits': '4', 'a-bits': 'none', reconstruct: 'gptq', sequential: true, scope: 'blocks' }, b.calibration());
    expect(report.layers.filter((l) => l.mode !== 'skipped').map((l) => l.name)).toHaveLength(8);
    expect(report.layers.find((l) => l.name === '/lm_head/MatMul')?.reason).toBe('outside the repeated blocks (scope blocks)');
  });

  it('keeps the 8-bit layer outside the stacks under outer-w8: the stages calibrate it as 8-bit (W4A8, whose scale search reads the marks)', async () => {
    const run = async (sequential: boolean) => {
      const b = twoStacks();
      return quantize(b.model, { 'w-bits': '4', 'a-bits': '8', reconstruct: 'gptq', sequential, scope: 'outer-w8' }, b.calibration());
    };
    const [seq, plain] = [await run(true), await run(false)];
    const bits = Object.fromEntries(seq.layers.map((l) => [l.name, l.wBits]));
    expect(bits['/lm_head/MatMul']).toBe(8);
    expect(Object.entries(bits).filter(([n]) => n !== '/lm_head/MatMul').every(([, v]) => v === 4)).toBe(true);
    expect(seq.layers.filter((l) => l.mode !== 'skipped')).toHaveLength(9);
    // A stage that searched the head's scales as 4-bit would leave an error hundreds of times
    // the plain run's (measured 300× when the marks were not passed to the stages).
    const head = (r: QuantReport) => r.layers.find((l) => l.name === '/lm_head/MatMul')!.reconstruction!.error.rtn;
    expect(head(seq)).toBeLessThan(10 * head(plain));
  });
});
