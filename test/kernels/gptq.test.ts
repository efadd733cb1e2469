// GPTQ kernel against an independent float64 reference (OBQ updates with an explicit inverse,
// test/helpers/gptq-reference.ts) and against its own unbatched definition (through the
// Cholesky factor of H⁻¹, where the kernel uses that of H), on synthetic
// layers: no real layer is small enough for the O(K³·N) reference, so the weights and
// activations are generated, with the features real layers have that GPTQ must handle —
// correlated input channels, planted outlier rows (a dual-scale split), a dead channel, K not
// a multiple of the batch size, and blocks of input channels.
import { describe, expect, it } from 'vitest';
import { choleskyLower, inverseCholeskyUpper } from '../../src/kernels/cholesky.ts';
import { type MatMul64, matmul64 } from '../../src/kernels/matmul.ts';
import { gptq, gptqReference, quadraticError, roundToNearest, type RowQuantizers } from '../../src/kernels/gptq.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { obqReference } from '../helpers/gptq-reference.ts';
import { makeLayer, type SyntheticLayerCase } from '../helpers/synthetic-layer.ts';

const CASES: (SyntheticLayerCase & { batch: number })[] = [
  { name: 'int4 per channel, K 150 with batch 64', K: 150, N: 24, type: 'int4', outliers: [], dead: [], block: 0, batch: 64, seed: 1 },
  { name: 'int4 dual-scale, planted outliers, a dead channel', K: 150, N: 24, type: 'int4', outliers: [3, 40, 41, 97], dead: [77], block: 0, batch: 32, seed: 2 },
  { name: 'uint8 dual-scale, dead channel, K 100 with batch 128', K: 100, N: 16, type: 'uint8', outliers: [5, 6, 60], dead: [0, 99], block: 0, batch: 128, seed: 3 },
  { name: 'int4 blocks of 32, outliers in their own blocks', K: 136, N: 20, type: 'int4', outliers: [10, 70, 71], dead: [50], block: 32, batch: 48, seed: 4 },
  // Beyond one Cholesky panel (256 columns): the blocked factorisation's products run.
  { name: 'int4 dual-scale, K 300 over two Cholesky panels', K: 300, N: 8, type: 'int4', outliers: [7, 200], dead: [150], block: 0, batch: 128, seed: 5 },
];

/** A product summing each entry in decreasing p: other rounding than matmul64's, as onnxruntime's has. */
const reversedSum: MatMul64 = (a, b, m, k, n) => {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = k - 1; p >= 0; p--) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + p]! * b[p * n + j]!;
  return c;
};

describe('gptq', () => {
  for (const c of CASES) {
    describe(c.name, () => {
      const { w, h, quantizers } = makeLayer(c);
      const options = { damp: 0.01, actOrder: true, blockSize: c.batch };
      const fast = gptq(w, h, c.K, c.N, quantizers, options);

      it('gives the integer weights of the OBQ reference, and those of its unbatched form bit for bit', () => {
        const ref = obqReference(w, h, c.K, c.N, quantizers, 0.01, true);
        let differ = 0;
        for (let i = 0; i < ref.length; i++) if (ref[i] !== fast.q[i]) differ++;
        expect(differ).toBe(0);
        const plain = gptqReference(w, h, c.K, c.N, quantizers, options);
        expect(Array.from(plain.q)).toEqual(Array.from(fast.q));
        expect(Array.from(plain.deq)).toEqual(Array.from(fast.deq));
        expect(fast.dead).toBe(c.dead.length);
      });

      it('has an objective tr(ΔᵀHΔ) no larger than round-to-nearest with the same quantizers', () => {
        const rtn = roundToNearest(w, c.K, c.N, quantizers);
        const eGptq = quadraticError(fast.deq, w, h, c.K, c.N);
        const eRtn = quadraticError(rtn.deq, w, h, c.K, c.N);
        expect(eGptq).toBeLessThan(eRtn);
        // Not a marginal win: the error feedback is what the reconstruction is for.
        expect(eGptq / eRtn).toBeLessThan(0.8);
      });

      it('keeps every value on its row group’s grid and zeroes dead rows', () => {
        for (const k of c.dead) for (let n = 0; n < c.N; n++) expect(fast.deq[k * c.N + n]).toBe(0);
        for (let k = 0; k < c.K; k++) {
          for (let n = 0; n < c.N; n++) {
            const p = quantizers.group[k]! * c.N + n;
            expect(fast.deq[k * c.N + n]).toBe(Math.fround((fast.q[k * c.N + n]! - quantizers.zeroPoints[p]!) * quantizers.scales[p]!));
          }
        }
      });
    });
  }

  it('takes its products from the injected matmul, with the same integers under another summation order', () => {
    const c = CASES[4]!;
    const { w, h, quantizers } = makeLayer(c);
    let calls = 0;
    const counted: MatMul64 = (...args) => {
      calls++;
      return reversedSum(...args);
    };
    const viaInjected = gptq(w, h, c.K, c.N, quantizers, { blockSize: c.batch, matmul: counted });
    // Cholesky panel and trailing strip, and one product per batch after the first.
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(Array.from(viaInjected.q)).toEqual(Array.from(obqReference(w, h, c.K, c.N, quantizers, 0.01, true)));
  });

  it('quadraticError is tr(ΔᵀHΔ) as defined, through either product', () => {
    const c = CASES[4]!;
    const { w, h, quantizers } = makeLayer(c);
    const rtn = roundToNearest(w, c.K, c.N, quantizers);
    let direct = 0;
    for (let i = 0; i < c.K; i++) {
      for (let j = 0; j < c.K; j++) {
        let dot = 0;
        for (let n = 0; n < c.N; n++) dot += (rtn.deq[i * c.N + n]! - w[i * c.N + n]!) * (rtn.deq[j * c.N + n]! - w[j * c.N + n]!);
        direct += h[i * c.K + j]! * dot;
      }
    }
    expect(direct).toBeGreaterThan(0);
    for (const mm of [matmul64, reversedSum]) expect(Math.abs(quadraticError(rtn.deq, w, h, c.K, c.N, mm) / direct - 1)).toBeLessThan(1e-12);
  });

  it('without act-order follows the reference in index order too', () => {
    const c = CASES[1]!;
    const { w, h, quantizers } = makeLayer(c);
    const fast = gptq(w, h, c.K, c.N, quantizers, { actOrder: false, blockSize: 16 });
    const ref = obqReference(w, h, c.K, c.N, quantizers, 0.01, false);
    expect(Array.from(fast.q)).toEqual(Array.from(ref));
  });

  it('refuses mismatched shapes, naming what is wrong', () => {
    const c = CASES[0]!;
    const { w, h, quantizers } = makeLayer(c);
    expect(() => gptq(w, h.subarray(1), c.K, c.N, quantizers)).toThrow(/H of/);
    expect(() => gptq(w.subarray(1), h, c.K, c.N, quantizers)).toThrow(/weight of/);
  });
});

/** `A·Aᵀ + shift·I` for a random n×n `A`: symmetric positive definite. */
function randomSpd(n: number, seed: number, shift: number): Float64Array {
  const rng = seededRandom(seed);
  const a = Float64Array.from({ length: n * n }, () => rng.normal());
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let p = 0; p < n; p++) h[i * n + j] += a[i * n + p]! * a[j * n + p]!;
  for (let i = 0; i < n; i++) h[i * n + i] += shift;
  return h;
}

describe('choleskyLower', () => {
  it('blocked (panels of 16, 7 and the whole) gives L·Lᵀ = A, the same factor each way', () => {
    const n = 70;
    const h = randomSpd(n, 11, 0.1);
    const plain = choleskyLower(h, n, { block: n });
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < n; p++) s += plain[i * n + p]! * plain[j * n + p]!;
        worst = Math.max(worst, Math.abs(s - h[i * n + j]!));
      }
    }
    expect(worst).toBeLessThan(1e-9);
    for (const block of [16, 7]) {
      const l = choleskyLower(h, n, { block, matmul: reversedSum });
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
      let diff = 0;
      for (let i = 0; i < n * n; i++) diff = Math.max(diff, Math.abs(l[i]! - plain[i]!));
      expect(diff).toBeLessThan(1e-10);
    }
  });

  it('names the row where a blocked factorisation finds the matrix not positive definite', () => {
    const n = 20;
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++) h[i * n + i] = i === 13 ? -1 : 1;
    expect(() => choleskyLower(h, n, { block: 8 })).toThrow(/at row 13/);
  });
});

describe('inverseCholeskyUpper', () => {
  it('is upper triangular with Uᵀ·U·H = I (a random SPD matrix)', () => {
    const n = 40;
    const h = randomSpd(n, 9, 0.5);
    const u = inverseCholeskyUpper(h, n);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
      expect(u[i * n + i]).toBeGreaterThan(0);
      for (let j = 0; j < n; j++) {
        // (UᵀU·H)[i,j] = Σ_p Σ_q U[p,i]·U[p,q]·H[q,j]
        let s = 0;
        for (let p = 0; p < n; p++) {
          if (u[p * n + i] === 0) continue;
          let t = 0;
          for (let q = 0; q < n; q++) t += u[p * n + q]! * h[q * n + j]!;
          s += u[p * n + i]! * t;
        }
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-9);
  });

  it('refuses a matrix that is not positive definite, naming the row', () => {
    expect(() => inverseCholeskyUpper(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(/not positive definite/);
  });
});

describe('gptq on a singular H (fewer rows than input channels)', () => {
  // 8 rows, K 64: H has rank 8, so with damp 0 it cannot be factored.
  const K = 64;
  const N = 4;
  const rng = seededRandom(7);
  const x = rng.normalArray(8 * K);
  const h = new Float64Array(K * K);
  for (let r = 0; r < 8; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) h[i * K + j] += x[r * K + i]! * x[r * K + j]!;
  const w = Float32Array.from(rng.normalArray(K * N));
  const scales = new Float32Array(N).fill(0.5);
  const quantizers: RowQuantizers = { group: new Int32Array(K), scales, zeroPoints: new Int32Array(N), type: 'int4' };

  it('damp 0 is raised to the first decade from 1e-6 that factors, reported, and gives what that damping gives when asked for', () => {
    const raised = gptq(w, h, K, N, quantizers, { damp: 0 });
    expect(raised.damp).toBeGreaterThanOrEqual(1e-6);
    expect([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1]).toContain(raised.damp);
    const asked = gptq(w, h, K, N, quantizers, { damp: raised.damp });
    expect(asked.damp).toBe(raised.damp);
    expect(Array.from(raised.q)).toEqual(Array.from(asked.q));
    // The unbatched definition takes the same damping and the same integers.
    const ref = gptqReference(w, h, K, N, quantizers, { damp: 0 });
    expect(ref.damp).toBe(raised.damp);
    expect(Array.from(ref.q)).toEqual(Array.from(raised.q));
  });

  it('a damping that factors is kept as asked', () => {
    expect(gptq(w, h, K, N, quantizers, { damp: 0.01 }).damp).toBe(0.01);
  });
});
