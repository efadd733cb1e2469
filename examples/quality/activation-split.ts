/**
 * Diagnostic (issue 14, W8A8): how much of each layer's activation-quantization error a
 * dual-scale split removes when the outlier channels are chosen by weight norms (S2, the
 * paper's rule) or by activation range (the same number of channels with the largest
 * calibration |x|, as LLM.int8()'s decomposition chooses them).
 *
 *   node --import tsx examples/quality/activation-split.ts [--bits 8] [--samples 4] [--every 7]
 *
 * Rolls out tiny-arvd-l's first calibration prompts in fp32 (every layer input made a graph
 * output), keeps every `every`-th row of each input, and prints per layer the relative output
 * error `‖(Q(X) − X)·W‖² / ‖X·W‖²` of per-tensor asymmetric min/max activation quantizers:
 * one for the whole input, one per branch of S2's split, one per branch of the activation split;
 * then the medians. Weights stay float: only the activation quantizers are compared.
 * docs/error-propagation.md ("W8A8 on tiny-arvd-l") has a run.
 */
import * as ort from 'onnxruntime-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadModel } from '../../src/graph/serde/io.ts';
import { detectOutliers } from '../../src/kernels/outliers.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { augmentModel } from '../../src/passes/calibration/augment.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { tinyArvdL } from '../tiny-arvd-l/rollout.ts';

const args = await yargs(hideBin(process.argv))
  .option('bits', { type: 'number', default: 8, describe: 'activation bits' })
  .option('samples', { type: 'number', default: 4, describe: 'calibration rollouts' })
  .option('every', { type: 'number', default: 7, describe: 'keep every n-th row of each layer input' })
  .strict()
  .parseAsync();

const model = loadModel(tinyArvdL.modelPath);
const { layers } = findLinearLayers(model.graph);
const inputs = [...new Set(layers.map((l) => l.input))];
const augmented = augmentModel(model, inputs);
const session = await ort.InferenceSession.create(augmented.path, { intraOpNumThreads: 1 });
const rows = new Map<string, Float32Array[]>();
let call = 0;
for (let s = 0; s < args.samples; s++) {
  await tinyArvdL.rollout(
    async (feeds) => {
      const out = await session.run(feeds);
      for (const v of inputs) {
        const data = out[v.name]!.data as Float32Array;
        const K = out[v.name]!.dims.at(-1)!;
        const kept = rows.get(v.name) ?? [];
        rows.set(v.name, kept);
        for (let m = call % args.every; m < data.length / K; m += args.every) kept.push(data.slice(m * K, (m + 1) * K));
      }
      call++;
      return out as Record<string, ort.Tensor>;
    },
    { sample: s, prompt: tinyArvdL.prompts[s], random: seededRandom(1000 + s) },
  );
}
session.release();
augmented.dispose();

/** Relative output error with one per-tensor min/max quantizer per group of channels. */
function activationError(X: Float32Array[], W: Float32Array, K: number, N: number, groups: number[][]): number {
  const qmax = 2 ** args.bits - 1;
  const grids = groups.map((g) => {
    let [lo, hi] = [0, 0];
    for (const r of X) for (const k of g) [lo, hi] = [Math.min(lo, r[k]!), Math.max(hi, r[k]!)];
    const scale = (hi - lo) / qmax || 1;
    return { scale, zero: Math.round(-lo / scale) };
  });
  let [num, den] = [0, 0];
  const e = new Float64Array(K);
  for (const r of X) {
    groups.forEach((g, i) => {
      const { scale, zero } = grids[i]!;
      for (const k of g) e[k] = scale * (Math.min(qmax, Math.max(0, Math.round(r[k]! / scale) + zero)) - zero) - r[k]!;
    });
    for (let n = 0; n < N; n++) {
      let [a, b] = [0, 0];
      for (let k = 0; k < K; k++) [a, b] = [a + e[k]! * W[k * N + n]!, b + r[k]! * W[k * N + n]!];
      [num, den] = [num + a * a, den + b * b];
    }
  }
  return num / den;
}

const ratios = { weight: [] as number[], activation: [] as number[] };
console.log('layer  K×N  S2 outliers | single  S2 split  activation split (channels, shared with S2)');
for (const l of layers) {
  if (l.transposed) throw new Error(`${l.name}: a transposed weight; this diagnostic reads [K, N] weights`);
  const X = rows.get(l.input.name)!;
  const W = l.weight.toFloat32();
  const { K, N } = l;
  const norms = Array.from({ length: K }, (_, k) => Math.hypot(...W.subarray(k * N, (k + 1) * N)));
  const bySplit = [...detectOutliers(norms).indices];
  const absMax = new Float64Array(K);
  for (const r of X) for (let k = 0; k < K; k++) absMax[k] = Math.max(absMax[k]!, Math.abs(r[k]!));
  const all = [...Array(K).keys()];
  const rest = (o: number[]) => all.filter((k) => !o.includes(k));
  const byRange = all.sort((a, b) => absMax[b]! - absMax[a]!).slice(0, bySplit.length || 32);
  const single = activationError(X, W, K, N, [[...Array(K).keys()]]);
  const weightSplit = bySplit.length ? activationError(X, W, K, N, [bySplit, rest(bySplit)]) : NaN;
  const rangeSplit = activationError(X, W, K, N, [byRange, rest(byRange)]);
  if (bySplit.length) ratios.weight.push(weightSplit / single);
  ratios.activation.push(rangeSplit / single);
  const shared = bySplit.filter((k) => byRange.includes(k)).length;
  console.log(`${l.name}  ${K}×${N}  ${bySplit.length} | ${single.toExponential(2)}  ${bySplit.length ? weightSplit.toExponential(2) : '-'}  ${rangeSplit.toExponential(2)} (${byRange.length}, ${shared})`);
}
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
console.log(`median ÷ single: S2 split ${median(ratios.weight).toFixed(2)} (${ratios.weight.length} layers with outliers), activation split ${median(ratios.activation).toFixed(2)} (${ratios.activation.length} layers)`);
