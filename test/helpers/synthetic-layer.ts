// Synthetic linear layers for the reconstruction kernels' tests (GPTQ, AdaRound): no real
// layer is small enough for the O(K³·N) references, so weights and activations are generated
// with the features real layers have — correlated input channels, planted outlier rows (a
// dual-scale split), dead channels, blocks of input channels.
import type { RowQuantizers } from '../../src/kernels/gptq.ts';
import { computeParamsBlocked, type QuantType } from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';

export interface SyntheticLayerCase {
  name: string;
  K: number;
  N: number;
  type: QuantType;
  /** Rows with 8× larger weights, quantized as their own group (a dual-scale split). */
  outliers: number[];
  dead: number[];
  /** Rows per quantizer block within a group (0: per output channel). */
  block: number;
  seed: number;
}

/** W, X (correlated channels, dead ones zero; `[rows, K]`), H = XᵀX over its `rows` rows, and the quantizers of the case. */
export function makeLayer(c: SyntheticLayerCase) {
  const rng = seededRandom(c.seed);
  const { K, N } = c;
  const w = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const gain = c.outliers.includes(k) ? 8 : 1;
    for (let n = 0; n < N; n++) w[k * N + n] = rng.normal() * 0.05 * gain;
  }
  // Rows x = z·A with a random mixing A: the channels are correlated, as real activations are.
  const M = 4 * K;
  const mixRank = 24;
  const a = Float64Array.from({ length: mixRank * K }, () => rng.normal());
  const x = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    const z = Array.from({ length: mixRank }, () => rng.normal());
    for (let k = 0; k < K; k++) {
      if (c.dead.includes(k)) continue;
      let s = 0.3 * rng.normal() + 0.5;
      for (let r = 0; r < mixRank; r++) s += z[r]! * a[r * K + k]!;
      x[m * K + k] = s;
    }
  }
  const h = new Float64Array(K * K);
  for (let m = 0; m < M; m++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) h[i * K + j] += x[m * K + i]! * x[m * K + j]!;
  return { w, h, x, rows: M, quantizers: quantizersOf(c, w) };
}

/** Groups: (branch, block) pairs; parameters by min/max of each group's rows, per column. */
export function quantizersOf(c: SyntheticLayerCase, w: Float32Array): RowQuantizers {
  const { K, N } = c;
  const branches = [c.outliers, Array.from({ length: K }, (_, k) => k).filter((k) => !c.outliers.includes(k))].filter((rows) => rows.length > 0);
  const group = new Int32Array(K);
  const scales: number[] = [];
  const zeroPoints: number[] = [];
  let g = 0;
  for (const rows of branches) {
    const B = c.block || rows.length;
    for (let b0 = 0; b0 < rows.length; b0 += B) {
      const part = rows.slice(b0, b0 + B);
      const sub = new Float32Array(part.length * N);
      part.forEach((k, i) => {
        sub.set(w.subarray(k * N, (k + 1) * N), i * N);
        group[k] = g;
      });
      const p = computeParamsBlocked(sub, part.length, N, part.length, c.type, false);
      scales.push(...p.scales);
      zeroPoints.push(...p.zeroPoints);
      g++;
    }
  }
  return { group, scales: Float32Array.from(scales), zeroPoints: Int32Array.from(zeroPoints), type: c.type };
}

