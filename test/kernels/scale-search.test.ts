import { describe, expect, it } from 'vitest';
import { type QuantType, quantRange } from '../../src/kernels/quantize.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { SCALE_CANDIDATES, searchScale, searchScalesPerChannel } from '../../src/kernels/scale-search.ts';

/** Float64 reference: Σ_i α_i Σ_j (x̂ − x)² with x̂ = s·(clamp(round(x/s) + z) − z). */
function refError(x: Float32Array, s: number, z: number, type: QuantType, weights?: Float64Array): number {
  const { qmin, qmax } = quantRange(type);
  const rowLen = weights ? x.length / weights.length : x.length;
  let total = 0;
  for (let i = 0; i < x.length; i++) {
    let q = Math.round(x[i] / s) + z;
    q = Math.min(qmax, Math.max(qmin, q));
    const e = s * (q - z) - x[i];
    total += (weights ? weights[Math.floor(i / rowLen)] : 1) * e * e;
  }
  return total;
}

/**
 * Bell-shaped values exactly on a grid of step 1/64 spanning [lowest/64, qmax/64]: the min/max
 * scale is exactly 1/64 and reproduces them, while every clip has a tail to cut.
 */
function onGrid(n: number, seed: number, qmax: number, lowest: number): Float32Array {
  const rng = seededRandom(seed);
  const sigma = qmax / 4;
  const x = Float32Array.from({ length: n }, () => Math.max(1 - qmax, Math.min(qmax - 1, Math.round(rng.normal() * sigma))) / 64);
  x[0] = qmax / 64;
  x[1] = lowest / 64;
  return x;
}

/** |got − want| ≤ tol·|want| (float32 reconstruction against a float64 reference). */
function expectRel(got: number, want: number, tol = 1e-6): void {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.abs(want));
}

describe('searchScale', () => {
  it('clips when a single huge outlier exists (int8 symmetric)', () => {
    const x = seededRandom(13).normalArray(1_000_000);
    x[123_456] = 300;
    const r = searchScale(x, 'int8', { symmetric: true });
    expect(r.candidate).not.toBe('minmax');
    expect(r.errors.map((e) => e.candidate)).toEqual([...SCALE_CANDIDATES]);
    const minmax = r.errors[0];
    expect(minmax.scale).toBe(Math.fround(300 / 127));
    for (const e of r.errors) expectRel(e.error, refError(x, e.scale, e.zeroPoint, 'int8'));
    const best = Math.min(...r.errors.map((e) => e.error));
    expect(r.errors.find((e) => e.candidate === r.candidate)!.error).toBe(best);
    expect(best).toBeLessThan(0.25 * minmax.error);
    expect(r.scale).toBeLessThan(6 / 127); // clipped to the bulk, not the outlier
  });

  it('clips asymmetrically per side', () => {
    const x = seededRandom(14).normalArray(200_000);
    for (let i = 0; i < x.length; i++) x[i] = Math.abs(x[i]) - 0.5;
    x[7] = -30;
    const r = searchScale(x, 'uint4');
    expect(r.candidate).not.toBe('minmax');
    const { scale, zeroPoint } = r;
    // Only the negative side is clipped (to the bulk at −0.5); the positive tail is kept.
    expect(scale * (15 - zeroPoint)).toBeGreaterThan(2.5);
    expect(scale * zeroPoint).toBeLessThan(1);
    expectRel(r.errors.find((e) => e.candidate === r.candidate)!.error, refError(x, scale, zeroPoint, 'uint4'));
  });

  it('keeps min/max when nothing needs clipping', () => {
    for (const symmetric of [true, false]) {
      // Asymmetric int8 spans 255 steps, so its exact grid needs the extra step at −128.
      const x = onGrid(50_000, 15, 127, symmetric ? -127 : -128);
      const r = searchScale(x, 'int8', { symmetric });
      expect(r.candidate).toBe('minmax');
      expect(r.scale).toBe(1 / 64);
      expect(r.errors[0].error).toBe(0);
      for (const e of r.errors) expect(e.error).toBeGreaterThanOrEqual(0);
      expect(r.errors[1].error).toBeGreaterThan(1e-3); // p0.999 cuts into the tail
    }
  });

  it('row weights can change the choice', () => {
    const M = 100;
    const x = seededRandom(16).normalArray(M * 100);
    // Row 7 is all zeros but one outlier: only min/max reproduces it exactly.
    x.fill(0, 700, 800);
    x[7 * 100 + 42] = 30;
    const plain = searchScale(x, 'int4', { symmetric: true });
    expect(plain.candidate).not.toBe('minmax');
    const weights = new Float64Array(M).fill(1);
    weights[7] = 1e4;
    const weighted = searchScale(x, 'int4', { symmetric: true, weights });
    expect(weighted.candidate).toBe('minmax');
    for (const e of weighted.errors) expectRel(e.error, refError(x, e.scale, e.zeroPoint, 'int4', weights));
    expectRel(weighted.errors[0].error, plain.errors[0].error, 1e-9); // row 7 costs min/max nothing
    expect(() => searchScale(x, 'int4', { weights: new Float64Array(3) })).toThrow(RangeError);
  });

  it('handles a zero tensor', () => {
    const r = searchScale(new Float32Array(10), 'uint8');
    expect(r).toMatchObject({ candidate: 'minmax', scale: 1, zeroPoint: 0 });
    expect(r.errors.every((e) => e.error === 0)).toBe(true);
  });
});

describe('searchScalesPerChannel', () => {
  it('chooses per column, consistently with the per-tensor search of that column', () => {
    const K = 4096;
    const N = 4;
    const w = seededRandom(17).normalArray(K * N);
    const grid = onGrid(K, 18, 7, -7);
    for (let k = 0; k < K; k++) w[k * N + 3] = grid[k];
    w[100 * N + 2] = 20; // outlier in column 2
    const r = searchScalesPerChannel(w, K, N, 'int4', { symmetric: true });
    expect(r.choice[2]).not.toBe('minmax');
    expect(r.choice[3]).toBe('minmax');
    for (let n = 0; n < N; n++) {
      const col = Float32Array.from({ length: K }, (_, k) => w[k * N + n]);
      const ref = searchScale(col, 'int4', { symmetric: true });
      expect(r.choice[n]).toBe(ref.candidate);
      expect(r.scales[n]).toBe(ref.scale);
      expect(r.zeroPoints[n]).toBe(ref.zeroPoint);
      for (let c = 0; c < r.candidates.length; c++) {
        expect(r.errors[c * N + n]).toBe(ref.errors[c].error);
        expectRel(r.errors[c * N + n], refError(col, ref.errors[c].scale, ref.errors[c].zeroPoint, 'int4'));
      }
    }
  });

  it('restricts the candidates on request', () => {
    const w = seededRandom(19).normalArray(64 * 3);
    const r = searchScalesPerChannel(w, 64, 3, 'uint8', { candidates: ['minmax'] });
    expect(r.choice).toEqual(['minmax', 'minmax', 'minmax']);
    expect(r.errors.length).toBe(3);
  });
});
