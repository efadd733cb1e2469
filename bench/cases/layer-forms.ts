// Which emitted form of a linear layer is slower than fp32 at a given shape: the measurements
// behind the small-layer rule (src/passes/quant/small-layers.ts, docs/speed.md "Small layers").
// For each weight shape K×N — those of the tiny ARVDs (examples/tiny-arvd, tiny-arvd-l) and
// larger ones up to Wan2.1's 1536×1536 — a model of L identical-shape layers (each MatMul + bias
// Add on the same [rows, K] input, seeded weights with every 50th input row × 12, so q-arvd
// splits them) is quantized in code by every form, and each form is timed against the fp32
// model in the same process, interleaved (one call of each per round), at the row counts the
// tiny ARVDs run (4: text tokens; 192: video tokens) and a few more. A cell is the median over
// rounds of (form ÷ fp32 in that round), with the interquartile range of the rounds' ratios.
// L layers per model so that one call is long against session.run's own overhead, which is the
// same for every form and would pull every ratio towards 1.
//
// The forms are the emission under test, not the method's accuracy: activation ranges fixed at
// [-3, 4], round to nearest.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { type BenchCase, type BenchRow, median, ratioStats, round, timeInterleaved } from '../lib.ts';

/** Weight shapes [K, N]: the tiny ARVDs' (64, 192, 256, 768 channels) and larger square ones. */
const SHAPES: [number, number][] = [
  [64, 64],
  [64, 256],
  [256, 64],
  [192, 192],
  [192, 768],
  [768, 192],
  [384, 384],
  [768, 768],
  [1536, 1536],
];
const ROWS = [4, 16, 192, 1024];
/** Multiply-adds per layer call the layer count aims at (more layers for small shapes), and its bounds. */
const TARGET_MACS = 2 ** 23;

const FORMS: { name: string; config?: Partial<QuantConfig> }[] = [
  { name: 'fp32' },
  { name: 'W8A8 single', config: { wBits: 8, aBits: 8, dualScale: false } },
  { name: 'W8A8 dual', config: { wBits: 8, aBits: 8, dualScale: true } },
  { name: 'W8 single', config: { wBits: 8, aBits: null, dualScale: false } },
  { name: 'W4 single', config: { wBits: 4, aBits: null, dualScale: false } },
  { name: 'W4 dual', config: { wBits: 4, aBits: null, dualScale: true } },
  // w8-kernel dynamic in its qoperator form: in qdq, onnxruntime merges the L layers' identical
  // DynamicQuantizeLinear (they read one input), which would time one quantizer for L layers.
  { name: 'W8 dynamic single', config: { wBits: 8, aBits: null, dualScale: false, w8Kernel: 'dynamic', format: 'qoperator' } },
  { name: 'W8 dynamic dual', config: { wBits: 8, aBits: null, dualScale: true, w8Kernel: 'dynamic', format: 'qoperator' } },
];

const rowsType = (n: number) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'rows' }, { dim_value: n }] } } });

/** `layers` K×N layers (MatMul + bias Add) reading one [rows, K] input, one output each. */
function layersModel(K: number, N: number, layers: number): Model {
  const g = new Graph({ name: `layers_${K}x${N}` });
  const model = new Model(g, { opset: 17 });
  const x = new Value('x', { type: rowsType(K) });
  g.addInput(x);
  const random = seededRandom(K * 7919 + N);
  for (let i = 0; i < layers; i++) {
    const w = random.normalArray(K * N).map((v) => v * 0.05);
    for (let k = 3; k < K; k += 50) for (let n = 0; n < N; n++) w[k * N + n]! *= 12;
    const wv = new Value(`l${i}.weight`, { initializer: Tensor.fromFloat32(`l${i}.weight`, [K, N], w) });
    const bv = new Value(`l${i}.bias`, { initializer: Tensor.fromFloat32(`l${i}.bias`, [N], random.normalArray(N).map((v) => v * 0.01)) });
    g.addInitializer(wv);
    g.addInitializer(bv);
    const mm = new Node({ opType: 'MatMul', name: `l${i}/MatMul`, inputs: [x, wv], outputs: [`l${i}/mm`] });
    const add = new Node({ opType: 'Add', name: `l${i}/Add`, inputs: [mm.output(0), bv], outputs: [`l${i}/y`] });
    g.append(mm, add);
    add.output(0).type = rowsType(N);
    g.addOutput(add.output(0));
  }
  return model;
}

/** The model of {@link layersModel} in `form`, saved under `dir`. */
function formModel(K: number, N: number, layers: number, form: (typeof FORMS)[number], dir: string): string {
  const model = layersModel(K, N, layers);
  if (form.config) {
    const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, ...form.config, integerKernels: 'always' };
    const ranges: ActivationRanges = new Map();
    for (const l of findLinearLayers(model.graph).layers) ranges.set(l.name, { min: new Float32Array(l.K).fill(-3), max: new Float32Array(l.K).fill(4) });
    quantizeLinearLayers(model, config, {}, config.aBits === null ? undefined : ranges, config.dualScale ? 'q-arvd' : 'minmax');
  }
  const path = join(dir, `${K}x${N}-${form.name.replace(/\W+/g, '-')}.onnx`);
  saveModel(model, path);
  return path;
}

const layerForms: BenchCase = {
  name: 'layer-forms',
  summary: 'per weight shape K×N and row count: each emitted form (W8A8, W8, W4; single and dual-scale) against fp32, 1 thread',
  legend:
    'layer-forms: one model of L same-shape layers per form; "ours ms" = median time of one call ÷ L (per layer); "baseline ms" = fp32 per layer in the same rounds; ratio = median over rounds of (form ÷ fp32 of that round); details.p25/p75 = interquartile range of the rounds\' ratios.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const [K, N] of SHAPES) {
      const layers = Math.max(1, Math.min(16, Math.round(TARGET_MACS / (K * N * 64))));
      const paths = FORMS.map((f) => formModel(K, N, layers, f, ctx.tmpDir));
      const sessions: ort.InferenceSession[] = [];
      for (const p of paths) sessions.push(await ort.InferenceSession.create(p, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 }));
      try {
        for (const M of ROWS) {
          const x = new ort.Tensor('float32', seededRandom(M).normalArray(M * K), [M, K]);
          for (const s of sessions) for (let w = 0; w < 2; w++) await s.run({ x });
          // Rounds: about a second of fp32 per cell, 15 to 61.
          const t0 = performance.now();
          await sessions[0]!.run({ x });
          const rounds = Math.max(15, Math.min(61, Math.round(1000 / Math.max(0.01, performance.now() - t0)))) | 1;
          const times = await timeInterleaved(sessions, { x }, rounds);
          const cells: string[] = [];
          FORMS.forEach((f, i) => {
            const st = ratioStats(times[i]!, times[0]!);
            rows.push({
              name: `${K}x${N} rows ${M} ${f.name}`,
              bytes: statSync(paths[i]!).size,
              ms: round(median(times[i]!) / layers, 4),
              copyMs: round(median(times[0]!) / layers, 4),
              ratio: round(st.ratio, 2),
              runs: rounds,
              details: { layers, p25: round(st.p25, 2), p75: round(st.p75, 2) },
            });
            if (i > 0) cells.push(`${f.name} ${st.ratio.toFixed(2)} [${st.p25.toFixed(2)}–${st.p75.toFixed(2)}]`);
          });
          ctx.log(`${K}x${N} rows ${M} (${layers} layers, ${rounds} rounds): fp32 ${(median(times[0]!) / layers).toFixed(3)} ms/layer; ${cells.join('; ')}`);
        }
      } finally {
        for (const s of sessions) await s.release();
      }
    }
    return rows;
  },
};

export default layerForms;
