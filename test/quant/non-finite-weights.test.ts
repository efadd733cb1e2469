// A weight holding NaN or ±Infinity is refused before anything is written, naming the layer,
// the weight tensor and the count (found by a user trial: Infinity became Infinity scales in
// the output, NaN was quantized to some code, exit 0). The real models are changed in memory:
// tiny-arvd for the weight-only paths (on this thread, and on worker threads), stories260K for
// a calibrated run, where the weight is checked before the module runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { findLinearLayers, type LinearLayer } from '../../src/passes/quant/linear-layers.ts';
import { planWeights } from '../../src/passes/quant/plan.ts';
import { toQuantConfig } from '../../src/passes/quant/quant-options.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';
import { expectRefused } from '../helpers/refusal.ts';

const dir = scratchDir('non-finite-weights');
const out = join(dir, 'out');
mkdirSync(out);
afterAll(() => removeDir(dir));

/** Saves `model` (a real fixture) with three of its `layer`-th layer's weight values non-finite: NaN, +Infinity, -Infinity. */
function poisoned(fixture: string, file: string, which: (layers: LinearLayer[]) => LinearLayer): { path: string; layer: LinearLayer } {
  const model = loadModel(join(REPO_ROOT, fixture));
  const layer = which(findLinearLayers(model.graph).layers);
  const w = layer.weight.toFloat32().slice();
  w[5] = NaN;
  w[w.length - 1] = Infinity;
  w[w.length - 2] = -Infinity;
  layer.weight.setBytes(new Uint8Array(w.buffer));
  const path = join(dir, file);
  saveModel(model, path);
  return { path, layer };
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const says = (layer: LinearLayer) => new RegExp(`pass q-arvd \\(plugin q-arvd\\): layer ${escaped(layer.name)}: weight ${escaped(layer.weight.name)} holds 3 non-finite values \\(1 NaN, 2 ±Infinity\\) of its ${layer.K * layer.N}, the first at input channel 0, output channel 5; a weight to quantize must be finite`);

describe('non-finite weights', () => {
  let arvd: { path: string; layer: LinearLayer };
  beforeAll(() => {
    // The last layer: fold-split reads no weight of it first, so the plan's own check is what refuses it.
    arvd = poisoned('examples/tiny-arvd/model.onnx', 'tiny-arvd-nan.onnx', (l) => l.at(-1)!);
  });

  it.each([['1'], ['2']])('weight-only with --q-arvd.threads %s (this thread; worker threads) is refused naming the layer, the weight and the count', async (threads) => {
    await expectRefused([arvd.path, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.w-bits', '4', '--q-arvd.threads', threads, '--quiet'], says(arvd.layer), { input: dir, output: out });
  });

  it('a calibrated run (W8A8, GPTQ) is refused before the calibration module runs, not blamed on its feeds', async () => {
    const { path, layer } = poisoned('test/fixtures/stories260K/stories260K.onnx', 'stories-nan.onnx', (l) => l[0]!);
    const calib = join(dir, 'calib.mjs');
    // A module that would fail loudly if it ran: the weight must be refused first.
    writeFileSync(calib, "export async function* feeds() { throw new Error('the module ran'); }\n");
    await expectRefused([path, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', calib, '--quiet'], says(layer), { input: dir, output: out });
  });

  it('planWeights names the weight it is given (workers word the message themselves)', () => {
    const w = new Float32Array(32 * 4).fill(0.5);
    w[9] = NaN;
    const config = toQuantConfig({} as never);
    expect(() => planWeights(w, 32, 4, config, 'layer L: weight W')).toThrow(/^layer L: weight W holds 1 non-finite value \(1 NaN, 0 ±Infinity\) of its 128, the first at input channel 2, output channel 1/);
    w[9] = 0.25;
    expect(() => planWeights(w, 32, 4, config, 'layer L: weight W')).not.toThrow();
  });
});
