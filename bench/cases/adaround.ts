// AdaRound's cost per layer, against GPTQ on the same layer: the layer shapes of tiny-arvd
// (width 64, FFN 256), tiny-arvd-l (192, 768) and one Wan2.1-1.3B-shaped attention layer
// (1536×1536). Each Adam step costs one H·Δ product (K²·N multiply-adds) and a few
// transcendental functions per weight; the steps are alike, so the case times a short run
// (`steps` steps, median of the runs) and reports the time of the default 2000 steps as
// that × 2000 / steps (stated in the details), with the float32 SIMD product the pass
// uses and with the kernel's plain float64 default. Weights and H are synthetic (random,
// H = XᵀX of 2K random rows): the cost depends on the shapes only.
import { adaround, DEFAULT_ADAROUND_ITERATIONS } from '../../src/kernels/adaround.ts';
import { gptq, type RowQuantizers } from '../../src/kernels/gptq.ts';
import { computeParamsBlocked } from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { simdMatrixProduct } from '../../src/passes/calibration/simd-product.ts';
import { gemmNT, transpose } from '../../src/passes/calibration/row-gemm.ts';
import { type BenchCase, type BenchRow, round, timeMedian } from '../lib.ts';

/** Layer shapes; `steps` timed (more for the small ones, whose steps are fast and noisy); `plain` also times the float64 default. */
const SHAPES: { name: string; K: number; N: number; steps: number; plain: boolean }[] = [
  { name: 'tiny-arvd 64×64', K: 64, N: 64, steps: 100, plain: true },
  { name: 'tiny-arvd ffn.2 256×64', K: 256, N: 64, steps: 50, plain: true },
  { name: 'tiny-arvd-l 192×192', K: 192, N: 192, steps: 20, plain: true },
  { name: 'tiny-arvd-l ffn.0 192×768', K: 192, N: 768, steps: 20, plain: false },
  { name: 'tiny-arvd-l ffn.2 768×192', K: 768, N: 192, steps: 20, plain: true },
  { name: 'Wan attention 1536×1536', K: 1536, N: 1536, steps: 3, plain: false },
];

function layer(K: number, N: number) {
  const rng = seededRandom(K * 7919 + N);
  const w = Float32Array.from({ length: K * N }, () => rng.normal() * 0.05);
  const x = Float64Array.from({ length: 2 * K * K }, () => rng.normal());
  // H = XᵀX: gemmNT(Xᵀ, Xᵀ) with Xᵀ [K, 2K].
  const xt = transpose(x, 2 * K, K, new Float64Array(2 * K * K));
  const h = gemmNT(xt, K, 2 * K, xt, K, new Float64Array(K * K)) as Float64Array;
  const p = computeParamsBlocked(w, K, N, K, 'int4', false);
  const quantizers: RowQuantizers = { group: new Int32Array(K), scales: p.scales, zeroPoints: p.zeroPoints, type: 'int4' };
  return { w, h, quantizers };
}

const adaroundCase: BenchCase = {
  name: 'adaround',
  summary: `AdaRound per layer (${DEFAULT_ADAROUND_ITERATIONS} Adam steps, extrapolated from a short run) with the float32 SIMD product; ratio: ÷ GPTQ on the same layer`,
  legend: `ms: AdaRound with the pass's float32 SIMD product, ${DEFAULT_ADAROUND_ITERATIONS} steps (from a timed run of details.timedSteps); copyMs column: GPTQ on the same layer; ratio: AdaRound ÷ GPTQ`,
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const s of SHAPES) {
      const { w, h, quantizers } = layer(s.K, s.N);
      const runs = s.K * s.K * s.N > 1e9 ? 1 : ctx.runs;
      const scale = DEFAULT_ADAROUND_ITERATIONS / s.steps;
      const simd = await timeMedian(() => adaround(w, h, s.K, s.N, quantizers, { iterations: s.steps, rows: 2 * s.K, product: simdMatrixProduct() }), runs);
      const plain = s.plain ? await timeMedian(() => adaround(w, h, s.K, s.N, quantizers, { iterations: s.steps, rows: 2 * s.K }), runs) : undefined;
      const g = await timeMedian(() => gptq(w, h, s.K, s.N, quantizers), runs);
      const ms = simd.ms * scale;
      ctx.log(`${s.name}: AdaRound ${round(ms / 1000)} s (SIMD f32)${plain ? `, ${round((plain.ms * scale) / 1000)} s (plain f64)` : ''}, GPTQ ${round(g.ms)} ms`);
      rows.push({
        name: s.name,
        bytes: w.byteLength,
        ms: round(ms),
        copyMs: round(g.ms),
        ratio: round(ms / g.ms),
        runs,
        details: {
          msPerStepSimd: round(simd.ms / s.steps),
          ...(plain ? { msPerStepPlainF64: round(plain.ms / s.steps), plainMs2000: round(plain.ms * scale) } : {}),
          multiplyAddsPerStep: s.K * s.K * s.N,
          timedSteps: s.steps,
        },
      });
    }
    return rows;
  },
};

export default adaroundCase;
