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
    // run at other bits (weight-only included, which reads no scales) is refused, naming them.
    const seqTable = join(dir, 'seq.json');
    expect(JSON.parse(readFileSync(seqTable, 'utf8')).config.sequential).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'plain.json'), 'utf8')).config.sequential).toBeUndefined();
    const load = (raw: Record<string, unknown>) =>
      runQuantPass(loadModel(MODEL_PATH), { log: createLogger({ write: () => {} }), verbose: false, modelDir: undefined }, resolveOptions(qArvd, raw) as unknown as SharedQuantValues, 'q-arvd');
    await expect(load({ 'w-bits': '4', 'a-bits': 'none', 'load-calibration': seqTable })).rejects.toThrow(/seq\.json: was calibrated sequentially at W4A8: .* do not fit W4; calibrate again at W4/);
    await expect(load({ 'w-bits': '4', 'a-bits': '6', 'load-calibration': seqTable })).rejects.toThrow(/calibrated sequentially at W4A8/);
    // The same bits read it, sequential or not (nothing is collected on load).
    await load({ 'w-bits': '4', 'a-bits': '8', 'load-calibration': seqTable });
    // The float model's statistics fit any bits: a weight-only run reads the plain table.
    await load({ 'w-bits': '4', 'a-bits': 'none', 'load-calibration': join(dir, 'plain.json') });
  }, 600_000);
});
