// Sequential calibration: the stages cut from node names, and on tiny-arvd (real model, real
// rollouts) that the first stage's statistics are the plain calibration's while a later
// stage's are collected on the partly quantized model (they differ), read back from the
// .recon side files of the two calibration tables.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import * as tinyArvd from '../../examples/tiny-arvd/rollout.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { readReconFile, reconFileOf } from '../../src/passes/calibration/recon-file.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { LinearLayer } from '../../src/passes/quant/linear-layers.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { sequentialStages } from '../../src/passes/quant/sequential.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import * as ort from 'onnxruntime-node';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph, Model, Node, Value } from '../../src/graph/ir/index.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { quantize as quantizeFixture } from './quant-fixtures.ts';

const dir = scratchDir('sequential');
afterAll(() => removeDir(dir));

describe('sequential stages', () => {
  it('cuts layers in graph order where the repeated block changes (the rule of scope blocks); layers outside blocks form their own stages', () => {
    const stages = (names: string[]) => sequentialStages(names.map((name) => ({ name }) as LinearLayer)).map((s) => s.map((l) => l.name));
    const arvd = ['/patch/MatMul', '/text/text.0/MatMul', '/text/text.2/MatMul', '/blocks.0/q/MatMul', '/blocks.0/ffn/ffn.2/MatMul', '/blocks.1/q/MatMul', '/blocks.1/ffn/ffn.2/MatMul', '/head/MatMul'];
    expect(stages(arvd)).toEqual([arvd.slice(0, 3), arvd.slice(3, 5), arvd.slice(5, 7), arvd.slice(7)]);
    // llama2.c's names (one path segment): the old word-list rule found no block in them.
    const llama = [0, 1].flatMap((i) => [`layers.${i}.attention.wq`, `layers.${i}.feed_forward.w1`]);
    expect(stages([...llama, 'output'])).toEqual([llama.slice(0, 2), llama.slice(2), ['output']]);
    // CLIP's resblocks and Flux's single_transformer_blocks, which the word list did not know.
    const clip = [0, 1].flatMap((i) => [`/text_model/resblocks.${i}/attn/MatMul`, `/text_model/resblocks.${i}/mlp/MatMul`]);
    expect(stages(clip)).toHaveLength(2);
    expect(stages([0, 1, 2].flatMap((i) => [`/single_transformer_blocks.${i}/proj_mlp/MatMul`, `/single_transformer_blocks.${i}/proj_out/MatMul`]))).toHaveLength(3);
    // A selection of one layer per block (include ffn.2 only) is cut by the blocks of every layer.
    const all = arvd.map((name) => ({ name }) as LinearLayer);
    const ffn2 = all.filter((l) => l.name.includes('ffn.2'));
    expect(sequentialStages(ffn2, all).map((s) => s.map((l) => l.name))).toEqual([[arvd[4]], [arvd[6]]]);
    expect(sequentialStages(ffn2)).toHaveLength(1);
    // A Sequential's children (one layer per index) are not blocks: one stage.
    expect(stages(['/time_embedding/time_embedding.0/MatMul', '/time_embedding/time_embedding.2/MatMul'])).toHaveLength(1);
    expect(sequentialStages([{ name: 'a' }, { name: 'b' }] as LinearLayer[])).toHaveLength(1);
  });
});

describe('tiny-arvd: sequential true', () => {
  const calibration: CalibrationModule = { rollout: tinyArvd.rollout, prompts: tinyArvd.prompts.slice(0, 1) };
  async function calibrateTo(table: string, sequential: boolean) {
    const lines: string[] = [];
    const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': '8', 'calib-threads': 1, sequential, 'save-calibration': table, 'sensitivity-samples': 1 }) as unknown as SharedQuantValues;
    const result = await runQuantPass(loadModel(MODEL_PATH), { log: createLogger({ write: (l) => lines.push(l), verbose: true }), verbose: true, modelDir: undefined }, options, 'q-arvd', calibration);
    const layers = (result.report as QuantReport).layers.filter((l) => l.mode !== 'skipped').map((l) => ({ name: l.name }) as LinearLayer);
    return { stats: readReconFile(reconFileOf(table)).stats, lines, layers };
  }

  it('collects stage 0 on the float model and each later stage on the partly quantized model', async () => {
    const plain = await calibrateTo(join(dir, 'plain.json'), false);
    const seq = await calibrateTo(join(dir, 'seq.json'), true);
    // The report lists the quantized layers in graph order.
    const stages = sequentialStages(plain.layers);
    expect(stages.length).toBeGreaterThan(2);
    expect(seq.lines.filter((l) => /^sequential: stage \d+ of \d+/.test(l))).toHaveLength(stages.length - 1);
    const differs = (name: string) => {
      const a = plain.stats.get(name)!.h;
      const b = seq.stats.get(name)!.h;
      return a.some((v, i) => v !== b[i]);
    };
    for (const l of stages[0]!) expect(differs(l.name), l.name).toBe(false);
    for (const stage of stages.slice(1)) expect(stage.some((l) => differs(l.name)), stage[0]!.name).toBe(true);

    // The table says how its statistics were collected; they hold W4A8's upstream error, so a
    // run at other bits or with another reconstruction (weight-only included, which reads no
    // scales) is refused, naming why.
    const seqTable = join(dir, 'seq.json');
        expect(JSON.parse(readFileSync(join(dir, 'plain.json'), 'utf8')).config.sequential).toBeUndefined();
    const load = (raw: Record<string, unknown>) =>
      runQuantPass(loadModel(MODEL_PATH), { log: createLogger({ write: () => {} }), verbose: false, modelDir: undefined }, resolveOptions(qArvd, raw) as unknown as SharedQuantValues, 'q-arvd');
    expect(JSON.parse(readFileSync(seqTable, 'utf8')).config.sequential).toEqual({ reconstruct: 'gptq', biasCorrection: true });
    await expect(load({ 'w-bits': '4', 'a-bits': 'none', 'load-calibration': seqTable })).rejects.toThrow(
      /seq\.json: was calibrated sequentially at W4A8: .* quantized activations, which this weight-only run \(W4\) does not have; give this run its calibration data/,
    );
    await expect(load({ 'w-bits': '4', 'a-bits': '6', 'load-calibration': seqTable })).rejects.toThrow(/calibrated sequentially at W4A8: its reconstruction statistics were collected on the model quantized at those bits and do not fit W4A6; calibrate again at W4A6/);
    // The upstream layers were reconstructed with GPTQ while the statistics were collected.
    await expect(load({ 'w-bits': '4', 'a-bits': '8', reconstruct: 'none', 'load-calibration': seqTable })).rejects.toThrow(/sequentially with reconstruct gptq and bias-correction true: .* this run has reconstruct none and bias-correction true/);
    // The same bits read it, sequential or not (nothing is collected on load).
    await load({ 'w-bits': '4', 'a-bits': '8', 'load-calibration': seqTable });
    // The float model's statistics fit any bits: a weight-only run reads the plain table.
    await load({ 'w-bits': '4', 'a-bits': 'none', 'load-calibration': join(dir, 'plain.json') });
  }, 600_000);
});

describe('sequential true with a weight tied across blocks (synthetic graph: no real model ties block weights)', () => {
  it('quantizes every stage; the shared weight is not a foreign use of a later stage', async () => {
    const D = 32;
    const rng = seededRandom(1);
    const g = new Graph({ name: 'tied' });
    const x = new Value('x', { type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 8 }, { dim_value: D }] } } } });
    g.addInput(x);
    const weight = (n: string) => g.createInitializer(n, (name) => Tensor.fromFloat32(name, [D, D], rng.normalArray(D * D)));
    const shared = weight('shared_a');
    let cur = x;
    for (let i = 0; i < 3; i++) {
      for (const part of ['a', 'b']) {
        const mm = new Node({ opType: 'MatMul', name: `/blocks.${i}/${part}/MatMul`, inputs: [cur, part === 'a' ? shared : weight(`w${i}${part}`)], outputs: [`/blocks.${i}/${part}/out`] });
        const act = new Node({ opType: 'Tanh', name: `/blocks.${i}/${part}/Tanh`, inputs: [mm.output()], outputs: [`/blocks.${i}/${part}/t`] });
        g.append(mm, act);
        cur = act.output();
      }
    }
    const head = new Node({ opType: 'MatMul', name: '/head/MatMul', inputs: [cur, weight('head')], outputs: ['y'] });
    g.append(head);
    g.addOutput(head.output());
    const calib: CalibrationModule = {
      samples: 2,
      async *feeds(ctx) {
        yield { feeds: { x: new ort.Tensor('float32', ctx.random.normalArray(8 * D), [8, D]) } };
      },
    };
    const report = await quantizeFixture(new Model(g, { opset: 17 }), { 'w-bits': '4', 'a-bits': 'none', sequential: true }, calib);
    expect(report.layers.filter((l) => l.mode !== 'skipped').map((l) => l.name)).toHaveLength(7);
  }, 120_000);
});
