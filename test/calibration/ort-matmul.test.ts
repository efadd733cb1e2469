// onnxruntime's float64 MatMul behind the synchronous MatMul64 interface of the kernels:
// products against the JavaScript reference, the size threshold, and GPTQ through it. The
// layer is synthetic (random correlated activations): the point is the product, not a model.
import { afterAll, describe, expect, it } from 'vitest';
import { gptq, type RowQuantizers } from '../../src/kernels/gptq.ts';
import { matmul64 } from '../../src/kernels/matmul.ts';
import { computeParamsBlocked } from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { openOrtMatMul, REUSE_BYTES } from '../../src/passes/calibration/ort-matmul.ts';

const rng = seededRandom(21);
const random = (n: number) => Float64Array.from({ length: n }, () => rng.normal());

describe('openOrtMatMul', () => {
  const ort = openOrtMatMul({ threads: 1, minMultiplyAdds: 0 });
  afterAll(() => ort.close());

  it('computes A·B as the JavaScript product does, to float64 rounding, for views into larger arrays too', () => {
    for (const [m, k, n] of [[1, 1, 1], [37, 300, 5], [200, 64, 129]] as const) {
      const a = random(m * k + 10).subarray(10);
      const b = random(k * n);
      const before = ort.products;
      const c = ort.matmul(a, b, m, k, n);
      expect(ort.products).toBe(before + 1);
      const ref = matmul64(a, b, m, k, n);
      expect(c.length).toBe(m * n);
      let worst = 0;
      for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i]! - ref[i]!) / Math.sqrt(k));
      expect(worst).toBeLessThan(1e-13);
      // The operands are copied, not moved: the caller's arrays are intact.
      expect(a.length).toBe(m * k);
    }
  });

  it('reuses the buffers of large operands from one product to the next without mixing up their values', () => {
    // Operands of 32 MiB and more travel in buffers the worker sends back (REUSE_BYTES); the
    // sizes here shrink, grow within the spare's quarter of headroom, grow past it (a new
    // buffer), and alternate between A and B. `reused` counts the copies into a returned buffer.
    expect(REUSE_BYTES).toBe(32 * 2 ** 20);
    const large = REUSE_BYTES / 8 + 1000;
    // Plain loops: Float64Array.from on millions of values is slow.
    const random = (n: number) => {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = rng.normal();
      return v;
    };
    const cases = [
      [[2, 2, large / 2], 0],
      [[2, 2, large / 2 - 50], 1],
      [[2, 2, large / 2 + 40_000], 1],
      [[2, 2, large], 0],
      [[large / 2, 2, 2], 0],
      [[3, 2, large / 2], 1],
      [[large / 2, 2, 2], 1],
    ] as const;
    for (const [[m, k, n], reuses] of cases) {
      const before = ort.reused;
      const a = random(m * k);
      const b = random(k * n);
      const keepA = a.slice();
      const keepB = b.slice();
      const c = ort.matmul(a, b, m, k, n);
      const ref = matmul64(a, b, m, k, n);
      let worst = 0;
      for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i]! - ref[i]!));
      expect(c.length).toBe(m * n);
      expect(worst).toBeLessThan(1e-13);
      // The caller's operands are untouched (compared in a loop: toEqual on millions of values is slow).
      expect(a.every((v, i) => v === keepA[i]) && b.every((v, i) => v === keepB[i])).toBe(true);
      expect(ort.reused - before, `${m}×${k}×${n}`).toBe(reuses);
    }
  });

  it('leaves products below the threshold to JavaScript, bit for bit', () => {
    const small = openOrtMatMul({ threads: 1 });
    const a = random(8 * 8);
    const b = random(8 * 8);
    expect(Array.from(small.matmul(a, b, 8, 8, 8))).toEqual(Array.from(matmul64(a, b, 8, 8, 8)));
    expect(small.products).toBe(0);
    small.close();
  });

  it('refuses operands smaller than their shapes, naming the shapes', () => {
    expect(() => ort.matmul(random(5), random(6), 2, 3, 2)).toThrow(/2×3 by 3×2|2×3 and 3×2/);
  });

  it('runs GPTQ to the same integers as the JavaScript product (K 300: blocked Cholesky and batch updates)', () => {
    const K = 300;
    const N = 12;
    const M = 900;
    const mix = random(16 * K);
    const x = new Float64Array(M * K);
    for (let r = 0; r < M; r++) {
      const z = random(16);
      for (let k = 0; k < K; k++) {
        let s = 0.3 * rng.normal();
        for (let p = 0; p < 16; p++) s += z[p]! * mix[p * K + k]!;
        x[r * K + k] = s;
      }
    }
    const xt = new Float64Array(K * M);
    for (let r = 0; r < M; r++) for (let k = 0; k < K; k++) xt[k * M + r] = x[r * K + k]!;
    const h = matmul64(xt, x, K, M, K);
    const w = Float32Array.from({ length: K * N }, () => 0.05 * rng.normal());
    const p = computeParamsBlocked(w, K, N, K, 'int4', false);
    const quantizers: RowQuantizers = { group: new Int32Array(K), scales: Float32Array.from(p.scales), zeroPoints: Int32Array.from(p.zeroPoints), type: 'int4' };
    const before = ort.products;
    const viaOrt = gptq(w, h, K, N, quantizers, { matmul: ort.matmul });
    expect(ort.products - before).toBeGreaterThanOrEqual(4);
    expect(Array.from(viaOrt.q)).toEqual(Array.from(gptq(w, h, K, N, quantizers).q));
  });
});
