// The search's error sums against their plain definitions (one row, one branch at a time),
// bit for bit: repeated rows, several chunks, two and three branches, signed zeros.
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../kernels/random.ts';
import { type BranchOutputs, chunkRelativeErrors, rowDots, weightedRowError } from './errors.ts';

const random = seededRandom(11);
const values = (n: number) => Float32Array.from({ length: n }, () => (random.next() < 0.05 ? -0 : random.next() - 0.5));

function plainChunkErrors(outputs: BranchOutputs[], chunkIndex: Int32Array, represents: Float64Array, M: number, N: number, C: number, of: Int32Array) {
  const sum = (pick: (o: BranchOutputs) => Float32Array): ArrayLike<number> => {
    if (outputs.length === 1) return pick(outputs[0]!);
    const acc = new Float64Array(pick(outputs[0]!).length);
    for (const o of outputs) for (let i = 0; i < acc.length; i++) acc[i]! += pick(o)[i]!;
    return acc;
  };
  const [before, after, ref] = [sum((o) => o.before), sum((o) => o.after), sum((o) => o.ref)];
  const nb = new Float64Array(C);
  const na = new Float64Array(C);
  const dn = new Float64Array(C);
  for (let i = 0; i < M; i++) {
    const c = chunkIndex[i]!;
    let [b, a, d] = [0, 0, 0];
    for (let j = of[i]! * N; j < (of[i]! + 1) * N; j++) {
      b += (before[j]! - ref[j]!) ** 2;
      a += (after[j]! - ref[j]!) ** 2;
      d += ref[j]! ** 2;
    }
    nb[c]! += represents[i]! * b;
    na[c]! += represents[i]! * a;
    dn[c]! += represents[i]! * d;
  }
  const rel = (num: Float64Array) => Array.from(num, (v, k) => (dn[k]! > 0 ? v / dn[k]! : 0));
  return { before: rel(nb), after: rel(na) };
}

describe('search error sums', () => {
  const [M, D, N, C] = [41, 29, 13, 3];
  const of = Int32Array.from({ length: M }, (_, i) => (i < D ? i : Math.floor(random.next() * D)));
  const chunkIndex = Int32Array.from({ length: M }, (_, i) => Math.floor((i * C) / M));
  const weight = Float64Array.from({ length: M }, () => random.next() * 3);

  it('weightedRowError: the weighted sum of each row error', () => {
    const [y, ref] = [values(D * N), values(D * N)];
    let total = 0;
    let wsum = 0;
    for (let i = 0; i < M; i++) {
      let e = 0;
      for (let j = of[i]! * N; j < (of[i]! + 1) * N; j++) e += (y[j]! - ref[j]!) ** 2;
      total += weight[i]! * e;
      wsum += weight[i]!;
    }
    expect(weightedRowError(y, ref, weight, M, N, of)).toBe(total / wsum);
  });

  it('chunkRelativeErrors: one, two and three branches as summed float64 outputs, rows weighted by what they stand for', () => {
    for (const branches of [1, 2, 3]) {
      const outputs = Array.from({ length: branches }, () => ({ ref: values(D * N), before: values(D * N), after: values(D * N) }));
      expect(chunkRelativeErrors(outputs, chunkIndex, weight, M, N, C, of)).toEqual(plainChunkErrors(outputs, chunkIndex, weight, M, N, C, of));
    }
  });

  it('chunkRelativeErrors: a row standing for many counts that many times (the stratified estimate)', () => {
    // Chunk 0: one extreme row (stands for itself, error 100 of 100) and one reservoir row standing
    // for 99 rows (error 0 of 1). Over the chunk's 100 rows the relative error is 100 / (100 + 99).
    const ref = Float32Array.of(10, 1);
    const before = Float32Array.of(0, 1);
    const out = chunkRelativeErrors([{ ref, before, after: ref }], Int32Array.of(0, 0), Float64Array.of(1, 99), 2, 1, 1, Int32Array.of(0, 1));
    expect(out.before[0]).toBeCloseTo(100 / 199, 12);
    expect(out.after[0]).toBe(0);
  });

  it('rowDots: each row dot product in order', () => {
    for (const R of [1, 4, 7]) {
      const [a, b] = [values(R * N), values(R * N)];
      const out = new Float64Array(R);
      rowDots(a, b, R, N, out);
      for (let r = 0; r < R; r++) {
        let s = 0;
        for (let k = 0; k < N; k++) s += a[r * N + k]! * b[r * N + k]!;
        expect(Object.is(out[r], s)).toBe(true);
      }
    }
  });
});
