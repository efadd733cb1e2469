// Latency of one typical call of the tiny ARVDs (examples/tiny-arvd-l, the demo's, and
// examples/tiny-arvd) quantized by minmax and q-arvd at W8A8, W4A8 and weight-only W4, with
// `integer-kernels always` (every layer in its integer form) and `auto` (the small-layer rule,
// src/passes/quant/small-layers.ts), against fp32. Every model is timed in the same process,
// interleaved (one call of each per round), 1 thread, on the middle call of the fp32 rollout of
// the first evaluation prompt (the call the demo times); a cell is the median over rounds of
// (model ÷ fp32 of that round), with the interquartile range. `integer-kernels never` (every
// layer kept fp32: onnxruntime runs fp32's own graph) is the control: its spread is the noise.
//
// Quantization here is the emission under test: activation ranges fixed at [-3, 4], round to
// nearest, q-arvd splitting every layer with outlier channels (its rule without calibration
// data; with data, `dual-scale auto` keeps fewer splits).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { DEFAULT_QUANT_CONFIG, type IntegerKernels, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import { REPO_ROOT } from '../../test/helpers/files.ts';
import { type BenchCase, type BenchRow, median, ratioStats, round, timeInterleaved } from '../lib.ts';

const MODELS = ['tiny-arvd-l', 'tiny-arvd'] as const;
const ROUNDS: Record<(typeof MODELS)[number], number> = { 'tiny-arvd-l': 41, 'tiny-arvd': 101 };
const BITS = [
  { label: 'W8A8', wBits: 8, aBits: 8 },
  { label: 'W4A8', wBits: 4, aBits: 8 },
  { label: 'W4', wBits: 4, aBits: null },
] as const;

/** The middle call of the fp32 rollout of the module's first evaluation prompt. */
async function typicalFeeds(folder: string): Promise<Record<string, ort.Tensor>> {
  const mod = (await import(pathToFileURL(join(REPO_ROOT, 'examples', folder, 'rollout.ts')).href)) as typeof import('../../examples/tiny-arvd/rollout.ts');
  const session = await ort.InferenceSession.create(join(REPO_ROOT, 'examples', folder, 'model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const calls: Record<string, ort.Tensor>[] = [];
  const prompt = mod.evaluationPrompts[0]!;
  await mod.rollout(async (feeds) => {
    calls.push(feeds);
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  }, { sample: 0, prompt: prompt.prompt, random: seededRandom(prompt.seed) });
  await session.release();
  return calls[calls.length >> 1]!;
}

function quantized(folder: string, pass: 'minmax' | 'q-arvd', bits: (typeof BITS)[number], integerKernels: IntegerKernels, dir: string): { path: string; kept: number } {
  const model = loadModel(join(REPO_ROOT, 'examples', folder, 'model.onnx'));
  const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, wBits: bits.wBits, aBits: bits.aBits, dualScale: pass === 'q-arvd', integerKernels };
  const ranges: ActivationRanges = new Map();
  for (const l of findLinearLayers(model.graph).layers) ranges.set(l.name, { min: new Float32Array(l.K).fill(-3), max: new Float32Array(l.K).fill(4) });
  const report = quantizeLinearLayers(model, config, {}, bits.aBits === null ? undefined : ranges, pass);
  const path = join(dir, `${folder}-${pass}-${bits.label}-${integerKernels}.onnx`);
  saveModel(model, path);
  return { path, kept: report.layers.filter((l) => l.compute === 'float').length };
}

const tinyLatency: BenchCase = {
  name: 'tiny-latency',
  summary: 'latency of one tiny-ARVD call, minmax and q-arvd at W8A8/W4A8/W4, integer-kernels always vs auto, vs fp32 (1 thread)',
  legend:
    'tiny-latency: "ours ms" = median time of one call; "baseline ms" = fp32 in the same rounds; ratio = median over rounds of (model ÷ fp32 of that round); details: p25/p75 of the rounds\' ratios, layers kept fp32.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const folder of MODELS) {
      const entries = [{ name: 'fp32', path: join(REPO_ROOT, 'examples', folder, 'model.onnx'), kept: 0 }];
      for (const bits of BITS) {
        for (const pass of ['minmax', 'q-arvd'] as const) {
          for (const ik of ['always', 'auto'] as const) entries.push({ name: `${pass} ${bits.label} ${ik}`, ...quantized(folder, pass, bits, ik, ctx.tmpDir) });
          // The control: every layer kept fp32, so onnxruntime runs fp32's own graph; its spread is the noise.
          if (bits.label === 'W4' && pass === 'q-arvd') entries.push({ name: `${pass} ${bits.label} never`, ...quantized(folder, pass, bits, 'never', ctx.tmpDir) });
        }
      }
      const feeds = await typicalFeeds(folder);
      const sessions: ort.InferenceSession[] = [];
      for (const e of entries) sessions.push(await ort.InferenceSession.create(e.path, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 }));
      try {
        for (const s of sessions) for (let w = 0; w < 3; w++) await s.run(feeds);
        const times = await timeInterleaved(sessions, feeds, ROUNDS[folder]);
        entries.forEach((e, i) => {
          const st = ratioStats(times[i]!, times[0]!);
          rows.push({
            name: `${folder} ${e.name}`,
            bytes: statSync(e.path).size,
            ms: round(median(times[i]!), 2),
            copyMs: round(median(times[0]!), 2),
            ratio: round(st.ratio, 2),
            runs: ROUNDS[folder],
            details: { p25: round(st.p25, 2), p75: round(st.p75, 2), keptFp32: e.kept },
          });
          ctx.log(`${folder} ${e.name}: ${median(times[i]!).toFixed(2)} ms, ${st.ratio.toFixed(2)}× fp32 [${st.p25.toFixed(2)}–${st.p75.toFixed(2)}]; ${e.kept} layer(s) kept fp32; ${statSync(e.path).size} bytes`);
        });
      } finally {
        for (const s of sessions) await s.release();
      }
    }
    return rows;
  },
};

export default tinyLatency;
