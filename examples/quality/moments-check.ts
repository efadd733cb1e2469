/**
 * How close the reservoir's estimate of the activation error moments (what
 * `--q-arvd.activation-objective quantized|asymmetric` corrects H with, see
 * src/passes/calibration/activation-shift.ts) is to the exact sums over every calibration
 * row, on tiny-arvd (docs/activation-objective.md, "Is the reservoir estimate good enough").
 *
 * Calibrates once as q-arvd does (256 reservoir rows per input and chunk, frame weighting off
 * so α = 1), then collects a second time keeping every row (a reservoir larger than the rows
 * a chunk has: the weights become exactly 1, the sums exact), computes the moments of the
 * same activation quantizers from those rows, and per layer compares: the correction
 * `H̃ − H` estimated vs exact, and the exact asymmetric loss of GPTQ (damp 0.01) fitted
 * with the estimated moments, with the exact ones, and with the fp32 objective.
 *
 *   node --import tsx examples/quality/moments-check.ts [a-bits 8|6] [calibration samples]
 */
import { fileURLToPath } from 'node:url';
import { asymmetricError, asymmetricTarget, crossGram, quantizedGram } from '../../src/kernels/activation-objective.ts';
import { gptq } from '../../src/kernels/gptq.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { momentsOf } from '../../src/passes/calibration/activation-shift.ts';
import { calibrate } from '../../src/passes/calibration/calibrate.ts';
import { collectStatistics, openCalibrationSession } from '../../src/passes/calibration/collect.ts';
import { loadCalibrationModule } from '../../src/passes/calibration/module.ts';
import { rowSample } from '../../src/passes/calibration/search.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { weightMatrix } from '../../src/passes/quant/layer-weights.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { planLayer } from '../../src/passes/quant/plan.ts';
import { rowQuantizersOf } from '../../src/passes/quant/reconstruct.ts';

const aBits = Number(process.argv[2] ?? 8) as 8 | 6;
const samples = process.argv[3] ? Number(process.argv[3]) : undefined;
const modelPath = fileURLToPath(new URL('../tiny-arvd/model.onnx', import.meta.url));
const calib = await loadCalibrationModule(fileURLToPath(new URL('../tiny-arvd/rollout.ts', import.meta.url)));
if (samples) calib.samples = samples;
const model = loadModel(modelPath);
const { layers } = findLinearLayers(model.graph, {});
const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, wBits: 4, aBits };
const res = await calibrate(model, layers, calib, config, { reconstruct: true, activationMoments: true, frameWeighting: false, threads: 1 });
const session = await openCalibrationSession(model, layers, calib, 1);
const all = await collectStatistics(session, layers, { reservoirRows: 1 << 20 });
await session.dispose();

const fro = (a: Float64Array, b?: Float64Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - (b ? b[i]! : 0)) ** 2, 0));
const lines: string[] = [];
const ratios: number[] = [];
const fp32Ratios: number[] = [];
const corrections: number[] = [];
for (const layer of layers) {
  const stats = res.recon!.get(layer.name)!;
  const plan = planLayer(layer, config, res.ranges.get(layer.name), res.scales!.get(layer.name));
  const est = res.activation!.get(layer.name)!.moments![plan.mode]!;
  const t = all.tensors.get(layer.input)!;
  for (const c of res.chunks) if (t.chunk(c)!.reservoir.kept !== t.chunk(c)!.reservoir.seen) throw new Error(`${layer.name}: chunk ${c} not kept whole`);
  const exact = momentsOf(plan, rowSample(t, res.chunks, res.alpha));
  const { K, N } = layer;
  const h = stats.h;
  const n = stats.weight;
  const dEst = quantizedGram(h, n, est).map((v, i) => v - h[i]!);
  const dExact = quantizedGram(h, n, exact).map((v, i) => v - h[i]!);
  const w = weightMatrix(layer);
  const q = rowQuantizersOf(plan);
  const fit = (m: typeof est) => {
    const hq = quantizedGram(h, n, m);
    return gptq(asymmetricTarget(w, hq, crossGram(h, n, m), K, N, 0.01), hq, K, N, q, { damp: 0.01 }).deq;
  };
  const loss = (deq: Float32Array) => asymmetricError(deq, w, h, n, exact, K, N);
  const [lEst, lExact, lFp32] = [loss(fit(est)), loss(fit(exact)), loss(gptq(w, h, K, N, q, { damp: 0.01 }).deq)];
  ratios.push(lEst / lExact);
  fp32Ratios.push(lFp32 / lExact);
  corrections.push(fro(dExact) / fro(h));
  lines.push(`${layer.name} K=${K} ${plan.mode}: |H~-H|/|H| ${(fro(dExact) / fro(h)).toExponential(2)}, estimate off by ${(fro(dEst, dExact) / fro(dExact)).toFixed(3)} of it; exact asymmetric loss of GPTQ fitted with the estimate ${(lEst / lExact).toFixed(4)}x, with the fp32 objective ${(lFp32 / lExact).toFixed(4)}x the exact fit's`);
}
console.log(lines.join('\n'));
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`W4A${aBits}, ${calib.samples} samples, ${layers.length} layers: |H~-H|/|H| median ${med(corrections).toExponential(2)}; loss(estimate fit)/loss(exact fit) median ${med(ratios).toFixed(4)}, max ${Math.max(...ratios).toFixed(4)}; loss(fp32 fit)/loss(exact fit) median ${med(fp32Ratios).toFixed(4)}, min ${Math.min(...fp32Ratios).toFixed(4)}`);
