// Twins of a model (examples/quality/twins.ts) on the bundled tiny-arvd: fp32, and its minmax W4
// weight-only conversion. A twin moves each float initializer but the quantization scales by
// exactly one ulp, keeps everything else byte for byte, and computes the model's function to
// float rounding in onnxruntime (its one-step error against the model is tiny but not zero).
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PATH } from '../../examples/tiny-arvd/prompt.ts';
import { evaluateModels } from '../../examples/tiny-arvd/evaluate.ts';
import { keptByTwin, writeTwin } from '../../examples/quality/twins.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { createLogger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('twins');
afterAll(() => removeDir(dir));

/**
 * Every initializer of `twin` against `model`'s: moved by one ulp where a twin moves it, else the
 * same bytes; and, checked apart from the twin's own rule, every initializer the quantizers of
 * this project name as a scale or zero point, and every non-float one, the same bytes.
 */
function compareInitializers(modelPath: string, twinPath: string): { moved: number; kept: number } {
  const source = loadModel(modelPath);
  const model = source.graph.initializers;
  const twin = loadModel(twinPath).graph.initializers;
  const keep = keptByTwin(source);
  expect([...twin.keys()].sort()).toEqual([...model.keys()].sort());
  let moved = 0;
  let kept = 0;
  for (const [name, value] of model) {
    const a = value.initializer!;
    const b = twin.get(name)!.initializer!;
    const same = Buffer.from(b.bytes()).equals(Buffer.from(a.bytes()));
    if (a.dataType !== DataType.FLOAT || /_scale$|_zero_point$/.test(name)) expect(same, name).toBe(true);
    if (a.dataType === DataType.FLOAT && !keep.has(name)) {
      const x = new Int32Array(new Float32Array(a.toFloat32()).buffer);
      const y = new Int32Array(new Float32Array(b.toFloat32()).buffer);
      // ±0 (bits 0 and 0x80000000) stay as they are.
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!), `${name}[${i}]`).toBe((x[i]! & 0x7fffffff) === 0 ? 0 : 1);
      moved++;
    } else {
      expect(same, name).toBe(true);
      kept++;
    }
  }
  return { moved, kept };
}

describe('twins of a model', () => {
  it('move the float parameters by one ulp and keep the rest, for fp32 and a quantized model', async () => {
    const twin = join(dir, 'fp32-twin.onnx');
    const { moved } = writeTwin(MODEL_PATH, twin, 1);
    expect(compareInitializers(MODEL_PATH, twin).moved).toBe(moved);
    expect(moved).toBeGreaterThan(10);

    const quantized = loadModel(MODEL_PATH);
    const log = createLogger({ write: () => {}, verbose: false });
    await runQuantPass(quantized, { log, verbose: false, modelDir: undefined }, resolveOptions(minmax, { 'w-bits': '4', 'a-bits': 'none', 'integer-kernels': 'always' }) as unknown as SharedQuantValues, 'minmax');
    const qPath = join(dir, 'w4.onnx');
    saveModel(quantized, qPath);
    const qTwin = join(dir, 'w4-twin.onnx');
    writeTwin(qPath, qTwin, 2);
    const { kept } = compareInitializers(qPath, qTwin);
    // The packed 4-bit weights, their scales and zero points are among the initializers kept, found by the graph.
    const scales = [...loadModel(qPath).graph.initializers.keys()].filter((n) => /_scale$/.test(n));
    expect(scales.length).toBeGreaterThan(10);
    expect([...keptByTwin(loadModel(qPath))]).toEqual(expect.arrayContaining(scales));
    expect(kept).toBeGreaterThan(20);
    // Seeds differ: another twin of the same model.
    writeTwin(qPath, join(dir, 'w4-twin-3.onnx'), 3);
    expect(loadModel(join(dir, 'w4-twin-3.onnx')).graph.initializers.size).toBe(loadModel(qTwin).graph.initializers.size);
  }, 120_000);

  it('compute the same function to float rounding in onnxruntime', async () => {
    const twin = join(dir, 'fp32-twin-run.onnx');
    writeTwin(MODEL_PATH, twin, 5);
    const result = await evaluateModels({ fp32Path: MODEL_PATH, models: [{ name: 'twin', path: twin }], prompts: undefined, latencyRuns: 0, threads: 1 });
    const step = result.models[0]!.stepError;
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(1e-8);
  }, 120_000);
});
