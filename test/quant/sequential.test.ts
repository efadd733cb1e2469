// Sequential calibration: the stages cut from node names, and on tiny-arvd (real model, real
// rollouts) that the first stage's statistics are the plain calibration's while a later
// stage's are collected on the partly quantized model (they differ), read back from the
// .recon side files of the two calibration tables.
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
import { blockOf, sequentialStages } from '../../src/passes/quant/sequential.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('sequential');
afterAll(() => removeDir(dir));

describe('sequential stages', () => {
  it('finds the repeated block in PyTorch, Hugging Face and GPT-2 style node names, not sub-module indices', () => {
    expect(blockOf('/blocks.3/ffn/ffn.2/MatMul')).toBe('blocks.3');
    expect(blockOf('/model/layers.12/self_attn/q_proj/MatMul')).toBe('layers.12');
    expect(blockOf('/transformer/h.0/attn/c_attn/MatMul')).toBe('h.0');
    expect(blockOf('/time_embedding/time_embedding.0/MatMul')).toBeUndefined();
    expect(blockOf('/head/MatMul')).toBeUndefined();
  });

  it('cuts layers in graph order where the block changes; layers outside blocks form their own stages', () => {
    const names = ['/patch/MatMul', '/text/text.0/MatMul', '/blocks.0/q/MatMul', '/blocks.0/ffn/ffn.2/MatMul', '/blocks.1/q/MatMul', '/head/MatMul'];
    const stages = sequentialStages(names.map((name) => ({ name }) as LinearLayer));
    expect(stages.map((s) => s.map((l) => l.name))).toEqual([[names[0], names[1]], [names[2], names[3]], [names[4]], [names[5]]]);
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
  }, 600_000);
});
